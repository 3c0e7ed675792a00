package main

import (
	"testing"
)

func TestParseInstallFlags(t *testing.T) {
	tests := []struct {
		name          string
		args          []string
		wantRoot      string
		wantUninstall bool
		wantErr       bool
	}{
		{name: "defaults", args: nil, wantRoot: "/"},
		{name: "root", args: []string{"--root", "/tmp/image"}, wantRoot: "/tmp/image"},
		{name: "uninstall", args: []string{"--uninstall"}, wantRoot: "/", wantUninstall: true},
		{name: "stray argument", args: []string{"now"}, wantErr: true},
		{name: "unknown flag", args: []string{"--start"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, uninstall, err := parseInstallFlags(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (opts.Root != tt.wantRoot || uninstall != tt.wantUninstall) {
				t.Errorf("root %q uninstall %v, want %q %v", opts.Root, uninstall, tt.wantRoot, tt.wantUninstall)
			}
		})
	}
}

func TestParseFlagsRejectsArguments(t *testing.T) {
	if _, err := parseFlags([]string{"serve"}); err == nil {
		t.Error("parseFlags accepted a stray argument")
	}
}
