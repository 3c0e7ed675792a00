// Package api holds the admin API's wire types and the Go client that the
// command line uses. It is a leaf: it links neither libcontainer nor SQLite,
// so the CLI stays small and the controller never links the agent.
package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// Function modes (DESIGN.md section 5).
const (
	ModeHTTP = "http" // the entrypoint serves HTTP on port 8080 inside the sandbox
	ModeExec = "exec" // one process per invocation: body on stdin, response on stdout
)

// Defaults applied to a FunctionSpec by WithDefaults.
const (
	DefaultMemory       = 128 << 20
	DefaultCPU          = 500
	DefaultPids         = 64
	DefaultTimeout      = 10 * time.Second
	DefaultConcurrency  = 10
	DefaultRequestSize  = 6 << 20
	DefaultResponseSize = 6 << 20
	DefaultMaxInstances = 4
	DefaultIdle         = 5 * time.Minute
	DefaultQueue        = 100
)

// FunctionSpec is what a user deploys: an image plus limits.
type FunctionSpec struct {
	Name        string            `json:"name"`
	Image       string            `json:"image"` // the reference as the user gave it
	Mode        string            `json:"mode,omitempty"`
	Memory      int64             `json:"memory_bytes,omitempty"`
	CPU         int64             `json:"cpu_millis,omitempty"`
	Pids        int64             `json:"pids,omitempty"`
	Timeout     Duration          `json:"timeout,omitempty"`
	Concurrency int               `json:"concurrency,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	MaxRequest  int64             `json:"max_request_bytes,omitempty"`
	MaxResponse int64             `json:"max_response_bytes,omitempty"`

	// Scaling (the pool): instances kept warm even when idle, the most
	// instances at once, how long an idle instance lives, how many calls
	// may wait for a free slot before the gateway answers 429, and when an
	// instance is replaced by a fresh one (after N calls, or once its
	// memory use passes a number of bytes; 0 means never).
	MinInstances  int      `json:"min_instances,omitempty"`
	MaxInstances  int      `json:"max_instances,omitempty"`
	Idle          Duration `json:"idle_timeout,omitempty"`
	Queue         int      `json:"queue,omitempty"`
	RecycleAfter  int64    `json:"recycle_after,omitempty"`
	RecycleMemory int64    `json:"recycle_memory_bytes,omitempty"`

	// MQTT bindings: messages on these topics invoke the function.
	MQTT []MQTTBinding `json:"mqtt,omitempty"`
}

// MQTTBinding maps a topic filter to a function (DESIGN.md section 7).
type MQTTBinding struct {
	Filter  string `json:"filter"`            // with + and # wildcards
	Reply   string `json:"reply,omitempty"`   // reply topic template: {topic}, {1}, {2}...
	QoS     byte   `json:"qos"`               // 0 or 1 (2 is served as 1)
	Ordered bool   `json:"ordered,omitempty"` // one message at a time per topic
}

// WithDefaults returns the spec with every zero limit replaced by its default.
func (s FunctionSpec) WithDefaults() FunctionSpec {
	if s.Mode == "" {
		s.Mode = ModeHTTP
	}
	if s.Memory == 0 {
		s.Memory = DefaultMemory
	}
	if s.CPU == 0 {
		s.CPU = DefaultCPU
	}
	if s.Pids == 0 {
		s.Pids = DefaultPids
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(DefaultTimeout)
	}
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.MaxRequest == 0 {
		s.MaxRequest = DefaultRequestSize
	}
	if s.MaxResponse == 0 {
		s.MaxResponse = DefaultResponseSize
	}
	if s.MaxInstances == 0 {
		s.MaxInstances = max(DefaultMaxInstances, s.MinInstances)
	}
	if s.Idle == 0 {
		s.Idle = Duration(DefaultIdle)
	}
	if s.Queue == 0 {
		s.Queue = DefaultQueue
	}
	return s
}

// Function is a deployed function as the registry records it.
type Function struct {
	Spec        FunctionSpec `json:"spec"`
	ImageDigest string       `json:"image_digest"`
	Version     int64        `json:"version"` // bumped on every deploy
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	// Instances is filled in by the agent from its running state; the
	// registry does not store it.
	Instances int `json:"instances"`
	// CloudRevision is the cloud controller's deployment revision when the
	// cloud placed the function (0: deployed on the gateway).
	CloudRevision int64 `json:"cloud_revision,omitempty"`
}

// ImageConfig is the part of an OCI image config that runs a function.
type ImageConfig struct {
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Env        []string          `json:"env,omitempty"`
	WorkingDir string            `json:"working_dir,omitempty"`
	User       string            `json:"user,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// Image is an imported image.
type Image struct {
	Digest    string      `json:"digest"` // manifest digest, "sha256:..."
	Names     []string    `json:"names,omitempty"`
	Platform  string      `json:"platform"` // "linux/amd64"
	Size      int64       `json:"size"`     // bytes of all blobs
	CreatedAt time.Time   `json:"created_at"`
	Config    ImageConfig `json:"config"`
	// UsedBy lists the functions deployed with the image (filled in by the
	// agent when it lists images); an image in use is never removed.
	UsedBy []string `json:"used_by,omitempty"`
}

// Info answers GET /v1/info.
type Info struct {
	Version    string `json:"version"`
	Arch       string `json:"arch"`
	CgroupMode string `json:"cgroup_mode"`
	StateDir   string `json:"state_dir"`
	Listen     string `json:"listen"`
	Functions  int    `json:"functions"`
	Instances  int    `json:"instances"`
	Images     int    `json:"images"`
	MQTT       string `json:"mqtt"` // "none", "embedded ADDR", or the broker URL and "(connected)" or "(disconnected)"
	// Cloud is the link to the cloud controller; nil when standalone.
	Cloud *CloudStatus `json:"cloud,omitempty"`
}

// CloudStatus is the agent's link to its cloud controller.
type CloudStatus struct {
	Controller string `json:"controller"`
	DeviceID   string `json:"device_id"`
	Connected  bool   `json:"connected"`
	Links      int64  `json:"links"`     // links established since the agent started
	AckedSeq   int64  `json:"acked_seq"` // highest activation seq the controller acknowledged in this run
	Uploaded   int64  `json:"uploaded"`  // activation records acknowledged in this run
	LastError  string `json:"last_error,omitempty"`
}

// Error is the JSON body of every error answer, from the admin API and the
// gateway alike.
type Error struct {
	Error  string `json:"error"`
	Status string `json:"status,omitempty"` // the X-Faas-Status value on the gateway
}

// Duration is a time.Duration that reads and writes as "10s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration: want a string like \"10s\": %w", err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Usage is one row of GET /v1/usage: totals for a function, per bucket when
// grouped by hour or day.
type Usage struct {
	Function    string    `json:"function"`
	Bucket      time.Time `json:"bucket,omitzero"` // start of the hour or day (UTC)
	Invocations int64     `json:"invocations"`
	Errors      int64     `json:"errors"`
	ColdStarts  int64     `json:"cold_starts"`
	BilledMs    int64     `json:"billed_ms"`
	GBSeconds   float64   `json:"gb_seconds"`
	CPUMs       int64     `json:"cpu_ms"`
}

// LogLine is one line of a function's output, as GET
// /v1/functions/{name}/logs streams them (one JSON object per line).
type LogLine struct {
	Time     time.Time `json:"time"`
	Function string    `json:"function"`
	Instance string    `json:"instance,omitempty"`
	CallID   string    `json:"call_id,omitempty"`
	Stream   string    `json:"stream"`
	Text     string    `json:"text"`
}

// ValidName reports whether name is a valid function name: 1 to 63
// lower-case letters, digits and '-', not starting or ending with '-' (a
// DNS label, so also a plain path element: no '/', no "..", no dot files).
// It is a loop, not a regexp: a package-level regexp is compiled in every
// sandbox's init (the agent binary is the container init), for nothing.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
