package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// newFlags makes a flag set for one verb, with errors returned, not printed
// twice.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("edgefaas "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseArgs parses flags that may come before or after the positional
// arguments ("deploy NAME --image X" and "deploy --image X NAME").
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if endedByTerminator(fs, args[:len(args)-len(rest)]) {
			return append(pos, rest...), nil // after "--" all is positional
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// endedByTerminator reports whether fs.Parse, having consumed the arguments
// consumed, stopped at a "--" terminator (and did not take "--" as a flag's
// value). It walks them as package flag does.
func endedByTerminator(fs *flag.FlagSet, consumed []string) bool {
	for i := 0; i < len(consumed); i++ {
		a := consumed[i]
		if a == "--" {
			return i == len(consumed)-1
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue
			}
		}
		i++ // the flag's value
	}
	return false
}

// oneName returns the single positional argument a verb wants.
func oneName(fs *flag.FlagSet, args []string, what string) (string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("%s: want exactly one %s", fs.Name(), what)
	}
	return pos[0], nil
}

// parseBytes reads a memory quantity: 128Mi, 1Gi, 512Ki, 64M, 1G, or bytes.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30},
		{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"k", 1e3},
	}
	mult := 1.0
	num := s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			mult, num = u.mult, strings.TrimSuffix(s, u.suffix)
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	// !(b >= 0) also rejects NaN; 1<<63 is the first float64 that does not
	// fit int64 (the conversion of a larger one is implementation-defined:
	// math.MinInt64 on amd64).
	if b := v * mult; err != nil || !(b >= 0) || b >= 1<<63 {
		return 0, fmt.Errorf("%q is not a size like 128Mi", s)
	}
	return int64(v * mult), nil
}

// parseCPU reads millicores: 500m, 0.5 or 2 (cores).
func parseCPU(s string) (int64, error) {
	if m, ok := strings.CutSuffix(s, "m"); ok {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%q is not a CPU amount like 500m", s)
		}
		return v, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 0 && v <= 1e6) { // NaN fails both comparisons
		return 0, fmt.Errorf("%q is not a CPU amount like 500m or 1.5", s)
	}
	return int64(math.Round(v * 1000)), nil
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
