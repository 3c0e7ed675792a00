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

// build makes an oci-archive without Docker. A directory holding a Go main
// package is compiled static for the platform into an image that holds
// only /fn; any other directory is taken as the image's root filesystem.
func (c *cli) build(ctx context.Context, args []string) error {
	fs := newFlags("build")
	tag := fs.String("t", "", "NAME:TAG of the image")
	out := fs.String("o", "", "archive file to write")
	platform := fs.String("platform", "linux/"+runtime.GOARCH, "os/arch[/variant]")
	mode := fs.String("mode", api.ModeHTTP, "the function's mode, recorded as an image label")
	entry := fs.String("entrypoint", "", "entrypoint, split at spaces (default /fn for Go)")
	var env listFlag
	fs.Var(&env, "env", "K=V, repeatable")
	dir, err := oneName(fs, args, "DIR")
	if err != nil {
		return err
	}
	if *tag == "" || *out == "" {
		return fmt.Errorf("build: -t NAME:TAG and -o FILE are required")
	}
	opts := images.BuildOptions{Dir: dir, Name: *tag, Platform: *platform}
	opts.Config.Env = env
	opts.Config.Labels = map[string]string{images.ModeLabel: *mode}
	if isGoMain(dir) {
		staged, err := os.MkdirTemp("", "edgefaas-build-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(staged)
		if err := goBuild(ctx, dir, filepath.Join(staged, "fn"), *platform); err != nil {
			return err
		}
		opts.Dir = staged
		opts.Config.Entrypoint = []string{"/fn"}
	}
	if *entry != "" {
		opts.Config.Entrypoint = strings.Fields(*entry)
	}
	if len(opts.Config.Entrypoint) == 0 {
		return fmt.Errorf("build: %s is not a Go main package; give --entrypoint", dir)
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	digest, err := images.WriteArchive(f, opts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		return err
	}
	fmt.Fprintf(c.out, "built %s %s (%s) -> %s\n", *tag, digest, *platform, *out)
	return nil
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
