package main

import (
	"github.com/edgefaas/edgefaas/api"

	"errors"
	"flag"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{name: "mebibytes", in: "128Mi", want: 128 << 20},
		{name: "gibibytes", in: "1Gi", want: 1 << 30},
		{name: "kibibytes", in: "512Ki", want: 512 << 10},
		{name: "megabytes", in: "64M", want: 64_000_000},
		{name: "gigabytes", in: "1G", want: 1_000_000_000},
		{name: "kilobytes upper case", in: "10K", want: 10_000},
		{name: "kilobytes lower case", in: "10k", want: 10_000},
		{name: "fraction of a unit", in: "1.5Gi", want: 3 << 29},
		{name: "fraction of a mebibyte", in: "0.5Mi", want: 1 << 19},
		{name: "plain bytes", in: "4096", want: 4096},
		{name: "zero", in: "0", want: 0},
		{name: "zero with unit", in: "0Mi", want: 0},
		{name: "largest exact float below 2^63", in: "8e9Gi", want: 8_589_934_592_000_000_000},
		{name: "negative", in: "-1", wantErr: true},
		{name: "negative with unit", in: "-1Mi", wantErr: true},
		{name: "word", in: "lots", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "unit alone", in: "Mi", wantErr: true},
		{name: "space before unit", in: "1 Mi", wantErr: true},
		{name: "unknown unit", in: "1Ti", wantErr: true},
		{name: "bytes suffix", in: "1MiB", wantErr: true},
		{name: "lower-case binary unit", in: "1mi", wantErr: true},
		{name: "infinite after scaling", in: "1e400Gi", wantErr: true},
		{name: "infinity", in: "Inf", wantErr: true},
		{name: "signed infinity", in: "+Inf", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := api.ParseBytes(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("api.ParseBytes(%q) = %d, nil; want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("api.ParseBytes(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseCPU(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{name: "millicores", in: "500m", want: 500},
		{name: "zero millicores", in: "0m", want: 0},
		{name: "fraction of a core", in: "0.5", want: 500},
		{name: "whole cores", in: "2", want: 2000},
		{name: "core and a half", in: "1.5", want: 1500},
		{name: "rounded to a millicore", in: "0.0015", want: 2},
		{name: "zero", in: "0", want: 0},
		{name: "a million cores", in: "1e6", want: 1_000_000_000},
		{name: "more than a million cores", in: "1000001", wantErr: true},
		{name: "m alone", in: "m", wantErr: true},
		{name: "negative cores", in: "-1", wantErr: true},
		{name: "negative millicores", in: "-1m", wantErr: true},
		{name: "fractional millicores", in: "1.5m", wantErr: true},
		{name: "millicores overflow", in: "99999999999999999999m", wantErr: true},
		{name: "word", in: "lots", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "upper-case M", in: "500M", wantErr: true},
		{name: "infinity", in: "Inf", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := api.ParseCPU(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("api.ParseCPU(%q) = %d, nil; want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("api.ParseCPU(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantPos   []string
		wantImage string
		wantEnv   []string
		wantJSON  bool
		wantErr   bool
	}{
		{name: "nothing", args: nil, wantPos: nil},
		{name: "flags before", args: []string{"--image", "img:1", "fn"}, wantPos: []string{"fn"}, wantImage: "img:1"},
		{name: "flags after", args: []string{"fn", "--image", "img:1"}, wantPos: []string{"fn"}, wantImage: "img:1"},
		{name: "flags around", args: []string{"--json", "fn", "-image=img:1"}, wantPos: []string{"fn"}, wantImage: "img:1", wantJSON: true},
		{name: "flags between positionals", args: []string{"a", "-json", "b", "--image", "i", "c"}, wantPos: []string{"a", "b", "c"}, wantImage: "i", wantJSON: true},
		{name: "repeated flag across positionals", args: []string{"-env", "A=1", "fn", "-env", "B=2"}, wantPos: []string{"fn"}, wantEnv: []string{"A=1", "B=2"}},
		{name: "last value wins", args: []string{"-image", "one", "fn", "-image", "two"}, wantPos: []string{"fn"}, wantImage: "two"},
		{name: "lone dash is positional", args: []string{"-", "--json"}, wantPos: []string{"-"}, wantJSON: true},
		{name: "double dash then a dash-led positional", args: []string{"--", "-fn"}, wantPos: []string{"-fn"}},
		{name: "double dash then plain positionals", args: []string{"--", "a", "b"}, wantPos: []string{"a", "b"}},
		{name: "flags, double dash, positional", args: []string{"--json", "--", "--image"}, wantPos: []string{"--image"}, wantJSON: true},
		{name: "double dash after a positional is not kept", args: []string{"a", "--", "b"}, wantPos: []string{"a", "b"}},
		{name: "double dash as a flag's value", args: []string{"--image", "--", "fn"}, wantPos: []string{"fn"}, wantImage: "--"},
		{name: "unknown flag before", args: []string{"--colour", "fn"}, wantErr: true},
		{name: "unknown flag after", args: []string{"fn", "--colour"}, wantErr: true},
		{name: "missing value", args: []string{"fn", "--image"}, wantErr: true},
		{name: "bad bool", args: []string{"fn", "--json=maybe"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlags("test")
			image := fs.String("image", "", "")
			asJSON := fs.Bool("json", false, "")
			var env api.ListFlag
			fs.Var(&env, "env", "")
			pos, err := parseArgs(fs, tt.args)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseArgs(%q) = %q, nil; want an error", tt.args, pos)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tt.args, err)
			}
			if !slices.Equal(pos, tt.wantPos) || *image != tt.wantImage || *asJSON != tt.wantJSON || !slices.Equal(env, tt.wantEnv) {
				t.Errorf("parseArgs(%q)\n got  pos %q image %q json %v env %q\n want pos %q image %q json %v env %q",
					tt.args, pos, *image, *asJSON, []string(env), tt.wantPos, tt.wantImage, tt.wantJSON, tt.wantEnv)
			}
		})
	}

	t.Run("help", func(t *testing.T) {
		if _, err := parseArgs(newFlags("test"), []string{"fn", "-h"}); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("parseArgs(fn -h) = %v, want flag.ErrHelp", err)
		}
	})
}

func TestOneName(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{name: "one", args: []string{"fn"}, want: "fn"},
		{name: "one after a flag", args: []string{"--json", "fn"}, want: "fn"},
		{name: "none", args: nil, wantErr: "want exactly one function NAME"},
		{name: "two", args: []string{"a", "b"}, wantErr: "want exactly one function NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlags("rm")
			fs.Bool("json", false, "")
			got, err := oneName(fs, tt.args, "function NAME")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("oneName(%q) = %q, %v; want an error containing %q", tt.args, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("oneName(%q) = %q, %v; want %q, nil", tt.args, got, err, tt.want)
			}
		})
	}
}

// FuzzParseBytes checks the memory quantity parser on any string: no panic,
// no negative size, and a plain byte count reads as itself.
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"128Mi", "1Gi", "512Ki", "64M", "1G", "10k", "1.5Gi", "0", "4096", "-1", "lots", "", "1e400Gi", "Inf", "0x1p4Mi", "8e9Gi"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := api.ParseBytes(s)
		if err != nil {
			return
		}
		if got < 0 {
			t.Fatalf("api.ParseBytes(%q) = %d, a negative size", s, got)
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 && n < 1<<53 && got != n {
			t.Fatalf("api.ParseBytes(%q) = %d, want %d", s, got, n)
		}
	})
}

// FuzzParseCPU checks the CPU quantity parser on any string: no panic, no
// negative amount, and "Nm" reads as N millicores.
func FuzzParseCPU(f *testing.F) {
	for _, s := range []string{"500m", "0.5", "2", "1.5", "0", "m", "-1", "-1m", "1e6", "1000001", "lots", "", "Inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := api.ParseCPU(s)
		if err != nil {
			return
		}
		if got < 0 {
			t.Fatalf("api.ParseCPU(%q) = %d, a negative amount", s, got)
		}
		if m, ok := strings.CutSuffix(s, "m"); ok {
			if n, err := strconv.ParseInt(m, 10, 64); err == nil && got != n {
				t.Fatalf("api.ParseCPU(%q) = %d, want %d", s, got, n)
			}
		}
	})
}
