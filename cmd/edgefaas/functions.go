package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/images"
)

func (c *cli) deploy(ctx context.Context, args []string) error {
	if file, ok, err := stackArg(args); ok || err != nil {
		if err != nil {
			return err
		}
		return c.deployStack(ctx, file)
	}
	fs := newFlags("deploy")
	var image string
	fs.StringVar(&image, "image", "", "image: NAME:TAG, a digest, a registry reference (host/repo:tag), or an image archive or layout directory")
	sf := api.AddSpecFlags(fs)
	name, err := oneName(fs, args, "function NAME")
	if err != nil {
		return err
	}
	spec, err := sf.Spec(name)
	if err != nil {
		return err
	}
	spec.Image = image
	cl, err := c.client()
	if err != nil {
		return err
	}
	if spec.Image, err = c.imageRef(ctx, cl, spec.Image); err != nil {
		return err
	}
	fn, err := cl.Deploy(ctx, spec)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "deployed %s (version %d, image %s)\n", fn.Spec.Name, fn.Version, shortDigest(fn.ImageDigest))
	return nil
}

// imageRef imports ref first when it names an archive file or a layout
// directory, pulls it (with progress) when it is a registry reference the
// agent lacks, and returns the reference the agent knows it by.
func (c *cli) imageRef(ctx context.Context, cl *api.Client, ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("--image is required")
	}
	if st, err := os.Stat(ref); err == nil && (st.Mode().IsRegular() || st.IsDir()) {
		img, err := c.importFile(ctx, cl, ref, api.ImportOptions{})
		if err != nil {
			return "", err
		}
		return img.Digest, nil
	}
	if !images.IsRemote(ref) {
		return ref, nil
	}
	imgs, err := cl.Images(ctx)
	if err != nil {
		return "", err
	}
	for _, img := range imgs {
		if slices.Contains(img.Names, ref) {
			return img.Digest, nil
		}
	}
	img, err := c.pull(ctx, cl, ref)
	if err != nil {
		return "", err
	}
	return img.Digest, nil
}

func (c *cli) invoke(ctx context.Context, args []string) error {
	fs := newFlags("invoke")
	data := fs.String("d", "", "request body, or @FILE")
	method := fs.String("method", http.MethodPost, "HTTP method")
	name, err := oneName(fs, args, "function NAME")
	if err != nil {
		return err
	}
	body, err := c.requestBody(*data, isSet(fs, "d"))
	if err != nil {
		return err
	}
	gw, err := c.gatewayURL(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, *method, gw+"/function/"+url.PathEscape(name), bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the gateway: %w", err)
	}
	defer resp.Body.Close()
	switch st := resp.Header.Get("X-Faas-Status"); st {
	case "ok":
		_, err := io.Copy(c.out, resp.Body)
		return err
	case "error":
		_, _ = io.Copy(c.out, resp.Body)
		return fmt.Errorf("function %q answered %s", name, resp.Status)
	default:
		var e api.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("%s (%s, call %s)", e.Error, st, resp.Header.Get("X-Call-Id"))
	}
}

// requestBody is -d's value, a file's content for -d @FILE, or stdin when
// -d is absent (nothing when stdin is a terminal).
func (c *cli) requestBody(data string, given bool) ([]byte, error) {
	if given {
		if file, ok := strings.CutPrefix(data, "@"); ok {
			return os.ReadFile(file)
		}
		return []byte(data), nil
	}
	if f, ok := c.in.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return nil, nil
		}
	}
	return io.ReadAll(c.in)
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// gatewayURL asks the agent where its gateway listens. For a remote agent
// the gateway is on the agent's host.
func (c *cli) gatewayURL(ctx context.Context) (string, error) {
	cl, err := c.client()
	if err != nil {
		return "", err
	}
	info, err := cl.Info(ctx)
	if err != nil {
		return "", err
	}
	addr := info.Listen
	if u, err := url.Parse(c.agent); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		_, port, _ := net.SplitHostPort(info.Listen)
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	return "http://" + addr, nil
}

func (c *cli) list(ctx context.Context, args []string) error {
	fs := newFlags("ls")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	fns, err := cl.Functions(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.out, fns)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMODE\tIMAGE\tVERSION\tINSTANCES\tMEMORY\tCPU\tTIMEOUT\tFROM")
	for _, f := range fns {
		s := f.Spec
		from := "local"
		if f.CloudRevision > 0 {
			from = fmt.Sprintf("cloud (revision %d)", f.CloudRevision)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%dMi\t%dm\t%s\t%s\n", s.Name, s.Mode, shortDigest(f.ImageDigest),
			f.Version, f.Instances, s.Memory>>20, s.CPU, time.Duration(s.Timeout), from)
	}
	return tw.Flush()
}

func (c *cli) describe(ctx context.Context, args []string) error {
	fs := newFlags("describe")
	fs.Bool("json", true, "print JSON (the only format)")
	name, err := oneName(fs, args, "function NAME")
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	fn, err := cl.Function(ctx, name)
	if err != nil {
		return err
	}
	return printJSON(c.out, fn)
}

func (c *cli) remove(ctx context.Context, args []string) error {
	name, err := oneName(newFlags("rm"), args, "function NAME")
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	if err := cl.Remove(ctx, name); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "removed %s\n", name)
	return nil
}

func printJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
