package main

import (
	"github.com/edgefaas/edgefaas/api"

	"slices"
	"testing"
)

// Regression tests for bugs found by fuzzing the first pass: NaN and values
// past int64 came back negative with no error; "--" protected only the first
// argument after it.
func TestQuantitiesRejectNaNAndOverflow(t *testing.T) {
	for _, s := range []string{"NaN", "nanGi", "1e19", "9.3e18", "1e10Gi", "0X1p70"} {
		if v, err := api.ParseBytes(s); err == nil {
			t.Errorf("api.ParseBytes(%q) = %d, want an error", s, v)
		}
	}
	for _, s := range []string{"NaN", "nan"} {
		if v, err := api.ParseCPU(s); err == nil {
			t.Errorf("api.ParseCPU(%q) = %d, want an error", s, v)
		}
	}
}

func TestParseArgsTerminator(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
		json bool
	}{
		{"all after -- positional", []string{"--", "-a", "-b"}, []string{"-a", "-b"}, false},
		{"flag after -- not parsed", []string{"--", "fn", "--json"}, []string{"fn", "--json"}, false},
		{"flag before --", []string{"--json", "--", "-x"}, []string{"-x"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlags("t")
			asJSON := fs.Bool("json", false, "")
			got, err := parseArgs(fs, tt.args)
			if err != nil || !slices.Equal(got, tt.want) || *asJSON != tt.json {
				t.Fatalf("got %q json=%v err=%v, want %q json=%v", got, *asJSON, err, tt.want, tt.json)
			}
		})
	}
}
