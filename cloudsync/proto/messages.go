package proto

import (
	"crypto/ed25519"
	"fmt"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Enrolment is plain HTTPS, before any link: POST EnrollPath with an
// EnrollRequest answers 200 with an EnrollResponse, 403 for a token that is
// unknown or already used.
const (
	EnrollPath = "/v1/enroll"
	LinkPath   = "/v1/link" // the websocket
)

// EnrollRequest spends a one-time token to register a device's public key.
type EnrollRequest struct {
	Token     string `json:"token"`
	PublicKey []byte `json:"public_key"` // ed25519, 32 bytes (base64 in JSON)
	Hostname  string `json:"hostname,omitempty"`
}

// Validate checks the shape of the request.
func (r *EnrollRequest) Validate() error {
	switch {
	case r.Token == "" || len(r.Token) > 256:
		return fmt.Errorf("enrol: bad token: %w", errdefs.ErrInvalid)
	case len(r.PublicKey) != ed25519.PublicKeySize:
		return fmt.Errorf("enrol: public key of %d bytes, want %d: %w", len(r.PublicKey), ed25519.PublicKeySize, errdefs.ErrInvalid)
	case len(r.Hostname) > 255:
		return fmt.Errorf("enrol: hostname too long: %w", errdefs.ErrInvalid)
	}
	return nil
}

// EnrollResponse names the device and the labels its token gave it.
type EnrollResponse struct {
	DeviceID string            `json:"device_id"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Challenge is the controller's first frame on a link.
type Challenge struct {
	Nonce []byte `json:"nonce"` // NonceSize random bytes
}

// Validate checks the nonce's length.
func (c *Challenge) Validate() error {
	if len(c.Nonce) != NonceSize {
		return fmt.Errorf("nonce of %d bytes, want %d: %w", len(c.Nonce), NonceSize, errdefs.ErrInvalid)
	}
	return nil
}

// Auth answers the challenge: Signature is ed25519 over
// ChallengeMessage(DeviceID, nonce).
type Auth struct {
	DeviceID  string `json:"device_id"`
	Signature []byte `json:"signature"`
}

// Validate checks the shapes of the id and the signature.
func (a *Auth) Validate() error {
	if !ValidDeviceID(a.DeviceID) || len(a.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("bad device id or signature: %w", errdefs.ErrInvalid)
	}
	return nil
}

// Welcome accepts the device. The agent expects a ping at least every
// PingIntervalMs and sends health every HealthIntervalMs.
type Welcome struct {
	DeviceID         string            `json:"device_id"`
	Labels           map[string]string `json:"labels,omitempty"`
	PingIntervalMs   int64             `json:"ping_interval_ms"`
	HealthIntervalMs int64             `json:"health_interval_ms"`
}

// Validate checks the intervals.
func (w *Welcome) Validate() error {
	if w.PingIntervalMs <= 0 || w.HealthIntervalMs <= 0 {
		return fmt.Errorf("intervals must be positive: %w", errdefs.ErrInvalid)
	}
	return nil
}

// Hello is the agent's inventory, sent once per link after Welcome.
type Hello struct {
	Version    string            `json:"version"`
	Arch       string            `json:"arch"`
	CgroupMode string            `json:"cgroup_mode"`
	Hostname   string            `json:"hostname,omitempty"`
	Functions  []FunctionVersion `json:"functions"`
	Resources  *Resources        `json:"resources,omitempty"`
}

// Validate bounds the inventory's size.
func (h *Hello) Validate() error {
	if len(h.Version) > 64 || len(h.Arch) > 32 || len(h.CgroupMode) > 32 || len(h.Hostname) > 255 {
		return fmt.Errorf("hello: field too long: %w", errdefs.ErrInvalid)
	}
	return nil
}

// FunctionVersion is one deployed function as the agent runs it.
type FunctionVersion struct {
	Name        string `json:"name"`
	Version     int64  `json:"version"`
	ImageDigest string `json:"image_digest"`
	Mode        string `json:"mode,omitempty"`
}

// Resources are the gateway's capacity.
type Resources struct {
	CPUs        int   `json:"cpus"`
	MemoryBytes int64 `json:"memory_bytes"`
}

// Health is the agent's periodic report.
type Health struct {
	UptimeMs      int64 `json:"uptime_ms"`
	Instances     int   `json:"instances"`
	Functions     int   `json:"functions"`
	ResidentBytes int64 `json:"resident_bytes,omitempty"`
}

// Usage is a batch of activation records, in Seq order.
type Usage struct {
	Records []UsageRecord `json:"records"`
}

// Validate checks the batch's size and that the seqs strictly increase.
func (u *Usage) Validate() error {
	if len(u.Records) == 0 || len(u.Records) > MaxBatch {
		return fmt.Errorf("usage batch of %d records, want 1..%d: %w", len(u.Records), MaxBatch, errdefs.ErrInvalid)
	}
	var last int64
	for i, r := range u.Records {
		if r.Seq <= last {
			return fmt.Errorf("usage record %d: seq %d after %d: %w", i, r.Seq, last, errdefs.ErrInvalid)
		}
		if err := r.validate(); err != nil {
			return fmt.Errorf("usage record seq %d: %w", r.Seq, err)
		}
		last = r.Seq
	}
	return nil
}

// UsageRecord is one activation record (DESIGN.md section 8) as uploaded.
// Times are unix nanoseconds, durations nanoseconds; BilledMs and KiBMs are
// the agent's, fixed when the call was recorded.
type UsageRecord struct {
	Seq           int64  `json:"seq"`
	CallID        string `json:"call_id"`
	Function      string `json:"function"`
	ImageDigest   string `json:"image_digest,omitempty"`
	Trigger       string `json:"trigger"`
	StartNs       int64  `json:"start_ns"`
	DurationNs    int64  `json:"duration_ns"`
	BilledMs      int64  `json:"billed_ms"`
	MemoryBytes   int64  `json:"memory_bytes"`
	KiBMs         int64  `json:"kib_ms"`
	CPUNs         int64  `json:"cpu_ns"`
	Cold          bool   `json:"cold,omitempty"`
	InitNs        int64  `json:"init_ns,omitempty"`
	Status        string `json:"status"`
	RequestBytes  int64  `json:"request_bytes"`
	ResponseBytes int64  `json:"response_bytes"`
}

func (r UsageRecord) validate() error {
	switch {
	case r.Function == "" || len(r.Function) > 253 || r.Status == "" || len(r.Status) > 32:
		return fmt.Errorf("bad function or status: %w", errdefs.ErrInvalid)
	case len(r.CallID) > 128 || len(r.ImageDigest) > 200 || len(r.Trigger) > 32:
		return fmt.Errorf("field too long: %w", errdefs.ErrInvalid)
	case r.StartNs < 0 || r.DurationNs < 0 || r.BilledMs < 0 || r.MemoryBytes < 0 || r.KiBMs < 0 ||
		r.CPUNs < 0 || r.InitNs < 0 || r.RequestBytes < 0 || r.ResponseBytes < 0:
		return fmt.Errorf("negative number: %w", errdefs.ErrInvalid)
	}
	return nil
}

// UsageAck says the controller durably holds every record of this device
// with Seq <= UpTo that the agent sent. It answers the usage message whose
// id it carries in the envelope.
type UsageAck struct {
	UpTo int64 `json:"up_to"`
}

// Error is sent before a side closes the link on purpose.
type Error struct {
	Code    string `json:"code"` // one of the Code constants
	Message string `json:"message,omitempty"`
}

// Error codes.
const (
	CodeUnauthorized = "unauthorized" // unknown device or wrong key
	CodeRevoked      = "revoked"      // the device was revoked
	CodeInvalid      = "invalid"      // a malformed or unexpected frame
	CodeReplaced     = "replaced"     // the same device connected again
	CodeInternal     = "internal"     // the controller failed
)
