package main

import (
	"fmt"
	"strconv"
	"strings"
)

// sizeFlag is a byte count written as 500Mi, 2Gi, 1G or plain bytes.
type sizeFlag struct{ n *int64 }

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

func (f sizeFlag) String() string {
	if f.n == nil || *f.n == 0 {
		return "0"
	}
	for _, u := range sizeUnits[:4] {
		if *f.n%u.mult == 0 && *f.n/u.mult < 1024 {
			return fmt.Sprintf("%d%s", *f.n/u.mult, u.suffix)
		}
	}
	return strconv.FormatInt(*f.n, 10)
}

func (f sizeFlag) Set(s string) error {
	num, mult := strings.TrimSuffix(strings.TrimSpace(s), "B"), int64(1)
	for _, u := range sizeUnits {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = v, u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return fmt.Errorf("want a size like 512Mi, 4Gi or a byte count")
	}
	*f.n = v * mult
	return nil
}

func (f sizeFlag) Get() any { return *f.n }
