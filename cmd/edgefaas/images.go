package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/edgefaas/edgefaas/api"
)

func (c *cli) image(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("image: want import FILE, ls or rm REF")
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	switch args[0] {
	case "import":
		file, err := oneName(newFlags("image import"), args[1:], "archive FILE")
		if err != nil {
			return err
		}
		img, err := c.importFile(ctx, cl, file)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.out, "imported %s %s (%s, %s)\n", img.Digest, strings.Join(img.Names, ","), img.Platform, humanBytes(img.Size))
		return nil
	case "ls", "list":
		return c.imageList(ctx, cl, args[1:])
	case "rm", "remove":
		ref, err := oneName(newFlags("image rm"), args[1:], "image REF")
		if err != nil {
			return err
		}
		if err := cl.RemoveImage(ctx, ref); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "removed %s\n", ref)
		return nil
	}
	return fmt.Errorf("image %s: unknown; want import, ls or rm", args[0])
}

// importFile uploads an archive, with progress on stderr when it is a
// terminal.
func (c *cli) importFile(ctx context.Context, cl *api.Client, path string) (api.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return api.Image{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return api.Image{}, err
	}
	var r io.Reader = f
	if isTerminal(os.Stderr) {
		p := &progress{total: st.Size(), r: f}
		stop := p.show(path)
		defer stop()
		r = p
	}
	return cl.ImportImage(ctx, r)
}

func (c *cli) imageList(ctx context.Context, cl *api.Client, args []string) error {
	fs := newFlags("image ls")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	imgs, err := cl.Images(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.out, imgs)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DIGEST\tNAMES\tPLATFORM\tSIZE\tIMPORTED")
	for _, img := range imgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", shortDigest(img.Digest), strings.Join(img.Names, ","),
			img.Platform, humanBytes(img.Size), img.CreatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress counts bytes read and redraws one status line twice a second.
type progress struct {
	total int64
	done  atomic.Int64
	r     io.Reader
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done.Add(int64(n))
	return n, err
}

func (p *progress) show(name string) (stop func()) {
	quit := make(chan struct{})
	finished := make(chan struct{})
	draw := func() {
		fmt.Fprintf(os.Stderr, "\r%s: %s / %s", name, humanBytes(p.done.Load()), humanBytes(p.total))
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				draw()
				fmt.Fprintln(os.Stderr)
				return
			case <-t.C:
				draw()
			}
		}
	}()
	return func() { close(quit); <-finished }
}
