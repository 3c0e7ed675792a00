package controller

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// The usage page's charts: stacked bars, one colour per function, laid
// out here and drawn by the template as inline SVG. No chart library and
// no script: the controller may run offline, and each bar and chart
// carries its numbers as <title> text for screen readers (and tests).

// usageRange is one choice of the usage page's ?range=.
type usageRange struct {
	Key, Label, Unit string // "1h", "last hour", "minute"
	Span, Bucket     time.Duration
	Format           string // a bucket's start on the axis, UTC
}

var usageRanges = []usageRange{
	{Key: "1h", Label: "last hour", Unit: "minute", Span: time.Hour, Bucket: time.Minute, Format: "15:04"},
	{Key: "24h", Label: "last 24 hours", Unit: "hour", Span: 24 * time.Hour, Bucket: time.Hour, Format: "15:04"},
	{Key: "30d", Label: "last 30 days", Unit: "day", Span: 30 * 24 * time.Hour, Bucket: 24 * time.Hour, Format: "Jan 2"},
}

// usageRangeOf finds a range by key; "" is the last 24 hours.
func usageRangeOf(key string) (usageRange, bool) {
	if key == "" {
		key = "24h"
	}
	i := slices.IndexFunc(usageRanges, func(r usageRange) bool { return r.Key == key })
	if i < 0 {
		return usageRange{}, false
	}
	return usageRanges[i], true
}

func (rg usageRange) buckets() int { return int(rg.Span / rg.Bucket) }

// first is the start of the oldest bucket shown. Buckets are aligned on
// the unix epoch, as the store's are, and the newest one holds now.
func (rg usageRange) first(now time.Time) time.Time {
	w := int64(rg.Bucket)
	last := now.UnixNano() / w * w
	return time.Unix(0, last-int64(rg.buckets()-1)*w).UTC()
}

// chart is one laid-out bar chart; numbers are strings, ready for SVG.
type chart struct {
	ID, Title     string // Title names the measure, range and total
	Width, Height int
	Left, Bottom  int // the axes' lines
	Right, Top    int
	YMax          string // the value at the top of the axis
	Rects         []chartRect
	Ticks         []chartTick
	Legend        []chartKey
}

type chartRect struct {
	X, Y, W, H   string
	Class, Title string // Title: "10:05 resize: 3"
}

type chartTick struct{ X, Text string }

type chartKey struct{ Function, Class string }

const (
	chartW, chartH            = 720, 220
	padLeft, padRight         = 64, 8
	padTop, padBottom         = 12, 24
	chartColours              = 8 // CSS classes s0..s7
	barGap            float64 = 1
)

func usageCharts(series []UsageBucket, rg usageRange, first time.Time) []chart {
	count := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	gbs := func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
	return []chart{
		layoutChart("chart-invocations", "Invocations", series, rg, first,
			func(b UsageBucket) float64 { return float64(b.Invocations) }, count),
		layoutChart("chart-gbs", "GB-seconds", series, rg, first,
			func(b UsageBucket) float64 { return b.GBSeconds }, gbs),
	}
}

// layoutChart stacks value(b) of each bucket's functions, in the store's
// order (by function name), so a function keeps its place and colour.
func layoutChart(id, measure string, series []UsageBucket, rg usageRange, first time.Time,
	value func(UsageBucket) float64, format func(float64) string) chart {
	n := rg.buckets()
	c := chart{ID: id, Width: chartW, Height: chartH, Left: padLeft, Right: chartW - padRight,
		Top: padTop, Bottom: chartH - padBottom}
	class := map[string]string{}
	var names []string
	for _, b := range series {
		if _, ok := class[b.Function]; !ok {
			class[b.Function] = ""
			names = append(names, b.Function)
		}
	}
	slices.Sort(names)
	for i, name := range names {
		class[name] = fmt.Sprintf("s%d", i%chartColours)
		c.Legend = append(c.Legend, chartKey{Function: name, Class: class[name]})
	}
	index := func(b UsageBucket) int { return int(b.Start.Sub(first) / rg.Bucket) }
	stack := make([]float64, n)
	var total, top float64
	for _, b := range series {
		if i := index(b); i >= 0 && i < n {
			stack[i] += value(b)
			total += value(b)
			top = max(top, stack[i])
		}
	}
	c.Title = fmt.Sprintf("%s, %s: %s in total", measure, rg.Label, format(total))
	c.YMax = format(top)
	if top == 0 {
		top = 1 // an empty chart: axes only
	}
	plotW, plotH := float64(c.Right-c.Left), float64(c.Bottom-c.Top)
	slot, scale := plotW/float64(n), plotH/top
	filled := make([]float64, n)
	px := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	for _, b := range series {
		i, v := index(b), value(b)
		if i < 0 || i >= n || v == 0 {
			continue
		}
		h := v * scale
		filled[i] += h
		c.Rects = append(c.Rects, chartRect{
			X: px(float64(c.Left) + float64(i)*slot + barGap), Y: px(float64(c.Bottom) - filled[i]),
			W: px(max(slot-2*barGap, 1)), H: px(max(h, 0.5)), Class: class[b.Function],
			Title: fmt.Sprintf("%s %s: %s", b.Start.Format(rg.Format), b.Function, format(v)),
		})
	}
	for i := 0; i < n; i += max(n/6, 1) {
		start := first.Add(time.Duration(i) * rg.Bucket)
		c.Ticks = append(c.Ticks, chartTick{X: px(float64(c.Left) + (float64(i)+0.5)*slot), Text: start.Format(rg.Format)})
	}
	return c
}
