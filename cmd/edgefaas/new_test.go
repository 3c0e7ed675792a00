package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewStarters writes each starter and checks what it holds; the Go one
// must build as the static binary edgefaas build makes of it.
func TestNewStarters(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct {
		lang  string
		files []string
	}{
		{"go", []string{"go.mod", "main.go"}},
		{"sh", []string{"handler.sh"}},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			name := "fn-" + tc.lang
			var out bytes.Buffer
			if err := run(context.Background(), []string{"new", name, "--lang", tc.lang}, nil, &out); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "edgefaas build "+name) {
				t.Errorf("output %q does not say how to build", out.String())
			}
			for _, f := range tc.files {
				if _, err := os.Stat(filepath.Join(dir, name, f)); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
			if err := run(context.Background(), []string{"new", name, "--lang", tc.lang}, nil, &out); err == nil {
				t.Error("new over an existing directory succeeded")
			}
		})
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go toolchain: %v", err)
	}
	if err := goBuild(context.Background(), filepath.Join(dir, "fn-go"), filepath.Join(dir, "fn"), "linux/arm64"); err != nil {
		t.Fatalf("the Go starter does not build: %v", err)
	}
	if err := run(context.Background(), []string{"new", "x", "--lang", "rust"}, nil, &bytes.Buffer{}); err == nil {
		t.Error("new --lang rust succeeded")
	}
}
