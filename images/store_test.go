package images

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestImportGetRemove walks one image through the store's life.
func TestImportGetRemove(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s := newStore(t, Config{})
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return now }

	a := newArchive(t)
	cfg := ocispec.ImageConfig{
		Entrypoint: []string{"/bin/fn"}, Cmd: []string{"--serve"}, Env: []string{"A=1"},
		WorkingDir: "/srv", User: "1000:1000", Labels: map[string]string{"k": "v"},
	}
	l := a.layer(file("bin/fn", "#!/bin/sh\n", 0o755))
	desc := a.manifest(nil, cfg, l)
	a.add(desc, "stable")
	a.add(desc, "example.com/fn:1.0")
	path := a.write()

	img, err := s.ImportArchive(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	wantSize := desc.Size + l.desc.Size + int64(len(a.blobs[mustManifest(t, a, desc).manifest.Config.Digest]))
	if img.Digest != desc.Digest.String() || img.Size != wantSize || !img.CreatedAt.Equal(now) {
		t.Errorf("image: got digest %s size %d created %v; want %s %d %v",
			img.Digest, img.Size, img.CreatedAt, desc.Digest, wantSize, now)
	}
	if want := []string{"test:stable", "example.com/fn:1.0"}; !slices.Equal(img.Names, want) {
		t.Errorf("names: got %q, want %q", img.Names, want)
	}
	if want := hostPlatform().String(); img.Platform != want {
		t.Errorf("platform: got %q, want %q", img.Platform, want)
	}
	if img.Config.Entrypoint[0] != "/bin/fn" || img.Config.User != "1000:1000" || img.Config.Labels["k"] != "v" ||
		img.Config.WorkingDir != "/srv" || img.Config.Env[0] != "A=1" || img.Config.Cmd[0] != "--serve" {
		t.Errorf("config: got %+v", img.Config)
	}

	got, err := s.Get(ctx, img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	img.Names = nil
	if got.Digest != img.Digest || got.Size != img.Size || got.Platform != img.Platform ||
		!got.CreatedAt.Equal(now) || got.Config.Entrypoint[0] != "/bin/fn" || got.Names != nil {
		t.Errorf("get: got %+v, want %+v", got, img)
	}

	if err := s.Remove(ctx, img.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, img.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("get after remove: got %v, want ErrNotFound", err)
	}
	assertEmptyStore(t, s)
}

func mustManifest(t testing.TB, a *testArchive, desc ocispec.Descriptor) *image {
	t.Helper()
	img, err := loadImage(blobDir(writeBlobs(t, a)), desc)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeBlobs lays the archive's blobs out as a blobDir.
func writeBlobs(t testing.TB, a *testArchive) string {
	t.Helper()
	dir := t.TempDir()
	for d, b := range a.blobs {
		p := blobDir(dir).pathOf(d)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBadDigests checks the lookups' answers for digests that are not
// there or are not digests.
func TestBadDigests(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Config{})
	tests := []struct {
		name   string
		digest string
		want   error
	}{
		{"absent", "sha256:" + strings.Repeat("ab", 32), errdefs.ErrNotFound},
		{"not a digest", "latest", errdefs.ErrInvalid},
		{"path in disguise", "sha256:../../etc", errdefs.ErrInvalid},
		{"other algorithm", "sha512:" + strings.Repeat("ab", 64), errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Get(ctx, tt.digest); !errors.Is(err, tt.want) {
				t.Errorf("Get: got %v, want %v", err, tt.want)
			}
			if _, err := s.RootFS(ctx, tt.digest); !errors.Is(err, tt.want) {
				t.Errorf("RootFS: got %v, want %v", err, tt.want)
			}
			if err := s.Remove(ctx, tt.digest); !errors.Is(err, tt.want) {
				t.Errorf("Remove: got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestRemoveKeepsSharedBlobs removes one of two images sharing a layer:
// the shared layer stays, and the other image still unpacks.
func TestRemoveKeepsSharedBlobs(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s := newStore(t, Config{})
	a := newArchive(t)
	shared := a.layer(file("shared", "s", 0o644))
	first := a.manifest(nil, ocispec.ImageConfig{Cmd: []string{"one"}}, shared)
	a.add(first, "one")
	b := newArchive(t)
	b.blobs = a.blobs
	second := b.manifest(nil, ocispec.ImageConfig{Cmd: []string{"two"}}, shared, b.layer(file("own", "o", 0o644)))
	b.add(second, "two")
	for _, arch := range []*testArchive{a, b} {
		if _, err := s.ImportArchive(ctx, arch.write()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Remove(ctx, second.Digest.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.blobDir().pathOf(shared.desc.Digest)); err != nil {
		t.Errorf("shared layer: %v, want it kept", err)
	}
	if _, err := os.Stat(s.blobDir().pathOf(second.Digest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed manifest: got %v, want it gone", err)
	}
	if err := os.RemoveAll(s.rootPath(first.Digest)); err != nil {
		t.Fatal(err)
	}
	root, err := s.RootFS(ctx, first.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "shared")); err != nil {
		t.Error(err)
	}
}

// TestInterruptedUnpack simulates a crash: a half-made root left in tmp is
// wiped by Open and never used, and an image whose root is gone gets it
// back from its blobs.
func TestInterruptedUnpack(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "images")
	s, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	img, root := importLayers(t, s, []tarEntry{file("bin/fn", "fn", 0o755)})

	// The crash: the root is half deleted, and an unpack was in progress.
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "tmp", "unpack-123", "rootfs")
	if err := os.MkdirAll(filepath.Join(stale, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "bin", "fn"), []byte("half"), 0o755); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, filepath.Join(dir, "tmp")); len(got) != 0 {
		t.Errorf("tmp after Open: got %v, want nothing", got)
	}
	got, err := s.RootFS(ctx, img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if got != root {
		t.Errorf("root: got %s, want %s", got, root)
	}
	if b, err := os.ReadFile(filepath.Join(got, "bin", "fn")); err != nil || string(b) != "fn" {
		t.Errorf("bin/fn: got %q, %v; want %q", b, err, "fn")
	}
	if names := listDir(t, filepath.Join(dir, "tmp")); len(names) != 0 {
		t.Errorf("tmp after RootFS: got %v, want nothing", names)
	}
}

// TestReimport imports the same archive twice: the second import keeps
// the existing root and blobs and succeeds.
func TestReimport(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s := newStore(t, Config{})
	a := newArchive(t)
	a.image(a.layer(file("a", "a", 0o644)))
	path := a.write()
	first, err := s.ImportArchive(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.ImportArchive(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if first.Digest != second.Digest {
		t.Errorf("digests: %s then %s", first.Digest, second.Digest)
	}
	if got := listDir(t, s.rootDir()); len(got) != 1 {
		t.Errorf("roots: got %v, want one", got)
	}
}

// TestNotAnOCIArchive checks the errors for archives of the wrong kind.
func TestNotAnOCIArchive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeRaw := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write := func(name string, entries ...tarEntry) string {
		return writeRaw(name, tarLayer(t, entries...))
	}
	tests := []struct {
		name string
		path string
		want error
	}{
		{"missing file", filepath.Join(dir, "nope.tar"), errdefs.ErrNotFound},
		{"docker-archive of no image", write("docker.tar", file("manifest.json", "[]", 0o644)), errdefs.ErrInvalid},
		{"no index", write("noindex.tar", file("oci-layout", `{"imageLayoutVersion":"1.0.0"}`, 0o644)), errdefs.ErrInvalid},
		{"wrong layout version", write("v2.tar", file("oci-layout", `{"imageLayoutVersion":"2.0.0"}`, 0o644)), errdefs.ErrInvalid},
		{"empty index", write("empty.tar", file("oci-layout", `{"imageLayoutVersion":"1.0.0"}`, 0o644),
			file("index.json", `{"schemaVersion":2,"manifests":[]}`, 0o644)), errdefs.ErrInvalid},
		{"missing manifest blob", write("nomanifest.tar", file("oci-layout", `{"imageLayoutVersion":"1.0.0"}`, 0o644),
			file("index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
				`"digest":"sha256:`+strings.Repeat("ab", 32)+`","size":2}]}`, 0o644)), errdefs.ErrInvalid},
		{"truncated tar", writeRaw("trunc.tar", tarLayer(t, file("blobs/sha256/"+strings.Repeat("ab", 32), strings.Repeat("x", 4000), 0o644))[:2048]),
			errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Config{})
			_, err := s.ImportArchive(ctx, tt.path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("import: got %v, want %v", err, tt.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestGzippedArchive imports an oci-archive that was gzipped whole
// (f.tar.gz), which people do to move archives around.
func TestGzippedArchive(t *testing.T) {
	requireRoot(t)
	a := newArchive(t)
	a.image(a.layer(file("a", "a", 0o644)))
	plain, err := os.ReadFile(a.write())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "f.tar.gz")
	if err := os.WriteFile(p, gzipBytes(t, plain), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := newStore(t, Config{}).ImportArchive(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"f:latest"}; !slices.Equal(img.Names, want) {
		t.Errorf("names: got %q, want %q", img.Names, want)
	}
}
