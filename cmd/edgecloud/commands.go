package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"text/tabwriter"
	"time"

	"github.com/edgefaas/edgefaas/controller"
)

func tlsListener(ln net.Listener, certFile, keyFile string) (net.Listener, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("tls: %w", err)
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
}

func tokenCreate(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("edgecloud token create", flag.ContinueOnError)
	cf := addClientFlags(fs)
	labelsFlag := fs.String("labels", "", "labels the enrolled device gets, k=v,k2=v2")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("token create: unexpected argument %q", pos[0])
	}
	labels, err := controller.ParseLabels(*labelsFlag)
	if err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	tok, err := cl.CreateToken(ctx, labels)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out, tok)
	}
	fmt.Fprintln(out, tok.Token)
	return nil
}

func devices(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("edgecloud devices", flag.ContinueOnError)
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("devices: unexpected argument %q", pos[0])
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	ds, err := cl.Devices(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out, ds)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSTATE\tLAST SEEN\tVERSION\tARCH\tCGROUPS\tFUNCTIONS\tLABELS")
	now := time.Now()
	for _, d := range ds {
		state := "offline"
		switch {
		case d.RevokedAt != nil:
			state = "revoked"
		case d.Online:
			state = "online"
		}
		seen := "never"
		if d.Online {
			seen = "now"
		} else if !d.LastSeen.IsZero() {
			seen = now.Sub(d.LastSeen).Round(time.Second).String() + " ago"
		}
		version, arch, cg, fns := "-", "-", "-", "-"
		if inv := d.Inventory; inv != nil {
			version, arch, cg, fns = inv.Version, inv.Arch, inv.CgroupMode, fmt.Sprint(len(inv.Functions))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, state, seen, version, arch, cg, fns, controller.FormatLabels(d.Labels))
	}
	return tw.Flush()
}

func revoke(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("edgecloud devices revoke", flag.ContinueOnError)
	cf := addClientFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("want: edgecloud devices revoke ID")
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	if _, err := cl.Revoke(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(out, "revoked %s\n", pos[0])
	return nil
}

func usageCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("edgecloud usage", flag.ContinueOnError)
	cf := addClientFlags(fs)
	device := fs.String("device", "", "only this device")
	function := fs.String("function", "", "only this function")
	since := fs.Duration("since", 24*time.Hour, "how far back (by the calls' start); 0 for everything")
	by := fs.String("by", "", "sum per function and time bucket: hour, day or a duration such as 15m")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("usage: unexpected argument %q", pos[0])
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	q := controller.UsageQuery{Device: *device, Function: *function}
	if *since > 0 {
		q.Since = time.Now().Add(-*since)
	}
	if *by != "" {
		return usageSeries(ctx, cl, q, *by, *asJSON, out)
	}
	rows, err := cl.Usage(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out, rows)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "DEVICE\tFUNCTION\tINVOCATIONS\tERRORS\tCOLD\tBILLED\tGB-S\tCPU\t")
	for _, u := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%.6f\t%s\t\n", u.Device, u.Function, u.Invocations, u.Errors,
			u.ColdStarts, time.Duration(u.BilledMs)*time.Millisecond, u.GBSeconds,
			time.Duration(u.CPUSeconds*float64(time.Second)).Round(time.Millisecond))
	}
	return tw.Flush()
}

func usageSeries(ctx context.Context, cl *controller.Client, q controller.UsageQuery, by string, asJSON bool, out io.Writer) error {
	var bucket time.Duration
	switch by {
	case "hour":
		bucket = time.Hour
	case "day":
		bucket = 24 * time.Hour
	default:
		var err error
		if bucket, err = time.ParseDuration(by); err != nil {
			return fmt.Errorf("--by %q: want hour, day or a duration", by)
		}
	}
	series, err := cl.UsageSeries(ctx, q, bucket)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, series)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "FROM\tFUNCTION\tINVOCATIONS\tERRORS\tGB-S\t")
	for _, b := range series {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.6f\t\n", b.Start.Format(time.RFC3339), b.Function, b.Invocations, b.Errors, b.GBSeconds)
	}
	return tw.Flush()
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
