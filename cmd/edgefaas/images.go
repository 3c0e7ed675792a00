package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/images"
)

func (c *cli) image(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("image: want import FILE|DIR, pull REF, ls, rm REF or prune")
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	switch args[0] {
	case "import":
		return c.imageImport(ctx, cl, args[1:])
	case "pull":
		ref, err := oneName(newFlags("image pull"), args[1:], "image REF")
		if err != nil {
			return err
		}
		img, err := c.pull(ctx, cl, ref)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.out, "pulled %s %s (%s, %s)\n", img.Digest, strings.Join(img.Names, ","), img.Platform, images.FormatBytes(img.Size))
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
	case "prune":
		return c.imagePrune(ctx, cl, args[1:])
	}
	return fmt.Errorf("image %s: unknown; want import, pull, ls, rm or prune", args[0])
}

func (c *cli) imageImport(ctx context.Context, cl *api.Client, args []string) error {
	fs := newFlags("image import")
	name := fs.String("name", "", "NAME:TAG of the image to take when the archive holds several")
	file, err := oneName(fs, args, "archive FILE or layout DIR")
	if err != nil {
		return err
	}
	img, err := c.importFile(ctx, cl, file, api.ImportOptions{Name: *name})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "imported %s %s (%s, %s)\n", img.Digest, strings.Join(img.Names, ","), img.Platform, images.FormatBytes(img.Size))
	return nil
}

func (c *cli) imagePrune(ctx context.Context, cl *api.Client, args []string) error {
	fs := newFlags("image prune")
	all := fs.Bool("all", false, "also remove named images that no function uses")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	res, err := cl.PruneImages(ctx, *all)
	if err != nil {
		return err
	}
	for _, d := range res.Images {
		fmt.Fprintf(c.out, "removed %s\n", d)
	}
	fmt.Fprintf(c.out, "freed %s (%s, %s, %s)\n", images.FormatBytes(res.Bytes),
		count(len(res.Images), "image"), count(res.Roots, "unpacked root"), count(res.Blobs, "blob"))
	return nil
}

// pull has the agent pull ref, with progress on stderr when it is a
// terminal.
func (c *cli) pull(ctx context.Context, cl *api.Client, ref string) (api.Image, error) {
	if !isTerminal(os.Stderr) {
		return cl.PullImage(ctx, ref, nil)
	}
	p := &progress{}
	stop := p.show(ref)
	defer stop()
	return cl.PullImage(ctx, ref, func(done, total int64) {
		p.done.Store(done)
		p.totalN.Store(total)
	})
}

// importFile uploads an archive, or a tar of a layout directory made on
// the fly, with progress on stderr when it is a terminal.
func (c *cli) importFile(ctx context.Context, cl *api.Client, path string, opts api.ImportOptions) (api.Image, error) {
	st, err := os.Stat(path)
	if err != nil {
		return api.Image{}, err
	}
	var r io.Reader
	if st.IsDir() {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(images.WriteTree(pw, path)) }()
		defer pr.Close()
		r = pr
	} else {
		f, err := os.Open(path)
		if err != nil {
			return api.Image{}, err
		}
		defer f.Close()
		r = f
	}
	if isTerminal(os.Stderr) {
		p := &progress{r: r}
		if !st.IsDir() {
			p.totalN.Store(st.Size())
		}
		stop := p.show(path)
		defer stop()
		r = p
	}
	opts.FileName = filepath.Base(path)
	return cl.ImportImageWith(ctx, r, opts)
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
	fmt.Fprintln(tw, "DIGEST\tNAMES\tPLATFORM\tSIZE\tIMPORTED\tUSED BY")
	for _, img := range imgs {
		used := strings.Join(img.UsedBy, ",")
		if used == "" {
			used = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", shortDigest(img.Digest), strings.Join(img.Names, ","),
			img.Platform, images.FormatBytes(img.Size), img.CreatedAt.Local().Format(time.DateTime), used)
	}
	return tw.Flush()
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress counts bytes read (or is told them) and redraws one status
// line twice a second.
type progress struct {
	totalN atomic.Int64 // 0 when unknown
	done   atomic.Int64
	r      io.Reader
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
		line := images.FormatBytes(p.done.Load())
		if t := p.totalN.Load(); t > 0 {
			line += " / " + images.FormatBytes(t)
		}
		fmt.Fprintf(os.Stderr, "\r%s: %s\033[K", name, line)
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

// count writes "1 image", "2 images".
func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
