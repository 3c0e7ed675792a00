package images

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestEntryNames checks that names are read relative to the root however
// they are spelled, and that a hardlink inside the root works.
func TestEntryNames(t *testing.T) {
	requireRoot(t)
	s := newStore(t, Config{})
	_, root := importLayers(t, s, []tarEntry{
		file("/abs/file", "a", 0o644),
		file("./dot/./file", "d", 0o644),
		file("double//slash", "s", 0o644),
		file("up/../down", "u", 0o644),
		hardlink("link", "/abs/file"),
	})
	want := []string{"abs/", "abs/file", "dot/", "dot/file", "double/", "double/slash", "down", "link"}
	if got := tree(t, root); !slices.Equal(got, want) {
		t.Errorf("tree:\n got %q\nwant %q", got, want)
	}
	a, err := os.Stat(filepath.Join(root, "abs", "file"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := os.Stat(filepath.Join(root, "link"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(a, l) || a.Sys().(*syscall.Stat_t).Nlink != 2 {
		t.Errorf("link is not a hardlink of abs/file")
	}
}

// TestLayerMediaTypes imports one layer of each media type the store
// unpacks, compressed as the type says.
func TestLayerMediaTypes(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name      string
		mediaType string
		gzip      bool
	}{
		{"oci tar", ocispec.MediaTypeImageLayer, false},
		{"oci tar+gzip", ocispec.MediaTypeImageLayerGzip, true},
		{"docker tar.gzip", mediaTypeDockerLayerGzip, true},
		{"docker tar", mediaTypeDockerLayer, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newArchive(t)
			raw := tarLayer(t, file("hello", "world", 0o644))
			data := raw
			if tt.gzip {
				data = gzipBytes(t, raw)
			}
			l := testLayer{desc: a.blob(tt.mediaType, data), diffID: digest.FromBytes(raw)}
			a.image(l)
			s := newStore(t, Config{})
			img, err := s.ImportArchive(context.Background(), a.write())
			if err != nil {
				t.Fatal(err)
			}
			root, err := s.RootFS(context.Background(), img.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(root, "hello")); err != nil || string(b) != "world" {
				t.Errorf("hello: got %q, %v", b, err)
			}
		})
	}
}

// TestUmaskDoesNotLeak unpacks under a strict umask: directories the
// layer implies, the mount points and the root itself still get 0755 (or
// their own mode), or a container user could not traverse them.
func TestUmaskDoesNotLeak(t *testing.T) {
	requireRoot(t)
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	s := newStore(t, Config{})
	_, root := importLayers(t, s, []tarEntry{file("a/b/file", "x", 0o644)})
	tests := []struct {
		name string
		mode os.FileMode
	}{
		{".", os.ModeDir | 0o755},
		{"a", os.ModeDir | 0o755},
		{"a/b", os.ModeDir | 0o755},
		{"a/b/file", 0o644},
		{"proc", os.ModeDir | 0o555},
		{"tmp", os.ModeDir | os.ModeSticky | 0o777},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := os.Lstat(filepath.Join(root, tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tt.mode {
				t.Errorf("mode: got %v, want %v", fi.Mode(), tt.mode)
			}
		})
	}
}
