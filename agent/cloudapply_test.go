package agent

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
)

// TestCutReason: a status reason always passes the controller's check
// (valid UTF-8, at most proto.MaxReason bytes once JSON has it), however
// the error read.
func TestCutReason(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"short", "not ready"},
		{"exactly the limit", strings.Repeat("x", proto.MaxReason)},
		{"long ASCII", strings.Repeat("x", 3*proto.MaxReason)},
		{"multi-byte at the cut", strings.Repeat("x", proto.MaxReason-1) + strings.Repeat("é", 10)},
		{"invalid UTF-8", "blob \xff\xfe refused " + strings.Repeat("\xc3", proto.MaxReason)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cutReason(tt.in)
			if !utf8.ValidString(got) || len(got) > proto.MaxReason {
				t.Fatalf("cutReason gave %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
			}
			if len(tt.in) <= proto.MaxReason && utf8.ValidString(tt.in) && got != tt.in {
				t.Fatalf("a short valid reason changed: %q", got)
			}
			st := proto.Status{Functions: []proto.FunctionStatus{{Name: "f", Revision: 1, State: proto.StateFailed, Reason: got}}}
			frame, err := proto.Encode(proto.TypeStatus, "", st)
			if err != nil {
				t.Fatal(err)
			}
			e, err := proto.Decode(frame)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := proto.DecodeBody[proto.Status](e); err != nil {
				t.Fatalf("the controller would refuse it: %v", err)
			}
		})
	}
}
