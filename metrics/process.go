package metrics

import (
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"time"
)

// RegisterProcess adds the process's own figures, named PREFIX_process_*
// as client_golang's process collector names them, and the Go runtime's
// goroutine count and heap size.
func (r *Registry) RegisterProcess(prefix string) {
	start := float64(time.Now().Unix())
	r.GaugeFunc(prefix+"_process_resident_memory_bytes", "Resident memory size in bytes.", nil, func(emit func(float64, ...string)) {
		if rss, ok := residentBytes(); ok {
			emit(rss)
		}
	})
	r.CounterFunc(prefix+"_process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", nil, func(emit func(float64, ...string)) {
		if cpu, ok := cpuSeconds(); ok {
			emit(cpu)
		}
	})
	r.GaugeFunc(prefix+"_process_open_fds", "Number of open file descriptors.", nil, func(emit func(float64, ...string)) {
		if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
			emit(float64(len(fds)))
		}
	})
	r.GaugeFunc(prefix+"_process_start_time_seconds", "Start time of the process since unix epoch in seconds.", nil, func(emit func(float64, ...string)) {
		emit(start)
	})
	r.GaugeFunc("go_goroutines", "Number of goroutines that currently exist.", nil, func(emit func(float64, ...string)) {
		emit(float64(runtime.NumGoroutine()))
	})
	r.GaugeFunc("go_heap_objects_bytes", "Bytes of memory occupied by live and not yet swept heap objects.", nil, func(emit func(float64, ...string)) {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 {
			emit(float64(s[0].Value.Uint64()))
		}
	})
}

// residentBytes reads the resident set size from /proc/self/statm.
func residentBytes() (float64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0, false
	}
	return float64(pages) * float64(os.Getpagesize()), true
}

// cpuSeconds reads utime+stime from /proc/self/stat (in clock ticks of
// 1/100 s, the USER_HZ of every Linux ABI we run on).
func cpuSeconds() (float64, bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return float64(utime+stime) / 100, true
}
