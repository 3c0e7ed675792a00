package api

import (
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The function flags of the command lines: edgefaas deploy and edgecloud
// deploy take the same ones, so that a spec reads the same on a gateway
// and in the cloud.

// SpecFlags are the flags of a function spec, bound to a flag set by
// AddSpecFlags; Spec reads them once the set is parsed. --image is not one
// of them: each command line resolves images its own way.
type SpecFlags struct {
	spec                       FunctionSpec
	memory, cpu, recycleMemory string
	timeout, idle              time.Duration
	env, bindings              ListFlag
}

// AddSpecFlags binds the function flags to fs.
func AddSpecFlags(fs *flag.FlagSet) *SpecFlags {
	f := &SpecFlags{}
	s := &f.spec
	fs.StringVar(&s.Mode, "mode", "", "http (default) or exec")
	fs.StringVar(&f.memory, "memory", "", "memory limit, e.g. 128Mi")
	fs.StringVar(&f.cpu, "cpu", "", "CPU limit in millicores, e.g. 500m")
	fs.Int64Var(&s.Pids, "pids", 0, "process limit")
	fs.DurationVar(&f.timeout, "timeout", 0, "per-invocation timeout, e.g. 10s")
	fs.IntVar(&s.Concurrency, "concurrency", 0, "concurrent invocations per instance")
	fs.IntVar(&s.MinInstances, "min", 0, "instances kept warm even when idle")
	fs.IntVar(&s.MaxInstances, "max", 0, fmt.Sprintf("most instances at once (default %d)", DefaultMaxInstances))
	fs.DurationVar(&f.idle, "idle", 0, fmt.Sprintf("stop an instance idle this long (default %s)", DefaultIdle))
	fs.IntVar(&s.Queue, "queue", 0, fmt.Sprintf("calls that may wait for a slot before 429 (default %d)", DefaultQueue))
	fs.Int64Var(&s.RecycleAfter, "recycle-after", 0, "replace an instance after this many invocations")
	fs.StringVar(&f.recycleMemory, "recycle-memory", "", "replace an idle instance whose memory use passed this, e.g. 100Mi")
	fs.Var(&f.env, "env", "K=V, repeatable")
	fs.Var(&f.bindings, "mqtt", "MQTT binding 'FILTER[=REPLY][;qos=0|1|2][;ordered]', repeatable (reply template: {topic}, {1}, {2}...)")
	return f
}

// Spec returns the spec the parsed flags give, named name.
func (f *SpecFlags) Spec(name string) (FunctionSpec, error) {
	spec := f.spec
	spec.Name = name
	spec.Timeout = Duration(f.timeout)
	spec.Idle = Duration(f.idle)
	var err error
	if f.recycleMemory != "" {
		if spec.RecycleMemory, err = ParseBytes(f.recycleMemory); err != nil {
			return spec, fmt.Errorf("--recycle-memory: %w", err)
		}
	}
	if f.memory != "" {
		if spec.Memory, err = ParseBytes(f.memory); err != nil {
			return spec, fmt.Errorf("--memory: %w", err)
		}
	}
	if f.cpu != "" {
		if spec.CPU, err = ParseCPU(f.cpu); err != nil {
			return spec, fmt.Errorf("--cpu: %w", err)
		}
	}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return spec, fmt.Errorf("--env %q: want K=V", kv)
		}
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		spec.Env[k] = v
	}
	for _, v := range f.bindings {
		b, err := ParseBinding(v)
		if err != nil {
			return spec, err
		}
		spec.MQTT = append(spec.MQTT, b)
	}
	return spec, nil
}

// ParseBytes reads a memory quantity: 128Mi, 1Gi, 512Ki, 64M, 1G, or bytes.
func ParseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30},
		{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"k", 1e3},
	}
	mult := 1.0
	num := s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			mult, num = u.mult, strings.TrimSuffix(s, u.suffix)
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	// !(b >= 0) also rejects NaN; 1<<63 is the first float64 that does not
	// fit int64 (the conversion of a larger one is implementation-defined:
	// math.MinInt64 on amd64).
	if b := v * mult; err != nil || !(b >= 0) || b >= 1<<63 {
		return 0, fmt.Errorf("%q is not a size like 128Mi", s)
	}
	return int64(v * mult), nil
}

// ParseCPU reads millicores: 500m, 0.5 or 2 (cores).
func ParseCPU(s string) (int64, error) {
	if m, ok := strings.CutSuffix(s, "m"); ok {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%q is not a CPU amount like 500m", s)
		}
		return v, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 0 && v <= 1e6) { // NaN fails both comparisons
		return 0, fmt.Errorf("%q is not a CPU amount like 500m or 1.5", s)
	}
	return int64(math.Round(v * 1000)), nil
}

// ListFlag collects a repeated flag.
type ListFlag []string

func (l *ListFlag) String() string     { return strings.Join(*l, ",") }
func (l *ListFlag) Set(v string) error { *l = append(*l, v); return nil }

// ParseBinding reads one --mqtt value:
//
//	FILTER[=REPLY][;qos=0|1|2][;ordered]
//
// QoS defaults to 1 (at least once: committed to the inbox before the
// broker's message is acknowledged); 2 is served as 1. "ordered" runs the
// messages of one topic one at a time, in order; without it they run in
// parallel. A filter or reply holding "=" or ";" cannot be given here (the
// admin API takes any). The agent checks the filter and the template.
func ParseBinding(s string) (MQTTBinding, error) {
	parts := strings.Split(s, ";")
	filter, reply, _ := strings.Cut(parts[0], "=")
	b := MQTTBinding{Filter: strings.TrimSpace(filter), Reply: strings.TrimSpace(reply), QoS: 1}
	if b.Filter == "" {
		return b, fmt.Errorf("--mqtt %q: want FILTER[=REPLY][;qos=N][;ordered]", s)
	}
	for _, opt := range parts[1:] {
		switch opt = strings.TrimSpace(opt); opt {
		case "ordered":
			b.Ordered = true
		case "qos=0", "qos=1", "qos=2":
			b.QoS = opt[4] - '0'
		default:
			return b, fmt.Errorf("--mqtt %q: unknown option %q: want qos=0, qos=1, qos=2 or ordered", s, opt)
		}
	}
	return b, nil
}
