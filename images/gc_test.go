package images

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// TestCollect imports two images sharing a layer, which is stored once,
// then collects: first all but one image, then everything.
func TestCollect(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s := newStore(t, Config{})
	shared := []tarEntry{file("bin/fn", strings.Repeat("x", 4096), 0o755)}
	imgA, _ := importLayers(t, s, shared, []tarEntry{file("a", "a", 0o644)})
	imgB, _ := importLayers(t, s, shared, []tarEntry{file("b", "b", 0o644)})
	// 2 manifests, 2 configs, 3 layers: the shared one once.
	if got := listDir(t, s.blobDir().path()); len(got) != 7 {
		t.Fatalf("blobs: got %d, want 7 (the shared layer once)", len(got))
	}
	res, err := s.Collect(ctx, Keep{Images: map[string]bool{imgA.Digest: true}, Roots: map[string]bool{imgA.Digest: true}})
	if err != nil {
		t.Fatal(err)
	}
	// B's manifest, config and own layer go; the shared layer stays.
	if len(res.Images) != 1 || res.Images[0] != imgB.Digest || res.Roots != 1 || res.Blobs != 3 || res.Bytes <= 0 {
		t.Errorf("collected %+v, want image B, its root and 3 blobs", res)
	}
	if _, err := s.Get(ctx, imgA.Digest); err != nil {
		t.Errorf("A after collecting B: %v", err)
	}
	if _, err := s.RootFS(ctx, imgA.Digest); err != nil {
		t.Errorf("A's root after collecting B: %v", err)
	}
	if got := listDir(t, s.blobDir().path()); len(got) != 4 {
		t.Errorf("blobs left: got %d, want A's 4", len(got))
	}
	// Kept as an image but no longer deployed: the root goes, blobs stay.
	res, err = s.Collect(ctx, Keep{Images: map[string]bool{imgA.Digest: true}})
	if err != nil || res.Roots != 1 || res.Blobs != 0 || len(res.Images) != 0 {
		t.Errorf("collect of A's root: %+v, %v; want only the root", res, err)
	}
	if _, err := s.Collect(ctx, Keep{}); err != nil {
		t.Fatal(err)
	}
	assertEmptyStore(t, s)
	if n, err := s.Usage(); err != nil || n != 0 {
		t.Errorf("usage of an empty store: %d, %v", n, err)
	}
}

// TestCollectAfterCutPull collects the blobs a failed pull left, unless a
// pull in progress pins them.
func TestCollectAfterCutPull(t *testing.T) {
	reg := newRegistry(t)
	first, last := randomLayer(t, "first", 64<<10), randomLayer(t, "last", 64<<10)
	reg.push("app:1", reg.image(hostPlatform().String(), first, last))
	reg.setCut(layerDigest(t, last), true)
	s := pullStore(t)
	if _, err := s.Pull(context.Background(), reg.host+"/app:1", PullOptions{}); err == nil {
		t.Fatal("cut pull succeeded")
	}
	if n := len(listDir(t, s.blobDir().path())); n == 0 {
		t.Fatal("the cut pull kept no finished blob")
	}
	d := digest.Digest(layerDigest(t, first))
	unpin := s.pin(d)
	if _, err := s.Collect(context.Background(), Keep{}); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, s.blobDir().path()); len(got) != 1 || got[0] != d.Encoded() {
		t.Errorf("blobs after collecting with one pinned: %v, want [%s]", got, d.Encoded())
	}
	unpin()
	if _, err := s.Collect(context.Background(), Keep{}); err != nil {
		t.Fatal(err)
	}
	assertEmptyStore(t, s)
	// The cut layer's part stays for the next pull to resume, until no
	// pull has touched it for partialMaxAge.
	part := s.partialPath(digest.Digest(layerDigest(t, last)))
	if _, err := os.Stat(part); err != nil {
		t.Fatalf("the cut layer's part: %v", err)
	}
	old := time.Now().Add(-partialMaxAge - time.Hour)
	if err := os.Chtimes(part, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collect(context.Background(), Keep{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(part); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a part untouched for %s survived collection: %v", partialMaxAge, err)
	}
}

// TestQuota refuses imports that would pass the store's quota, whether
// by their blobs or by what their root unpacks to, and leaves nothing.
func TestQuota(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	big := []tarEntry{file("big", strings.Repeat("z", 256<<10), 0o644)} // gzips to little
	tests := []struct {
		name  string
		quota int64
		want  error
	}{
		{"blobs alone pass it", 100, errdefs.ErrTooLarge},
		{"the root passes it", 64 << 10, errdefs.ErrTooLarge},
		{"fits", 1 << 20, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Config{Quota: tt.quota})
			a := newArchive(t)
			a.image(a.layer(big...))
			_, err := s.ImportArchive(ctx, a.write())
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("import: got %v, want %v", err, tt.want)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "quota") {
					t.Errorf("error %q does not say quota", err)
				}
				t.Logf("refused: %v", err)
				assertEmptyStore(t, s)
			}
		})
	}
}
