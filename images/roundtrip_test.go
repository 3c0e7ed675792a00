package images

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgefaas/edgefaas/api"
)

// TestWriteArchiveImports imports what Build (edgefaas build)
// writes: the two ends of the deploy path must agree.
func TestWriteArchiveImports(t *testing.T) {
	requireRoot(t)
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "bin", "fn"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "fn.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	dgst, err := Build(context.Background(), f, BuildOptions{
		Files: func(string) (string, error) { return src, nil }, Name: "fn:1", Platforms: []string{hostPlatform().String()},
		Config: api.ImageConfig{Entrypoint: []string{"/bin/fn"}, Labels: map[string]string{ModeLabel: api.ModeExec}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, Config{})
	img, err := s.ImportArchive(context.Background(), archive)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != dgst || !slices.Equal(img.Names, []string{"fn:1"}) || img.Config.Labels[ModeLabel] != api.ModeExec {
		t.Errorf("image: got %+v, want digest %s, names [fn:1], mode label", img, dgst)
	}
	root, err := s.RootFS(context.Background(), img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(root, "bin", "fn")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/fn: got %v, %v", fi, err)
	}
}
