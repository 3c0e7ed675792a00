package metering

import (
	"math"
	"testing"
	"time"
)

func TestBilling(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name      string
		d         time.Duration
		mem       int64
		wantMs    int64
		wantKiBMs int64
		wantGBs   float64
	}{
		{name: "0 bills one unit", d: 0, mem: 128 * mib, wantMs: 100, wantKiBMs: 131072 * 100, wantGBs: 0.0125},
		{name: "1ns", d: 1, mem: 128 * mib, wantMs: 100, wantKiBMs: 131072 * 100, wantGBs: 0.0125},
		{name: "99.999ms", d: 99999 * time.Microsecond, mem: 128 * mib, wantMs: 100, wantKiBMs: 131072 * 100, wantGBs: 0.0125},
		{name: "100ms exactly", d: 100 * time.Millisecond, mem: 128 * mib, wantMs: 100, wantKiBMs: 131072 * 100, wantGBs: 0.0125},
		{name: "100.000001ms", d: 100*time.Millisecond + 1, mem: 128 * mib, wantMs: 200, wantKiBMs: 131072 * 200, wantGBs: 0.025},
		{name: "200ms exactly", d: 200 * time.Millisecond, mem: 1024 * mib, wantMs: 200, wantKiBMs: 1048576 * 200, wantGBs: 0.2},
		{name: "200.001ms", d: 200*time.Millisecond + time.Microsecond, mem: 1024 * mib, wantMs: 300, wantKiBMs: 1048576 * 300, wantGBs: 0.3},
		{name: "memory not a multiple of KiB rounds up", d: time.Second, mem: 1025, wantMs: 1000, wantKiBMs: 2 * 1000,
			wantGBs: 2.0 / 1024 / 1024},
		{name: "one byte is one KiB", d: 50 * time.Millisecond, mem: 1, wantMs: 100, wantKiBMs: 100, wantGBs: 100.0 / 1024 / 1024 / 1000},
		{name: "100 MB (decimal)", d: 1500 * time.Millisecond, mem: 100_000_000, wantMs: 1500, wantKiBMs: 97657 * 1500,
			wantGBs: 97657 * 1.5 / 1024 / 1024},
		{name: "no memory", d: time.Second, mem: 0, wantMs: 1000, wantKiBMs: 0, wantGBs: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Record{Duration: tt.d, MemoryBytes: tt.mem}
			if got := r.BilledMs(); got != tt.wantMs {
				t.Errorf("BilledMs(%v) = %d, want %d", tt.d, got, tt.wantMs)
			}
			if got := r.KiBMs(); got != tt.wantKiBMs {
				t.Errorf("KiBMs(%v, %d B) = %d, want %d", tt.d, tt.mem, got, tt.wantKiBMs)
			}
			if got := r.GBSeconds(); math.Abs(got-tt.wantGBs) > 1e-15 {
				t.Errorf("GBSeconds(%v, %d B) = %v, want %v", tt.d, tt.mem, got, tt.wantGBs)
			}
		})
	}
}
