package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/images"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// pushTestImage pushes a one-layer image for this host to a registry
// running in the test (go-containerregistry's real registry handler) and
// returns its reference.
func pushTestImage(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/fn:1"
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(bytes.Repeat([]byte{0}, 1024), types.OCIUncompressedLayer))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestPullRoute pulls through the admin API with a progress stream, lists
// the image, prunes it, and checks the error answers of a pull.
func TestPullRoute(t *testing.T) {
	a := newTestAgent(t)
	if runtime.GOARCH == "arm" {
		t.Skip("the test image carries no ARM variant")
	}
	h := a.adminHandler()
	ref := pushTestImage(t)
	body, _ := json.Marshal(api.PullRequest{Ref: ref, Progress: true})
	req := httptest.NewRequest(http.MethodPost, "/v1/images", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("pull with progress: %d %s %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var last api.PullEvent
	var progress int
	for sc := bufio.NewScanner(rec.Body); sc.Scan(); {
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("stream line %q: %v", sc.Text(), err)
		}
		if last.Total > 0 {
			progress++
		}
	}
	if last.Image == nil || last.Image.Names[0] != ref || progress == 0 {
		t.Fatalf("stream ended with %+v after %d progress lines; want the image and progress", last, progress)
	}
	var imgs []api.Image
	if rec := serve(t, h, http.MethodGet, "/v1/images", nil); json.Unmarshal(rec.Body.Bytes(), &imgs) != nil || len(imgs) != 1 {
		t.Fatalf("list: %s", rec.Body)
	}
	rec = serve(t, h, http.MethodPost, "/v1/images/prune?all=1", nil)
	var pr api.PruneResult
	if err := json.Unmarshal(rec.Body.Bytes(), &pr); err != nil || len(pr.Images) != 1 || pr.Blobs != 3 {
		t.Fatalf("prune: %d %s, want one image and its 3 blobs", rec.Code, rec.Body)
	}
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"ref":""}`, http.StatusBadRequest},
		{`{"ref":"` + strings.Replace(ref, "fn:1", "none:1", 1) + `"}`, http.StatusNotFound},
		{`{"ref":"127.0.0.1:1/x:1"}`, http.StatusServiceUnavailable},
	} {
		req := httptest.NewRequest(http.MethodPost, "/v1/images", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("pull %s: got %d %s, want %d", tc.body, rec.Code, rec.Body, tc.code)
		}
	}
}

// TestImportNamesFromClientFile uploads an archive whose only name is a
// bare tag (as umoci writes): the name is made from the client's file
// name, never from the agent's spool file.
func TestImportNamesFromClientFile(t *testing.T) {
	a := newTestAgent(t)
	if runtime.GOARCH == "arm" {
		t.Skip("the test image carries no ARM variant")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fn"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	_, err := images.Build(t.Context(), &archive, images.BuildOptions{Name: "1.0", Platforms: []string{"linux/" + runtime.GOARCH},
		Files: func(string) (string, error) { return dir, nil }, Config: api.ImageConfig{Entrypoint: []string{"/fn"}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := serve(t, a.adminHandler(), http.MethodPost, "/v1/images?file=hello.tar", &archive)
	var img api.Image
	if err := json.Unmarshal(rec.Body.Bytes(), &img); err != nil || rec.Code != http.StatusCreated {
		t.Fatalf("import: %d %s", rec.Code, rec.Body)
	}
	if len(img.Names) != 1 || img.Names[0] != "hello:1.0" {
		t.Errorf("names: got %q, want [hello:1.0]", img.Names)
	}
}

// TestStartCollectsLeftovers starts an agent on a state where a crash left
// a blob no image uses (a pull cut off) and work in the store's tmp: both
// are gone once the agent has started.
func TestStartCollectsLeftovers(t *testing.T) {
	first := newTestAgent(t)
	cfg := first.cfg
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(cfg.StateDir, "images", "blobs", "sha256", strings.Repeat("ab", 32))
	half := filepath.Join(cfg.StateDir, "images", "tmp", "import-1", "rootfs", "half")
	for _, p := range []string{orphan, half} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("left over"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, p := range []string{orphan, filepath.Dir(filepath.Dir(half))} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after start: %v, want it gone", p, err)
		}
	}
}
