package cgroups

import (
	"errors"
	"testing"

	"github.com/edgefaas/edgefaas/errdefs"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		limits  Limits
		wantErr bool
	}{
		{name: "unlimited", limits: Limits{}},
		{name: "typical", limits: Limits{MemoryBytes: 128 << 20, CPUMillis: 500, Pids: 64}},
		{name: "minimums", limits: Limits{MemoryBytes: MinMemoryBytes, CPUMillis: MinCPUMillis, Pids: 1}},
		{name: "negative memory", limits: Limits{MemoryBytes: -1}, wantErr: true},
		{name: "memory below 4MiB", limits: Limits{MemoryBytes: 4<<20 - 1}, wantErr: true},
		{name: "negative cpu", limits: Limits{CPUMillis: -100}, wantErr: true},
		{name: "cpu below 10m", limits: Limits{CPUMillis: 9}, wantErr: true},
		{name: "cpu overflowing the quota", limits: Limits{CPUMillis: 1 << 62}, wantErr: true},
		{name: "negative pids", limits: Limits{Pids: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.limits.Validate()
			if got := err != nil; got != tt.wantErr {
				t.Fatalf("Validate(%+v) = %v, want error: %v", tt.limits, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Validate(%+v) = %v, want it to wrap ErrInvalid", tt.limits, err)
			}
		})
	}
}

func TestResources(t *testing.T) {
	tests := []struct {
		name                string
		limits              Limits
		memory, swap, quota int64
		pids                int64
	}{
		{name: "unlimited", limits: Limits{}, memory: -1, swap: 0, quota: -1, pids: -1},
		{name: "all set", limits: Limits{MemoryBytes: 64 << 20, CPUMillis: 250, Pids: 32},
			memory: 64 << 20, swap: 64 << 20, quota: 25000, pids: 32},
		{name: "one core", limits: Limits{CPUMillis: 1000}, memory: -1, quota: CPUPeriod, pids: -1},
		{name: "two and a half cores", limits: Limits{CPUMillis: 2500}, memory: -1, quota: 250000, pids: -1},
		{name: "minimum cpu", limits: Limits{CPUMillis: 10}, memory: -1, quota: 1000, pids: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.limits.Resources()
			if r.Memory != tt.memory || r.MemorySwap != tt.swap {
				t.Errorf("Memory, MemorySwap = %d, %d, want %d, %d", r.Memory, r.MemorySwap, tt.memory, tt.swap)
			}
			if r.CpuQuota != tt.quota || r.CpuPeriod != CPUPeriod {
				t.Errorf("CpuQuota, CpuPeriod = %d, %d, want %d, %d", r.CpuQuota, r.CpuPeriod, tt.quota, CPUPeriod)
			}
			if r.PidsLimit == nil || *r.PidsLimit != tt.pids {
				t.Errorf("PidsLimit = %v, want %d", r.PidsLimit, tt.pids)
			}
			if len(r.Devices) != 0 || r.SkipDevices {
				t.Errorf("Devices = %v, SkipDevices = %v: device rules belong to package sandbox", r.Devices, r.SkipDevices)
			}
		})
	}
}

func TestModeString(t *testing.T) {
	for _, tt := range []struct {
		name string
		mode Mode
		want string
	}{
		{name: "v1", mode: V1, want: "v1"},
		{name: "v2", mode: V2, want: "v2"},
		{name: "zero", mode: 0, want: "Mode(0)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.mode.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCleanupRejectsParentsOutsideOurTree(t *testing.T) {
	for _, parent := range []string{"", ".", "..", "/edgefaas", "../edgefaas", "edgefaas/../..", "edgefaas/", "a//b"} {
		t.Run(parent, func(t *testing.T) {
			removed, err := Cleanup(Detect(), parent)
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Cleanup(%q) = %v, %v, want ErrInvalid", parent, removed, err)
			}
		})
	}
}
