package cgroups

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests read cgroup files laid out in a temporary directory exactly as
// the kernel writes them: they pin the parsing and the handling of missing
// files on both layouts, whichever layout this machine has. The tests in
// limits_test.go read the real files.

var v1Files = map[string]map[string]string{
	"cpuacct": {"cpuacct.usage": "2500000000\n"},
	"cpu":     {"cpu.stat": "nr_periods 40\nnr_throttled 7\nthrottled_time 350000000\nnr_bursts 0\nburst_time 0\n"},
	"memory": {
		"memory.usage_in_bytes":     "1048576\n",
		"memory.max_usage_in_bytes": "4194304\n",
		"memory.oom_control":        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
	},
	"pids": {"pids.current": "3\n"},
}

var v2Files = map[string]string{
	"cpu.stat":       "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 7\nthrottled_usec 350000\n",
	"memory.current": "1048576\n",
	"memory.peak":    "4194304\n",
	"memory.events":  "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
	"pids.current":   "3\n",
}

var fixtureStats = Stats{
	CPUTime:       2500 * time.Millisecond,
	Throttled:     7,
	ThrottledTime: 350 * time.Millisecond,
	MemoryCurrent: 1 << 20,
	MemoryPeak:    4 << 20,
	OOMKills:      2,
	Pids:          3,
}

// writeV1 lays out v1Files with edit applied, one directory per controller.
func writeV1(t *testing.T, edit func(controller, file, content string) (string, bool)) map[string]string {
	t.Helper()
	paths := make(map[string]string)
	for controller, files := range v1Files {
		dir := filepath.Join(t.TempDir(), controller)
		paths[controller] = dir
		writeFiles(t, dir, files, func(file, content string) (string, bool) { return edit(controller, file, content) })
	}
	return paths
}

func writeFiles(t *testing.T, dir string, files map[string]string, edit func(file, content string) (string, bool)) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for file, content := range files {
		content, keep := edit(file, content)
		if !keep {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func keepAll(_, content string) (string, bool) { return content, true }

func TestReadStatsV1Files(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(controller, file, content string) (string, bool)
		want    Stats
		wantErr string // substring of the error; "" for success
	}{
		{name: "all files", edit: func(_, f, c string) (string, bool) { return keepAll(f, c) }, want: fixtureStats},
		{
			name: "kernel before 4.13 has no oom_kill line",
			edit: func(_, f, c string) (string, bool) {
				if f == "memory.oom_control" {
					return "oom_kill_disable 0\nunder_oom 0\n", true
				}
				return c, true
			},
			want: func() Stats { s := fixtureStats; s.OOMKills = 0; return s }(),
		},
		{name: "missing cpuacct.usage", edit: dropFile("cpuacct.usage"), wantErr: "cpuacct.usage"},
		{name: "missing cpu.stat", edit: dropFile("cpu.stat"), wantErr: "cpu.stat"},
		{name: "missing memory.usage_in_bytes", edit: dropFile("memory.usage_in_bytes"), wantErr: "memory.usage_in_bytes"},
		{name: "missing memory.max_usage_in_bytes", edit: dropFile("memory.max_usage_in_bytes"), wantErr: "memory.max_usage_in_bytes"},
		{name: "missing memory.oom_control", edit: dropFile("memory.oom_control"), wantErr: "memory.oom_control"},
		{name: "missing pids.current", edit: dropFile("pids.current"), wantErr: "pids.current"},
		{
			name: "cpu.stat without nr_throttled",
			edit: func(_, f, c string) (string, bool) {
				if f == "cpu.stat" {
					return "nr_periods 40\n", true
				}
				return c, true
			},
			wantErr: `cpu.stat: no "nr_throttled" line`,
		},
		{
			name: "garbage in a file",
			edit: func(_, f, c string) (string, bool) {
				if f == "pids.current" {
					return "lots\n", true
				}
				return c, true
			},
			wantErr: `pids.current: "lots" is not a number`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadStats(V1, writeV1(t, tt.edit))
			checkStats(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func dropFile(name string) func(string, string, string) (string, bool) {
	return func(_, f, c string) (string, bool) { return c, f != name }
}

func TestReadStatsV1MissingController(t *testing.T) {
	for controller := range v1Files {
		t.Run(controller, func(t *testing.T) {
			paths := writeV1(t, func(_, f, c string) (string, bool) { return c, true })
			delete(paths, controller)
			_, err := ReadStats(V1, paths)
			checkStats(t, Stats{}, err, Stats{}, `controller "`+controller+`"`)
		})
	}
}

func TestReadStatsV2Files(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(file, content string) (string, bool)
		want    Stats
		wantErr string
	}{
		{name: "all files", edit: keepAll, want: fixtureStats},
		{
			name: "kernel before 5.19 has no memory.peak",
			edit: func(f, c string) (string, bool) { return c, f != "memory.peak" },
			want: func() Stats { s := fixtureStats; s.MemoryPeak = s.MemoryCurrent; return s }(),
		},
		{
			name: "cpu controller not enabled",
			edit: func(f, c string) (string, bool) {
				if f == "cpu.stat" {
					return "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n", true
				}
				return c, true
			},
			want: func() Stats { s := fixtureStats; s.Throttled, s.ThrottledTime = 0, 0; return s }(),
		},
		{name: "missing cpu.stat", edit: func(f, c string) (string, bool) { return c, f != "cpu.stat" }, wantErr: "cpu.stat"},
		{name: "missing memory.current", edit: func(f, c string) (string, bool) { return c, f != "memory.current" }, wantErr: "memory.current"},
		{name: "missing memory.events", edit: func(f, c string) (string, bool) { return c, f != "memory.events" }, wantErr: "memory.events"},
		{name: "missing pids.current", edit: func(f, c string) (string, bool) { return c, f != "pids.current" }, wantErr: "pids.current"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, v2Files, tt.edit)
			got, err := ReadStats(V2, map[string]string{"": dir})
			checkStats(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func TestReadStatsBadArguments(t *testing.T) {
	tests := []struct {
		name    string
		mode    Mode
		paths   map[string]string
		wantErr string
	}{
		{name: "v2 without unified path", mode: V2, paths: map[string]string{"memory": "/x"}, wantErr: "no unified path"},
		{name: "v2 nil map", mode: V2, wantErr: "no unified path"},
		{name: "v1 nil map", mode: V1, wantErr: `controller "cpuacct"`},
		{name: "unknown mode", mode: 0, wantErr: "unknown mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadStats(tt.mode, tt.paths)
			checkStats(t, Stats{}, err, Stats{}, tt.wantErr)
		})
	}
}

func checkStats(t *testing.T, got Stats, err error, want Stats, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("ReadStats error = %v, want one containing %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("ReadStats: %v", err)
	}
	if got != want {
		t.Errorf("ReadStats = %+v\nwant %+v", got, want)
	}
}

func TestReadCPUMatchesReadStats(t *testing.T) {
	v1 := writeV1(t, func(_, f, c string) (string, bool) { return keepAll(f, c) })
	v2dir := t.TempDir()
	writeFiles(t, v2dir, v2Files, keepAll)
	tests := []struct {
		name  string
		mode  Mode
		paths map[string]string
	}{
		{"v1", V1, v1},
		{"v2", V2, map[string]string{"": v2dir}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadCPU(tt.mode, tt.paths)
			if err != nil || got != fixtureStats.CPUTime {
				t.Fatalf("ReadCPU = %v, %v; want %v", got, err, fixtureStats.CPUTime)
			}
		})
	}
	if _, err := ReadCPU(V1, map[string]string{}); err == nil {
		t.Fatal("ReadCPU without a cpuacct path: no error")
	}
}

func TestCPUCounterRereads(t *testing.T) {
	v1 := writeV1(t, func(_, f, c string) (string, bool) { return keepAll(f, c) })
	c, err := OpenCPUCounter(V1, v1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		got, err := c.Read()
		if err != nil || got != fixtureStats.CPUTime {
			t.Fatalf("read %d: %v, %v; want %v", i, got, err, fixtureStats.CPUTime)
		}
	}
	// A new value in the same file is seen on the next read (pread from 0).
	if err := os.WriteFile(filepath.Join(v1["cpuacct"], "cpuacct.usage"), []byte("42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Read(); err != nil || got != 42 {
		t.Fatalf("after rewrite: %v, %v; want 42ns", got, err)
	}
	v2dir := t.TempDir()
	writeFiles(t, v2dir, v2Files, keepAll)
	c2, err := OpenCPUCounter(V2, map[string]string{"": v2dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := c2.Read(); err != nil || got != fixtureStats.CPUTime {
		t.Fatalf("v2: %v, %v", got, err)
	}
}
