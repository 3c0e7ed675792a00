package images

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// testRegistry is go-containerregistry's registry (a real implementation
// of the distribution protocol) behind a handler that counts blob GETs,
// can cut blob responses half-way and can demand basic auth.
type testRegistry struct {
	t    *testing.T
	srv  *httptest.Server
	host string

	mu     sync.Mutex
	gets   map[string]int   // blob GETs by digest
	sent   map[string]int64 // blob bytes written, by digest
	cut    map[string]bool  // blobs whose responses are cut half-way
	user   string           // when set, basic auth user:pass is demanded
	passwd string
}

func newRegistry(t *testing.T) *testRegistry {
	r := &testRegistry{t: t, gets: map[string]int{}, sent: map[string]int64{}, cut: map[string]bool{}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.serve(inner, w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func (r *testRegistry) serve(inner http.Handler, w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	user, passwd := r.user, r.passwd
	var blob string
	if i := strings.Index(req.URL.Path, "/blobs/sha256:"); i >= 0 && req.Method == http.MethodGet {
		blob = req.URL.Path[i+len("/blobs/"):]
		r.gets[blob]++
	}
	cut := blob != "" && r.cut[blob]
	r.mu.Unlock()
	if user != "" {
		u, p, ok := req.BasicAuth()
		if !ok || u != user || p != passwd {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
	}
	if blob == "" {
		inner.ServeHTTP(w, req)
		return
	}
	rec := httptest.NewRecorder()
	inner.ServeHTTP(rec, req)
	body := rec.Body.Bytes()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(rec.Code)
	if cut {
		body = body[:len(body)/2]
	}
	n, _ := w.Write(body)
	r.mu.Lock()
	r.sent[blob] += int64(n)
	r.mu.Unlock()
	if cut {
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection drops mid-body
	}
}

func (r *testRegistry) blobGets(d string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets[d]
}

func (r *testRegistry) blobSent(d string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent[d]
}

func (r *testRegistry) setCut(d string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut[d] = on
}

// push uploads an image made of layers for plat (os/arch) as repo:tag.
func (r *testRegistry) image(plat string, layers ...v1.Layer) v1.Image {
	r.t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		r.t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		r.t.Fatal(err)
	}
	parts := strings.Split(plat, "/")
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = parts[0], parts[1]
	if len(parts) > 2 {
		cf.Variant = parts[2]
	}
	cf.Config.Entrypoint = []string{"/bin/fn"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		r.t.Fatal(err)
	}
	return mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
}

func (r *testRegistry) push(ref string, img v1.Image) {
	r.t.Helper()
	if err := remote.Write(r.ref(ref), img); err != nil {
		r.t.Fatal(err)
	}
}

// pushIndex uploads one image per platform behind an index.
func (r *testRegistry) pushIndex(ref string, plats ...string) {
	r.t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range plats {
		img := r.image(p, textLayer(r.t, "arch", p))
		cf, _ := img.ConfigFile()
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}}})
	}
	if err := remote.WriteIndex(r.ref(ref), idx); err != nil {
		r.t.Fatal(err)
	}
}

func (r *testRegistry) ref(s string) name.Reference {
	r.t.Helper()
	ref, err := name.ParseReference(r.host + "/" + s)
	if err != nil {
		r.t.Fatal(err)
	}
	return ref
}

// textLayer is an uncompressed layer holding one file.
func textLayer(t *testing.T, path, content string) v1.Layer {
	return static.NewLayer(tarLayer(t, file(path, content, 0o644)), types.OCIUncompressedLayer)
}

// entriesLayer is an uncompressed layer of the given entries.
func entriesLayer(t *testing.T, entries ...tarEntry) v1.Layer {
	return static.NewLayer(tarLayer(t, entries...), types.OCIUncompressedLayer)
}

// randomLayer is an uncompressed layer of n random bytes in one file.
func randomLayer(t *testing.T, path string, n int) v1.Layer {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return static.NewLayer(tarLayer(t, file(path, string(b), 0o644)), types.OCIUncompressedLayer)
}

func pullStore(t *testing.T) *Store {
	return newStore(t, Config{Remote: Remote{Attempts: 2, Backoff: time.Millisecond}})
}

func layerDigest(t *testing.T, l v1.Layer) string {
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// TestPullPicksPlatform pulls a two-platform index and gets this host's
// image; an index without this host's platform fails with its platforms.
func TestPullPicksPlatform(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	host := hostPlatform().String()
	reg.pushIndex("multi:1", "linux/s390x", host)
	reg.pushIndex("foreign:1", "linux/s390x", "linux/riscv64")
	s := pullStore(t)
	ref := reg.host + "/multi:1"
	img, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Platform != host || len(img.Names) != 1 || img.Names[0] != ref {
		t.Errorf("pulled: platform %s names %q; want %s [%s]", img.Platform, img.Names, host, ref)
	}
	assertRootFile(t, s, img.Digest, "arch", host)
	_, err = s.Pull(context.Background(), reg.host+"/foreign:1", PullOptions{})
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "linux/s390x, linux/riscv64") {
		t.Fatalf("pull of a foreign index: got %v, want ErrInvalid listing linux/s390x, linux/riscv64", err)
	}
	// A lone manifest for another platform: refused by its config, before
	// any layer is fetched.
	layer := randomLayer(t, "big", 64<<10)
	reg.push("lone:1", reg.image("linux/s390x", layer))
	_, err = s.Pull(context.Background(), reg.host+"/lone:1", PullOptions{})
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "linux/s390x") {
		t.Fatalf("pull of a foreign image: got %v, want ErrInvalid naming linux/s390x", err)
	}
	if n := reg.blobGets(layerDigest(t, layer)); n != 0 {
		t.Errorf("the foreign image's layer was fetched %d times, want 0", n)
	}
}

// TestPullErrors checks that each way a pull fails has its own class.
func TestPullErrors(t *testing.T) {
	reg := newRegistry(t)
	reg.push("there:1", reg.image(hostPlatform().String(), textLayer(t, "a", "a")))
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name string
		ref  string
		want error
	}{
		{"no such tag", reg.host + "/there:2", errdefs.ErrNotFound},
		{"no such repository", reg.host + "/nothing:1", errdefs.ErrNotFound},
		{"no route", strings.TrimPrefix(closed.URL, "http://") + "/x:1", errdefs.ErrUnavailable},
		{"bad reference", "UPPER CASE", errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := pullStore(t)
			_, err := s.Pull(context.Background(), tt.ref, PullOptions{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("pull: got %v, want %v", err, tt.want)
			}
			t.Logf("refused: %v", err)
			assertEmptyStore(t, s)
		})
	}
}

// TestPullAuth pulls from a registry that demands credentials: refused
// without them, taken from a docker config file with them.
func TestPullAuth(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	reg.push("private:1", reg.image(hostPlatform().String(), textLayer(t, "a", "a")))
	reg.user, reg.passwd = "edge", "s3cret"
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	ref := reg.host + "/private:1"
	if _, err := pullStore(t).Pull(context.Background(), ref, PullOptions{}); !errors.Is(err, errdefs.ErrPermission) {
		t.Fatalf("pull without credentials: got %v, want ErrPermission", err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("edge:s3cret"))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.host, auth)
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pullStore(t).Pull(context.Background(), ref, PullOptions{}); err != nil {
		t.Fatalf("pull with credentials: %v", err)
	}
}

// TestPullResumes cuts the transfer of the last layer half-way, every
// time, so the pull fails; the pull run again fetches only that layer.
// A second image sharing the base layer does not fetch it again.
func TestPullResumes(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	base, mid, last := randomLayer(t, "base", 256<<10), randomLayer(t, "mid", 128<<10), randomLayer(t, "last", 512<<10)
	img := reg.image(hostPlatform().String(), base, mid, last)
	reg.push("app:1", img)
	reg.push("app:2", reg.image(hostPlatform().String(), base, textLayer(t, "v", "2")))
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	s := pullStore(t)
	ctx := context.Background()
	reg.setCut(layerDigest(t, last), true)
	var lastDone, lastTotal int64
	_, err = s.Pull(ctx, reg.host+"/app:1", PullOptions{Progress: func(done, total int64) { lastDone, lastTotal = done, total }})
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("cut pull: got %v, want ErrUnavailable", err)
	}
	t.Logf("cut pull: %v (progress %d/%d)", err, lastDone, lastTotal)
	if got, want := reg.blobGets(layerDigest(t, last)), 2; got != want {
		t.Errorf("cut layer: %d GETs, want %d (one per attempt)", got, want)
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Errorf("a failed pull left images %v", imgs)
	}
	// Each attempt resumed where the last broke: half, then half the rest.
	lastSize, err := last.Size()
	if err != nil {
		t.Fatal(err)
	}
	part, err := os.Stat(s.partialPath(digest.Digest(layerDigest(t, last))))
	if err != nil || part.Size() != lastSize/2+(lastSize-lastSize/2)/2 {
		t.Errorf("part kept of the cut layer: %v %v, want 3/4 of %d bytes", part, err, lastSize)
	}

	reg.setCut(layerDigest(t, last), false)
	if _, err := s.Pull(ctx, reg.host+"/app:1", PullOptions{}); err != nil {
		t.Fatalf("pull again: %v", err)
	}
	if _, err := s.Pull(ctx, reg.host+"/app:2", PullOptions{}); err != nil {
		t.Fatalf("pull of an image sharing a layer: %v", err)
	}
	for _, tc := range []struct {
		what string
		d    string
		want int
	}{
		{"config", cfg.String(), 1},
		{"base layer (finished, then shared)", layerDigest(t, base), 1},
		{"middle layer (finished)", layerDigest(t, mid), 1},
		{"cut layer", layerDigest(t, last), 3},
	} {
		if got := reg.blobGets(tc.d); got != tc.want {
			t.Errorf("%s: %d GETs, want %d", tc.what, got, tc.want)
		}
	}
	// Three GETs, but every byte of the cut layer was sent once: the
	// ranges asked only for what was missing.
	if sent := reg.blobSent(layerDigest(t, last)); sent != lastSize {
		t.Errorf("cut layer: %d bytes sent for a %d-byte blob", sent, lastSize)
	}
	if left, _ := os.ReadDir(s.partialDir()); len(left) != 0 {
		t.Errorf("parts left after the pull: %v", left)
	}
}
