package controller

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/errdefs"
)

// TestRegistryManifestChecks: what a manifest PUT refuses, each with the
// distribution spec's status and code, and nothing stored for it.
func TestRegistryManifestChecks(t *testing.T) {
	tc := startController(t, Config{})
	config := tc.pushBlob(t, "fn", []byte(`{"architecture":"amd64","os":"linux"}`))
	layer := tc.pushBlob(t, "fn", []byte("layer"))
	good := imageManifest(config, 37, layer)
	missing := digestOf([]byte("never pushed"))
	index := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		mediaOCIIndex, mediaOCIManifest, digestOf(good), len(good)))
	tests := []struct {
		name, ref, contentType string
		body                   []byte
		code                   int
		errCode                string
	}{
		{"index before its manifest", "idx", mediaOCIIndex, index, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"good", "1", mediaOCIManifest, good, 201, ""},
		{"good by its digest", digestOf(good), mediaOCIManifest, good, 201, ""},
		{"index after its manifest", "idx", mediaOCIIndex, index, 201, ""},
		{"digest not the body's", digestOf([]byte("x")), mediaOCIManifest, good, 400, "DIGEST_INVALID"},
		{"missing layer", "2", mediaOCIManifest, imageManifest(config, 37, missing), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"missing config", "2", mediaOCIManifest, imageManifest(missing, 37, layer), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"config size wrong", "2", mediaOCIManifest, imageManifest(config, 36, layer), 400, "MANIFEST_INVALID"},
		{"bad descriptor digest", "2", mediaOCIManifest, imageManifest("sha256:../../x", 37, layer), 400, "MANIFEST_INVALID"},
		{"too large", "2", mediaOCIManifest, append(good, bytes.Repeat([]byte(" "), MaxManifest)...), 413, "SIZE_INVALID"},
		{"content type not a manifest", "2", "application/json", good, 400, "MANIFEST_INVALID"},
		{"mediaType field and header differ", "2", mediaDockerManifest, good, 400, "MANIFEST_INVALID"},
		{"schema 1", "2", mediaOCIManifest, []byte(`{"schemaVersion":1}`), 400, "MANIFEST_INVALID"},
		{"not JSON", "2", mediaOCIManifest, []byte(`{"schemaVersion":2`), 400, "MANIFEST_INVALID"},
		{"bad tag", ".x", mediaOCIManifest, good, 400, "MANIFEST_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tc.do(t, http.MethodPut, "/v2/fn/manifests/"+tt.ref, tt.contentType, tt.body)
			if r.code != tt.code || r.errCode() != tt.errCode {
				t.Fatalf("got %d %q (%s), want %d %q", r.code, r.errCode(), r.body, tt.code, tt.errCode)
			}
		})
	}
	if r := tc.do(t, http.MethodGet, "/v2/fn/manifests/2", "", nil); r.code != 404 || r.errCode() != "MANIFEST_UNKNOWN" {
		t.Errorf("a refused manifest is held: %d %s", r.code, r.body)
	}
	r := tc.do(t, http.MethodGet, "/v2/fn/tags/list", "", nil)
	if r.code != 200 || strings.TrimSpace(r.body) != `{"name":"fn","tags":["1","idx"]}` {
		t.Errorf("tags: %d %s", r.code, r.body)
	}
	if r := tc.do(t, http.MethodGet, "/v2/fn/tags/list?n=1", "", nil); !strings.Contains(r.body, `["1"]`) ||
		!strings.Contains(r.header.Get("Link"), "last=1") {
		t.Errorf("tags page: %s, Link %q", r.body, r.header.Get("Link"))
	}
	for _, path := range []string{"/v2/Fn/tags/list", "/v2/fn//x/tags/list", "/v2/-fn/manifests/1", "/v2/a__-b/blobs/" + layer} {
		if r := tc.do(t, http.MethodGet, path, "", nil); r.code != 400 || r.errCode() != "NAME_INVALID" {
			// The mux cleans "//" with a redirect first.
			if !(r.code == 404 && strings.Contains(path, "//")) {
				t.Errorf("GET %s: %d %s, want NAME_INVALID", path, r.code, r.body)
			}
		}
	}
	// Deleting a manifest by digest drops the tags naming it.
	if r := tc.do(t, http.MethodDelete, "/v2/fn/manifests/"+digestOf(good), "", nil); r.code != 202 {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	if r := tc.do(t, http.MethodHead, "/v2/fn/manifests/1", "", nil); r.code != 404 {
		t.Errorf("tag after its manifest was deleted: %d", r.code)
	}
}

// TestRegistryRestart: manifests and tags are in the database and blobs
// on disk, so a new controller on the same directory serves them.
func TestRegistryRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := New(t.Context(), Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	tc := &testController{srv: s, http: httptestServer(t, s)}
	config := tc.pushBlob(t, "team/fn", []byte(`{"architecture":"amd64","os":"linux"}`))
	layer := tc.pushBlob(t, "team/fn", []byte("layer"))
	m := imageManifest(config, 37, layer)
	if r := tc.do(t, http.MethodPut, "/v2/team/fn/manifests/v1", mediaOCIManifest, m); r.code != 201 {
		t.Fatalf("put: %d %s", r.code, r.body)
	}
	tc.http.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := New(t.Context(), Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	tc = &testController{srv: s2, http: httptestServer(t, s2)}
	r := tc.do(t, http.MethodGet, "/v2/team/fn/manifests/v1", "", nil)
	if r.code != 200 || r.body != string(m) || r.header.Get("Docker-Content-Digest") != digestOf(m) ||
		r.header.Get("Content-Type") != mediaOCIManifest {
		t.Fatalf("after restart: %d %q %v", r.code, r.body, r.header)
	}
	if r := tc.do(t, http.MethodGet, "/v2/team/fn/blobs/"+layer, "", nil); r.code != 200 || r.body != "layer" {
		t.Fatalf("blob after restart: %d %q", r.code, r.body)
	}
	tests := []struct {
		ref, repo, digest string
		err               error
	}{
		{"team/fn:v1", "team/fn", digestOf(m), nil},
		{"team/fn@" + digestOf(m), "team/fn", digestOf(m), nil},
		{"team/fn", "", "", errdefs.ErrNotFound}, // no latest
		{"team/fn:v2", "", "", errdefs.ErrNotFound},
		{"other@" + digestOf(m), "", "", errdefs.ErrNotFound},
		{"team/fn@sha256:1", "", "", errdefs.ErrInvalid},
		{"Team/fn:v1", "", "", errdefs.ErrInvalid},
		{"team/fn:.v1", "", "", errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		repo, digest, err := s2.ResolveImage(t.Context(), tt.ref)
		if repo != tt.repo || digest != tt.digest || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ResolveImage(%q) = %q, %q, %v; want %q, %q, %v", tt.ref, repo, digest, err, tt.repo, tt.digest, tt.err)
		}
	}
}

func httptestServer(t *testing.T, s *Server) *httptest.Server {
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return hs
}

// TestRegistryUploads: a chunked upload as skopeo sends it, a chunk out
// of place, a digest that does not match (nothing kept), ranged reads and
// the version check.
func TestRegistryUploads(t *testing.T) {
	tc := startController(t, Config{})
	r := tc.do(t, http.MethodGet, "/v2/", "", nil, func(r *http.Request) { r.Header.Del("Authorization") })
	if r.code != 401 || r.header.Get("WWW-Authenticate") != `Basic realm="edgecloud"` || r.errCode() != "UNAUTHORIZED" {
		t.Fatalf("ping without credentials: %d %v %s", r.code, r.header, r.body)
	}
	if r := tc.do(t, http.MethodGet, "/v2/", "", nil, func(r *http.Request) {
		r.Header.Del("Authorization")
		r.SetBasicAuth("skopeo", tc.srv.AdminToken())
	}); r.code != 200 {
		t.Fatalf("ping with the admin token as a Basic password: %d", r.code)
	}
	blob := bytes.Repeat([]byte("0123456789"), 1000)
	start := func() string {
		r := tc.do(t, http.MethodPost, "/v2/fn/blobs/uploads/", "", nil)
		if r.code != 202 || r.header.Get("Location") == "" {
			t.Fatalf("start: %d %s", r.code, r.body)
		}
		return r.header.Get("Location")
	}
	loc := start()
	if r := tc.do(t, http.MethodPatch, loc, "", blob[:4000], func(r *http.Request) { r.Header.Set("Content-Range", "0-3999") }); r.code != 202 || r.header.Get("Range") != "0-3999" {
		t.Fatalf("chunk 1: %d %v %s", r.code, r.header, r.body)
	}
	if r := tc.do(t, http.MethodPatch, loc, "", blob[5000:], func(r *http.Request) { r.Header.Set("Content-Range", "5000-9999") }); r.code != 416 {
		t.Fatalf("chunk out of place: %d %s", r.code, r.body)
	}
	if r := tc.do(t, http.MethodPatch, loc, "", blob[4000:9000]); r.code != 202 {
		t.Fatalf("chunk 2: %d %s", r.code, r.body)
	}
	if r := tc.do(t, http.MethodPut, loc+"?digest="+digestOf(blob), "", blob[9000:]); r.code != 201 {
		t.Fatalf("commit: %d %s", r.code, r.body)
	}
	bad := start()
	if r := tc.do(t, http.MethodPut, bad+"?digest="+digestOf([]byte("other")), "", blob); r.code != 400 || r.errCode() != "DIGEST_INVALID" {
		t.Fatalf("wrong digest: %d %s", r.code, r.body)
	}
	if r := tc.do(t, http.MethodHead, "/v2/fn/blobs/"+digestOf([]byte("other")), "", nil); r.code != 404 {
		t.Fatalf("a mismatched upload became a blob: %d", r.code)
	}
	if ents, _ := os.ReadDir(filepath.Join(tc.srv.cfg.DataDir, "registry", "uploads")); len(ents) != 0 {
		t.Errorf("uploads left behind: %d", len(ents))
	}
	for _, tt := range []struct{ rng, want string }{
		{"bytes=9990-", "0123456789"},
		{"bytes=10-14", "01234"},
		{"bytes=-3", "789"},
	} {
		r := tc.do(t, http.MethodGet, "/v2/fn/blobs/"+digestOf(blob), "", nil, func(r *http.Request) {
			r.Header.Set("Range", tt.rng)
			r.Header.Set("If-Range", `"`+digestOf(blob)+`"`)
		})
		if r.code != http.StatusPartialContent || r.body != tt.want {
			t.Errorf("Range %s: %d %q, want 206 %q", tt.rng, r.code, r.body, tt.want)
		}
	}
	if r := tc.do(t, http.MethodGet, "/v2/fn/blobs/"+digestOf(blob), "", nil, func(r *http.Request) {
		r.Header.Set("Range", "bytes=10-14")
		r.Header.Set("If-Range", `"sha256:other"`)
	}); r.code != 200 || len(r.body) != len(blob) {
		t.Errorf("If-Range of another blob: %d, %d bytes; want the whole blob", r.code, len(r.body))
	}
}
