package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/images"
)

// buildFlags are the settings of edgefaas build.
type buildFlags struct {
	tag, out, platforms, mode, entry, from, workdir, user string
	env                                                   api.ListFlag
}

// build makes an oci-archive without Docker, for one platform or several.
// A directory holding a Go main package is compiled static per platform
// into /fn; any other directory's files are the top layer as they are.
// With --from they go over a base image (an archive, a layout directory or
// a registry reference); without it, over an empty base.
func (c *cli) build(ctx context.Context, args []string) error {
	fs := newFlags("build")
	var f buildFlags
	fs.StringVar(&f.tag, "t", "", "NAME:TAG of the image")
	fs.StringVar(&f.out, "o", "", "archive file to write")
	fs.StringVar(&f.platforms, "platform", "linux/"+runtime.GOARCH, "os/arch[/variant], comma-separated for a multi-platform image")
	fs.StringVar(&f.mode, "mode", api.ModeHTTP, "the function's mode, recorded as an image label")
	fs.StringVar(&f.entry, "entrypoint", "", "entrypoint, split at spaces (default /fn for Go, else the base's)")
	fs.StringVar(&f.from, "from", "", "base image: archive, layout directory or registry reference (default: empty)")
	fs.StringVar(&f.workdir, "workdir", "", "working directory of the function")
	fs.StringVar(&f.user, "user", "", "user[:group] the function runs as")
	fs.Var(&f.env, "env", "K=V, repeatable")
	dir, err := oneName(fs, args, "DIR")
	if err != nil {
		return err
	}
	if f.tag == "" || f.out == "" {
		return fmt.Errorf("build: -t NAME:TAG and -o FILE are required")
	}
	work, err := os.MkdirTemp("", "edgefaas-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	opts, err := f.options(ctx, dir, work)
	if err != nil {
		return err
	}
	digest, err := writeBuild(ctx, f.out, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "built %s %s (%s) -> %s\n", f.tag, digest, strings.Join(opts.Platforms, ","), f.out)
	return nil
}

func (f *buildFlags) options(ctx context.Context, dir, work string) (images.BuildOptions, error) {
	opts := images.BuildOptions{
		Name: f.tag, From: f.from, WorkDir: work, Platforms: strings.Split(f.platforms, ","),
		Files: func(string) (string, error) { return dir, nil },
		Config: api.ImageConfig{Env: f.env, WorkingDir: f.workdir, User: f.user,
			Labels: map[string]string{images.ModeLabel: f.mode}},
	}
	if isGoMain(dir) {
		opts.Files = func(platform string) (string, error) {
			staged := filepath.Join(work, "go", strings.ReplaceAll(platform, "/", "-"))
			return staged, goBuild(ctx, dir, filepath.Join(staged, "fn"), platform)
		}
		opts.Config.Entrypoint = []string{"/fn"}
	}
	if f.entry != "" {
		opts.Config.Entrypoint = strings.Fields(f.entry)
	}
	if len(opts.Config.Entrypoint) == 0 && f.from == "" {
		return opts, fmt.Errorf("build: %s is not a Go main package; give --entrypoint (or --from a base that has one)", dir)
	}
	return opts, nil
}

// writeBuild writes the archive, leaving no partial file behind.
func writeBuild(ctx context.Context, out string, opts images.BuildOptions) (string, error) {
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	digest, err := images.Build(ctx, f, opts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return "", err
	}
	return digest, nil
}

func isGoMain(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "package ") {
				fh.Close()
				if line == "package main" {
					return true
				}
				break
			}
		}
		fh.Close()
	}
	return false
}

// goBuild cross-compiles a static binary: CGO off, so it runs on an empty
// base on every platform.
func goBuild(ctx context.Context, dir, out, platform string) error {
	parts := strings.Split(platform, "/")
	if len(parts) < 2 {
		return fmt.Errorf("platform %q: want os/arch[/variant]", platform)
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS="+parts[0], "GOARCH="+parts[1])
	if len(parts) == 3 && parts[1] == "arm" {
		env = append(env, "GOARM="+strings.TrimPrefix(parts[2], "v"))
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", abs, ".")
	cmd.Dir, cmd.Env, cmd.Stderr = dir, env, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build in %s for %s: %w", dir, platform, err)
	}
	return nil
}
