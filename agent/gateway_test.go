package agent

import (
	"regexp"
	"strings"
	"testing"
)

var callIDPattern = regexp.MustCompile(`^[0-9a-f]{24}$`)

func TestGatewayUnknownFunction(t *testing.T) {
	a := newTestAgent(t)
	h := a.gatewayHandler()
	seen := map[string]bool{}
	tests := []struct {
		name   string
		method string
		path   string
		body   string
	}{
		{name: "GET", method: "GET", path: "/function/ghost"},
		{name: "POST with a body", method: "POST", path: "/function/ghost", body: "payload"},
		{name: "sub-path", method: "GET", path: "/function/ghost/a/b?q=1"},
		{name: "trailing slash", method: "PUT", path: "/function/ghost/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, h, tt.method, tt.path, strings.NewReader(tt.body))
			if rec.Code != 404 {
				t.Fatalf("%s %s: code %d, want 404; body %q", tt.method, tt.path, rec.Code, rec.Body.String())
			}
			if got := rec.Header().Get("X-Faas-Status"); got != statusNotFound {
				t.Errorf("X-Faas-Status %q, want %q", got, statusNotFound)
			}
			id := rec.Header().Get("X-Call-Id")
			if !callIDPattern.MatchString(id) {
				t.Errorf("X-Call-Id %q, want 24 hex digits", id)
			}
			if seen[id] {
				t.Errorf("X-Call-Id %q given twice", id)
			}
			seen[id] = true
			e := errorBody(t, rec)
			if e.Status != statusNotFound || !strings.Contains(e.Error, `"ghost"`) {
				t.Errorf("body %+v, want status %q and a message naming \"ghost\"", e, statusNotFound)
			}
		})
	}
}

func TestGatewayHealthz(t *testing.T) {
	a := newTestAgent(t)
	h := a.gatewayHandler()
	tests := []struct {
		name     string
		method   string
		wantCode int
		wantBody string
	}{
		{name: "GET", method: "GET", wantCode: 200, wantBody: "ok\n"},
		{name: "HEAD", method: "HEAD", wantCode: 200, wantBody: "ok\n"}, // the recorder keeps what a server would drop
		{name: "POST", method: "POST", wantCode: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, h, tt.method, "/healthz", nil)
			if rec.Code != tt.wantCode {
				t.Fatalf("%s /healthz: code %d, want %d", tt.method, rec.Code, tt.wantCode)
			}
			if tt.wantBody != "" && rec.Body.String() != tt.wantBody {
				t.Errorf("%s /healthz: body %q, want %q", tt.method, rec.Body.String(), tt.wantBody)
			}
		})
	}
}
