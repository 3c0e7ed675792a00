package agent

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/cgroups"
	"github.com/edgefaas/edgefaas/errdefs"
)

func TestValidate(t *testing.T) {
	ok := api.FunctionSpec{Name: "hello", Image: "hello:latest"}.WithDefaults()
	with := func(f func(*api.FunctionSpec)) api.FunctionSpec {
		s := ok
		f(&s)
		return s
	}
	tests := []struct {
		name    string
		spec    api.FunctionSpec
		wantErr bool
	}{
		{name: "defaults", spec: ok},
		{name: "exec mode", spec: with(func(s *api.FunctionSpec) { s.Mode = api.ModeExec })},
		{name: "one-letter name", spec: with(func(s *api.FunctionSpec) { s.Name = "a" })},
		{name: "digits and dashes", spec: with(func(s *api.FunctionSpec) { s.Name = "0-resize-2" })},
		{name: "63-character name", spec: with(func(s *api.FunctionSpec) { s.Name = strings.Repeat("a", 63) })},
		{name: "64-character name", spec: with(func(s *api.FunctionSpec) { s.Name = strings.Repeat("a", 64) }), wantErr: true},
		{name: "empty name", spec: with(func(s *api.FunctionSpec) { s.Name = "" }), wantErr: true},
		{name: "upper case", spec: with(func(s *api.FunctionSpec) { s.Name = "Hello" }), wantErr: true},
		{name: "leading dash", spec: with(func(s *api.FunctionSpec) { s.Name = "-hello" }), wantErr: true},
		{name: "trailing dash", spec: with(func(s *api.FunctionSpec) { s.Name = "hello-" }), wantErr: true},
		{name: "underscore", spec: with(func(s *api.FunctionSpec) { s.Name = "hello_world" }), wantErr: true},
		{name: "dot", spec: with(func(s *api.FunctionSpec) { s.Name = "hello.world" }), wantErr: true},
		{name: "slash", spec: with(func(s *api.FunctionSpec) { s.Name = "a/b" }), wantErr: true},
		{name: "dot-dot", spec: with(func(s *api.FunctionSpec) { s.Name = ".." }), wantErr: true},
		{name: "trailing newline", spec: with(func(s *api.FunctionSpec) { s.Name = "hello\n" }), wantErr: true},
		{name: "non-ASCII", spec: with(func(s *api.FunctionSpec) { s.Name = "héllo" }), wantErr: true},
		{name: "empty mode", spec: with(func(s *api.FunctionSpec) { s.Mode = "" }), wantErr: true},
		{name: "upper-case mode", spec: with(func(s *api.FunctionSpec) { s.Mode = "HTTP" }), wantErr: true},
		{name: "unknown mode", spec: with(func(s *api.FunctionSpec) { s.Mode = "grpc" }), wantErr: true},
		{name: "no image", spec: with(func(s *api.FunctionSpec) { s.Image = "" }), wantErr: true},
		{name: "memory at minimum", spec: with(func(s *api.FunctionSpec) { s.Memory = cgroups.MinMemoryBytes })},
		{name: "memory below minimum", spec: with(func(s *api.FunctionSpec) { s.Memory = cgroups.MinMemoryBytes - 1 }), wantErr: true},
		{name: "negative memory", spec: with(func(s *api.FunctionSpec) { s.Memory = -1 }), wantErr: true},
		{name: "cpu at minimum", spec: with(func(s *api.FunctionSpec) { s.CPU = cgroups.MinCPUMillis })},
		{name: "cpu below minimum", spec: with(func(s *api.FunctionSpec) { s.CPU = cgroups.MinCPUMillis - 1 }), wantErr: true},
		{name: "negative cpu", spec: with(func(s *api.FunctionSpec) { s.CPU = -500 }), wantErr: true},
		{name: "cpu absurdly high", spec: with(func(s *api.FunctionSpec) { s.CPU = 1 << 62 }), wantErr: true},
		{name: "negative pids", spec: with(func(s *api.FunctionSpec) { s.Pids = -1 }), wantErr: true},
		{name: "negative timeout", spec: with(func(s *api.FunctionSpec) { s.Timeout = api.Duration(-time.Second) }), wantErr: true},
		{name: "negative concurrency", spec: with(func(s *api.FunctionSpec) { s.Concurrency = -1 }), wantErr: true},
		{name: "negative request limit", spec: with(func(s *api.FunctionSpec) { s.MaxRequest = -1 }), wantErr: true},
		{name: "negative response limit", spec: with(func(s *api.FunctionSpec) { s.MaxResponse = -1 }), wantErr: true},
		{name: "negative values survive WithDefaults", spec: api.FunctionSpec{Name: "x", Image: "i", Concurrency: -3}.WithDefaults(), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validate(tt.spec)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("validate(%+v) = %v; want an error wrapping ErrInvalid", tt.spec, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("validate(%+v) = %v; want nil", tt.spec, err)
			}
		})
	}
}

// TestSpecTimeoutJSON checks api.Duration as the admin API reads and writes
// a spec's timeout: a string like "10s", or a plain number of nanoseconds.
func TestSpecTimeoutJSON(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    time.Duration
		wantErr bool
	}{
		{name: "string", body: `{"timeout":"10s"}`, want: 10 * time.Second},
		{name: "compound string", body: `{"timeout":"1m30.5s"}`, want: 90*time.Second + 500*time.Millisecond},
		{name: "nanoseconds as a number", body: `{"timeout":2500000000}`, want: 2500 * time.Millisecond},
		{name: "zero", body: `{"timeout":0}`, want: 0},
		{name: "absent", body: `{}`, want: 0},
		{name: "garbage string", body: `{"timeout":"soon"}`, wantErr: true},
		{name: "string without unit", body: `{"timeout":"10"}`, wantErr: true},
		{name: "fractional number", body: `{"timeout":1.5}`, wantErr: true},
		{name: "number out of range", body: `{"timeout":1e30}`, wantErr: true},
		{name: "boolean", body: `{"timeout":true}`, wantErr: true},
		{name: "object", body: `{"timeout":{}}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var spec api.FunctionSpec
			err := json.Unmarshal([]byte(tt.body), &spec)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Unmarshal(%s): timeout %v, nil error; want an error", tt.body, time.Duration(spec.Timeout))
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.body, err)
			}
			if got := time.Duration(spec.Timeout); got != tt.want {
				t.Errorf("Unmarshal(%s): timeout %v, want %v", tt.body, got, tt.want)
			}
		})
	}

	t.Run("round trip", func(t *testing.T) {
		for _, d := range []time.Duration{0, time.Nanosecond, 10 * time.Second, 90*time.Minute + time.Millisecond, -time.Second} {
			b, err := json.Marshal(api.Duration(d))
			if err != nil {
				t.Fatalf("Marshal(%v): %v", d, err)
			}
			var got api.Duration
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if time.Duration(got) != d {
				t.Errorf("%v marshals as %s and reads back as %v", d, b, time.Duration(got))
			}
		}
		if b, _ := json.Marshal(api.Duration(10 * time.Second)); string(b) != `"10s"` {
			t.Errorf("Marshal(10s) = %s, want %q", b, `"10s"`)
		}
	})
}
