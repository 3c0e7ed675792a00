package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/edgefaas/edgefaas/api"
)

func (c *cli) status(ctx context.Context, args []string) error {
	fs := newFlags("status")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	info, err := cl.Info(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.out, info)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "agent\t%s (%s)\n", info.Version, info.Arch)
	fmt.Fprintf(tw, "cgroups\t%s\n", info.CgroupMode)
	fmt.Fprintf(tw, "gateway\thttp://%s\n", info.Listen)
	fmt.Fprintf(tw, "state\t%s\n", info.StateDir)
	fmt.Fprintf(tw, "functions\t%d (%d instances running)\n", info.Functions, info.Instances)
	fmt.Fprintf(tw, "images\t%d\n", info.Images)
	fmt.Fprintf(tw, "mqtt\t%s\n", info.MQTT)
	if cs := info.Cloud; cs != nil {
		state := "disconnected"
		if cs.Connected {
			state = "connected"
		}
		line := fmt.Sprintf("%s %s (device %s, acknowledged up to seq %d)", cs.Controller, state, cs.DeviceID, cs.AckedSeq)
		if !cs.Connected && cs.LastError != "" {
			line += ": " + cs.LastError
		}
		fmt.Fprintf(tw, "cloud\t%s\n", line)
	}
	return tw.Flush()
}

func (c *cli) version(ctx context.Context) error {
	fmt.Fprintf(c.out, "edgefaas %s\n", api.Version)
	cl, err := c.client()
	if err != nil {
		return err
	}
	info, err := cl.Info(ctx)
	if err != nil {
		fmt.Fprintf(c.out, "agent: not reachable (%v)\n", err)
		return nil
	}
	fmt.Fprintf(c.out, "edgefaasd %s (%s)\n", info.Version, info.Arch)
	return nil
}
