package main

import "testing"

func TestSizeFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"4096", 4096, false},
		{"512Mi", 512 << 20, false},
		{"4Gi", 4 << 30, false},
		{"1G", 1e9, false},
		{"2GiB", 2 << 30, false},
		{"-1", 0, true},
		{"lots", 0, true},
		{"9999999Ti", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var n int64
			err := sizeFlag{&n}.Set(tt.in)
			if (err != nil) != tt.wantErr || n != tt.want {
				t.Fatalf("Set(%q): got %d, %v; want %d, error %v", tt.in, n, err, tt.want, tt.wantErr)
			}
		})
	}
	n := int64(512 << 20)
	if got := (sizeFlag{&n}).String(); got != "512Mi" {
		t.Errorf("String: got %q, want 512Mi", got)
	}
}
