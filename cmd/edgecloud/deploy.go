package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/controller"
)

// deployCmd: edgecloud deploy NAME --image REF --selector k=v [function flags].
func deployCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("edgecloud deploy", flag.ContinueOnError)
	cf := addClientFlags(fs)
	image := fs.String("image", "", "image in the controller's registry: REPO:TAG or REPO@sha256:... (pinned to its digest now)")
	selector := fs.String("selector", "", "labels a device must all have, k=v,k2=v2; empty selects every device")
	wait := fs.Duration("wait", 0, "wait this long for the rollout to finish, printing it (0: do not wait)")
	sf := api.AddSpecFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("want: edgecloud deploy NAME --image REF --selector k=v [function flags]")
	}
	spec, err := sf.Spec(pos[0])
	if err != nil {
		return err
	}
	sel, err := controller.ParseLabels(*selector)
	if err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	d, err := cl.Deploy(ctx, controller.DeployRequest{Image: *image, Selector: sel, Spec: spec})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "deployed %s revision %d (%s@%s) to %s\n", d.Name, d.Revision, d.Repository, d.Digest, controller.FormatLabels(d.Selector))
	if *wait <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	for {
		ro, err := cl.Rollout(ctx, d.Name)
		if err == nil && ro.Deployment.Revision == d.Revision && ro.Settled {
			if err := printRollout(out, ro); err != nil {
				return err
			}
			if ro.Failed > 0 {
				return fmt.Errorf("rollout of %s: %d of %d devices failed (the previous revision serves where there was one)",
					d.Name, ro.Failed, len(ro.Devices))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				_ = printRollout(out, ro)
			}
			return fmt.Errorf("rollout of %s not finished within %s", d.Name, *wait)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// rolloutCmd: edgecloud rollout NAME, or edgecloud rollout (every deployment).
func rolloutCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("edgecloud rollout", flag.ContinueOnError)
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		ds, err := cl.Deployments(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, ds)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEPLOYMENT\tREVISION\tIMAGE\tDIGEST\tSELECTOR\tUPDATED")
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", d.Name, d.Revision, d.Image, controller.ShortDigest(d.Digest),
				controller.FormatLabels(d.Selector), d.UpdatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	if len(pos) != 1 {
		return fmt.Errorf("want: edgecloud rollout [NAME]")
	}
	ro, err := cl.Rollout(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out, ro)
	}
	return printRollout(out, ro)
}

func printRollout(out io.Writer, ro controller.Rollout) error {
	d := ro.Deployment
	fmt.Fprintf(out, "%s revision %d, %s@%s, selector %s: %d running, %d applying, %d pending, %d failed of %d\n",
		d.Name, d.Revision, d.Repository, controller.ShortDigest(d.Digest), controller.FormatLabels(d.Selector),
		ro.Running, ro.Applying, ro.Pending, ro.Failed, len(ro.Devices))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tHOST\tONLINE\tSTATE\tSERVING\tREASON")
	for _, r := range ro.Devices {
		serving := "-"
		if r.Serving > 0 {
			serving = fmt.Sprint(r.Serving)
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", r.Device, cmp.Or(r.Hostname, "-"), r.Online, r.State, serving, cmp.Or(r.Reason, "-"))
	}
	return tw.Flush()
}

// undeployCmd: edgecloud undeploy NAME.
func undeployCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("edgecloud undeploy", flag.ContinueOnError)
	cf := addClientFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("want: edgecloud undeploy NAME")
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	if err := cl.Undeploy(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(out, "undeployed %s: its devices remove the function\n", pos[0])
	return nil
}

// registryGC: edgecloud registry gc.
func registryGC(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("edgecloud registry gc", flag.ContinueOnError)
	cf := addClientFlags(fs)
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("registry gc: unexpected argument %q", pos[0])
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	res, err := cl.CollectRegistry(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "removed %d manifests and %d blobs (%.1f MiB)\n", res.Manifests, res.Blobs, float64(res.Bytes)/(1<<20))
	return nil
}
