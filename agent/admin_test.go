package agent

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/internal/testroot"
)

// newTestAgent opens a real agent (SQLite store, image store, sandbox
// manager) in a temporary state directory, below a cgroup parent of its
// own so that its start-up cleanup cannot touch anyone else's sandboxes.
// It starts no sandbox and does not listen.
func newTestAgent(t *testing.T) *Agent {
	t.Helper()
	testroot.RequireRoot(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	a, err := New(t.Context(), Config{
		StateDir:     t.TempDir(),
		CgroupParent: "edgefaas-unit-" + hex.EncodeToString(b),
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

// serve sends one request to h and returns the recorded answer.
func serve(t *testing.T, h http.Handler, method, path string, body io.Reader) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, body))
	return rec
}

// errorBody decodes an api.Error answer, failing the test when the body is
// not one.
func errorBody(t *testing.T, rec *httptest.ResponseRecorder) api.Error {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e api.Error
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not an api.Error with a message (err %v)", rec.Body.String(), err)
	}
	return e
}

// oversizedSpec is a syntactically valid spec whose JSON is longer than
// maxSpecBytes.
func oversizedSpec() string {
	return `{"image":"x","env":{"BIG":"` + strings.Repeat("a", maxSpecBytes) + `"}}`
}

func TestDecodeJSON(t *testing.T) {
	exact := `{"name":"x","image":"` // padded below to exactly maxSpecBytes
	exact += strings.Repeat("i", maxSpecBytes-len(exact)-2) + `"}`
	tests := []struct {
		name    string
		body    string
		wantErr bool
		want    api.FunctionSpec
	}{
		{name: "spec", body: `{"name":"x","image":"img:1","memory_bytes":67108864,"timeout":"5s"}`,
			want: api.FunctionSpec{Name: "x", Image: "img:1", Memory: 64 << 20, Timeout: api.Duration(5e9)}},
		{name: "exactly maxSpecBytes", body: exact, want: api.FunctionSpec{Name: "x", Image: exact[len(`{"name":"x","image":"`) : len(exact)-2]}},
		{name: "empty body", body: "", wantErr: true},
		{name: "only whitespace", body: " \n\t", wantErr: true},
		{name: "unknown field", body: `{"name":"x","colour":"red"}`, wantErr: true},
		{name: "misspelt field", body: `{"name":"x","memory":1}`, wantErr: true},
		{name: "wrong type", body: `{"memory_bytes":"128Mi"}`, wantErr: true},
		{name: "not an object", body: `["x"]`, wantErr: true},
		{name: "truncated", body: `{"name":"x"`, wantErr: true},
		{name: "over maxSpecBytes", body: oversizedSpec(), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/v1/functions", strings.NewReader(tt.body))
			var got api.FunctionSpec
			err := decodeJSON(r, &got)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("decodeJSON = %v; want an error wrapping ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeJSON: %v", err)
			}
			if got.Name != tt.want.Name || got.Image != tt.want.Image || got.Memory != tt.want.Memory || got.Timeout != tt.want.Timeout {
				t.Errorf("decodeJSON\n got  %+v\n want %+v", got, tt.want)
			}
		})
	}
}

// TestAdminAPIEmptyAgent exercises the admin API paths that need no image
// and no sandbox, on a real agent with nothing deployed.
func TestAdminAPIEmptyAgent(t *testing.T) {
	a := newTestAgent(t)
	h := a.adminHandler()
	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		wantCode int
		wantBody string // exact body for 2xx answers
		wantMsg  string // substring of the api.Error message otherwise
	}{
		{name: "list functions", method: "GET", path: "/v1/functions", wantCode: 200, wantBody: "[]\n"},
		{name: "list images", method: "GET", path: "/v1/images", wantCode: 200, wantBody: "[]\n"},
		{name: "get unknown function", method: "GET", path: "/v1/functions/ghost", wantCode: 404, wantMsg: `"ghost"`},
		{name: "remove unknown function", method: "DELETE", path: "/v1/functions/ghost", wantCode: 404, wantMsg: `"ghost"`},
		{name: "remove unknown image", method: "DELETE", path: "/v1/images/ghost:1", wantCode: 404, wantMsg: "ghost"},
		{name: "deploy with an image never imported", method: "PUT", path: "/v1/functions/x",
			body: `{"image":"never-imported:1"}`, wantCode: 404, wantMsg: "import it first"},
		{name: "deploy by POST with an image never imported", method: "POST", path: "/v1/functions",
			body: `{"name":"x","image":"never-imported:1"}`, wantCode: 404, wantMsg: "import it first"},
		{name: "name in body differs from path", method: "PUT", path: "/v1/functions/x",
			body: `{"name":"y","image":"never-imported:1"}`, wantCode: 400, wantMsg: "differs"},
		{name: "unknown field", method: "PUT", path: "/v1/functions/x",
			body: `{"image":"i","colour":"red"}`, wantCode: 400, wantMsg: "colour"},
		{name: "empty body", method: "PUT", path: "/v1/functions/x", wantCode: 400, wantMsg: "empty request body"},
		{name: "body over 1 MiB", method: "PUT", path: "/v1/functions/x", body: oversizedSpec(), wantCode: 400, wantMsg: "request body"},
		{name: "garbage image archive", method: "POST", path: "/v1/images", body: "this is not a tar archive\x00\x01", wantCode: 400, wantMsg: "archive"},
		{name: "empty image archive", method: "POST", path: "/v1/images", wantCode: 400, wantMsg: "archive"},
		{name: "wrong method", method: "PATCH", path: "/v1/functions/x", wantCode: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, h, tt.method, tt.path, strings.NewReader(tt.body))
			if rec.Code != tt.wantCode {
				t.Fatalf("%s %s: code %d, want %d; body %q", tt.method, tt.path, rec.Code, tt.wantCode, rec.Body.String())
			}
			switch {
			case tt.wantBody != "":
				if got := rec.Body.String(); got != tt.wantBody {
					t.Errorf("%s %s: body %q, want %q", tt.method, tt.path, got, tt.wantBody)
				}
			case tt.wantMsg != "":
				if e := errorBody(t, rec); !strings.Contains(e.Error, tt.wantMsg) {
					t.Errorf("%s %s: error %q, want it to mention %q", tt.method, tt.path, e.Error, tt.wantMsg)
				}
			}
		})
	}

	// None of the failures above may have left a trace.
	t.Run("nothing recorded", func(t *testing.T) {
		for _, path := range []string{"/v1/functions", "/v1/images"} {
			if rec := serve(t, h, "GET", path, nil); rec.Code != 200 || rec.Body.String() != "[]\n" {
				t.Errorf("GET %s: %d %q, want 200 %q", path, rec.Code, rec.Body.String(), "[]\n")
			}
		}
		entries, err := os.ReadDir(filepath.Join(a.cfg.StateDir, "uploads"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			t.Errorf("uploads directory keeps %d spooled files after failed imports, want none", len(entries))
		}
		rec := serve(t, h, "GET", "/v1/info", nil)
		var info api.Info
		if err := json.Unmarshal(rec.Body.Bytes(), &info); rec.Code != 200 || err != nil {
			t.Fatalf("GET /v1/info: %d %q (%v)", rec.Code, rec.Body.String(), err)
		}
		if info.Functions != 0 || info.Images != 0 || info.Instances != 0 || info.StateDir != a.cfg.StateDir {
			t.Errorf("info %+v; want no functions, images or instances and state dir %q", info, a.cfg.StateDir)
		}
	})
}
