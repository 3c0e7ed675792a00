package proto

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

func TestDesiredAndStatusValidate(t *testing.T) {
	dg := "sha256:" + strings.Repeat("ab", 32)
	fn := func(name string, rev int64, repo, digest string) DesiredFunction {
		return DesiredFunction{Revision: rev, Repository: repo, Digest: digest, Spec: api.FunctionSpec{Name: name}}
	}
	desired := []struct {
		name string
		d    Desired
		ok   bool
	}{
		{"empty", Desired{}, true},
		{"one", Desired{Functions: []DesiredFunction{fn("f", 1, "team/fn", dg)}}, true},
		{"twice", Desired{Functions: []DesiredFunction{fn("f", 1, "fn", dg), fn("f", 2, "fn", dg)}}, false},
		{"bad name", Desired{Functions: []DesiredFunction{fn("F", 1, "fn", dg)}}, false},
		{"zero revision", Desired{Functions: []DesiredFunction{fn("f", 0, "fn", dg)}}, false},
		{"host in repository", Desired{Functions: []DesiredFunction{fn("f", 1, "evil.com:5000/fn", dg)}}, false},
		{"tag in repository", Desired{Functions: []DesiredFunction{fn("f", 1, "fn:latest", dg)}}, false},
		{"empty path element", Desired{Functions: []DesiredFunction{fn("f", 1, "a//b", dg)}}, false},
		{"short digest", Desired{Functions: []DesiredFunction{fn("f", 1, "fn", "sha256:abc")}}, false},
		{"upper-case digest", Desired{Functions: []DesiredFunction{fn("f", 1, "fn", strings.ToUpper(dg))}}, false},
	}
	for _, tt := range desired {
		t.Run("desired "+tt.name, func(t *testing.T) {
			err := tt.d.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, errdefs.ErrInvalid)) {
				t.Fatalf("Validate: %v, want ok=%v", err, tt.ok)
			}
		})
	}
	status := []struct {
		name string
		f    FunctionStatus
		ok   bool
	}{
		{"running", FunctionStatus{Name: "f", Revision: 2, State: StateRunning, Serving: 2, Digest: dg}, true},
		{"rolled back", FunctionStatus{Name: "f", Revision: 3, State: StateRolledBack, Reason: "not ready", Serving: 2}, true},
		{"unknown state", FunctionStatus{Name: "f", Revision: 1, State: "exploded"}, false},
		{"long reason", FunctionStatus{Name: "f", Revision: 1, State: StateFailed, Reason: strings.Repeat("x", MaxReason+1)}, false},
		{"bad digest", FunctionStatus{Name: "f", Revision: 1, State: StateRunning, Digest: "md5:00"}, false},
		{"negative", FunctionStatus{Name: "f", Revision: -1, State: StateRunning}, false},
	}
	for _, tt := range status {
		t.Run("status "+tt.name, func(t *testing.T) {
			s := Status{Functions: []FunctionStatus{tt.f}}
			if err := s.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
