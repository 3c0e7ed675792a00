package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgefaas/edgefaas/api"
)

func (c *cli) usage(ctx context.Context, args []string) error {
	fs := newFlags("usage")
	since := fs.Duration("since", 24*time.Hour, "how far back, e.g. 1h or 720h; 0 for everything kept")
	by := fs.String("by", "", "group by hour or day")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("usage: at most one function NAME")
	}
	q := api.UsageQuery{Since: *since, By: *by}
	if len(pos) == 1 {
		q.Function = pos[0]
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	rows, err := cl.Usage(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.out, rows)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := "FUNCTION\t"
	if *by != "" {
		head += strings.ToUpper(*by) + "\t"
	}
	fmt.Fprintln(tw, head+"INVOCATIONS\tERRORS\tCOLD\tBILLED\tGB-S\tCPU\t")
	for _, u := range rows {
		line := u.Function + "\t"
		if *by != "" {
			line += u.Bucket.UTC().Format("2006-01-02 15:04") + "\t"
		}
		fmt.Fprintf(tw, "%s%d\t%d\t%d\t%s\t%.6f\t%s\t\n", line, u.Invocations, u.Errors, u.ColdStarts,
			time.Duration(u.BilledMs)*time.Millisecond, u.GBSeconds, time.Duration(u.CPUMs)*time.Millisecond)
	}
	return tw.Flush()
}

func (c *cli) logs(ctx context.Context, args []string) error {
	fs := newFlags("logs")
	follow := fs.Bool("f", false, "follow: keep printing new lines")
	since := fs.Duration("since", 0, "only lines newer than this, e.g. 10m")
	call := fs.String("call", "", "only the lines of this call id")
	tail := fs.Int("tail", 0, "only the last N lines (then follow, with -f)")
	asJSON := fs.Bool("json", false, "print JSON lines")
	name, err := oneName(fs, args, "function NAME")
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	return cl.Logs(ctx, name, api.LogsQuery{Follow: *follow, Since: *since, CallID: *call, Tail: *tail}, func(l api.LogLine) error {
		if *asJSON {
			return printJSONLine(c.out, l)
		}
		call := ""
		if l.CallID != "" {
			call = " [" + l.CallID + "]"
		}
		_, err := fmt.Fprintf(c.out, "%s %s%s %s\n", l.Time.Local().Format("2006-01-02T15:04:05.000"), l.Stream, call, l.Text)
		return err
	})
}
