package proto

import (
	"fmt"
	"strings"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

// Desired is the whole set of functions the controller wants on a device
// (DESIGN.md section 9). The controller sends it after the agent's hello
// and again whenever a deployment that selects the device changes; each
// message replaces the last, so a lost one costs nothing but a delay.
// Functions the controller placed before and that are not in the set are
// to be removed; functions deployed locally are left alone.
type Desired struct {
	Functions []DesiredFunction `json:"functions"`
}

// MaxDesired bounds the functions in one Desired message.
const MaxDesired = 256

// DesiredFunction is one function as deployed from the cloud: its spec
// (Spec.Image is ignored: the image is Repository@Digest in the
// controller's own registry) and the deployment's revision, which the
// agent echoes in its status so the controller can tell old reports from
// new ones.
type DesiredFunction struct {
	Revision   int64            `json:"revision"`
	Repository string           `json:"repository"`
	Digest     string           `json:"digest"`
	Spec       api.FunctionSpec `json:"spec"`
}

// Validate checks names, digests and revisions; the agent validates the
// spec's limits as it validates a local deploy's.
func (d *Desired) Validate() error {
	if len(d.Functions) > MaxDesired {
		return fmt.Errorf("desired: %d functions, limit %d: %w", len(d.Functions), MaxDesired, errdefs.ErrInvalid)
	}
	seen := map[string]bool{}
	for _, f := range d.Functions {
		switch {
		case !api.ValidName(f.Spec.Name):
			return fmt.Errorf("desired: function name %q: %w", f.Spec.Name, errdefs.ErrInvalid)
		case seen[f.Spec.Name]:
			return fmt.Errorf("desired: function %q twice: %w", f.Spec.Name, errdefs.ErrInvalid)
		case f.Revision <= 0:
			return fmt.Errorf("desired: function %q: revision %d: %w", f.Spec.Name, f.Revision, errdefs.ErrInvalid)
		case !validRepository(f.Repository):
			return fmt.Errorf("desired: function %q: repository %q: %w", f.Spec.Name, f.Repository, errdefs.ErrInvalid)
		case !ValidDigest(f.Digest):
			return fmt.Errorf("desired: function %q: digest %q: %w", f.Spec.Name, f.Digest, errdefs.ErrInvalid)
		}
		seen[f.Spec.Name] = true
	}
	return nil
}

// ValidDigest reports whether d is "sha256:" and 64 lower-case hex digits.
func ValidDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validRepository accepts the distribution spec's repository names:
// path components of [a-z0-9] joined by '.', '_', '__', '-' runs, with
// '/' between components, 255 characters at most. Checked loosely (the
// registry that stored the image checked it strictly): only characters
// and shape that cannot smuggle a host, a tag or a digest into the
// reference the agent builds.
func validRepository(r string) bool {
	if r == "" || len(r) > 255 || r[0] == '/' || r[len(r)-1] == '/' || strings.Contains(r, "//") {
		return false
	}
	for i := 0; i < len(r); i++ {
		if c := r[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			return false
		}
	}
	return true
}

// Status reports, after a change and on every new link, the state of
// every function the cloud placed on the device. Each message is the whole
// picture: the controller replaces what it held for the device.
type Status struct {
	Functions []FunctionStatus `json:"functions"`
}

// Function states in a Status.
const (
	StateApplying   = "applying"    // pulling the image or starting the new version
	StateRunning    = "running"     // the desired revision serves
	StateRolledBack = "rolled_back" // the desired revision failed; the previous one keeps serving
	StateFailed     = "failed"      // the desired revision failed and nothing serves
	StateRemoved    = "removed"     // no longer desired and removed
)

var knownStates = map[string]bool{StateApplying: true, StateRunning: true, StateRolledBack: true,
	StateFailed: true, StateRemoved: true}

// FunctionStatus is one function's state on the device. Revision is the
// desired revision the state is about; Serving is the revision answering
// calls now (0: none), so that "rolled_back" says which one.
type FunctionStatus struct {
	Name     string `json:"name"`
	Revision int64  `json:"revision"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	Serving  int64  `json:"serving,omitempty"`
	Digest   string `json:"digest,omitempty"` // of the revision serving
	AtMs     int64  `json:"at_ms"`            // when the state was reached, unix ms
}

// MaxReason bounds a status reason; the agent cuts longer ones.
const MaxReason = 2048

// Validate checks each entry.
func (s *Status) Validate() error {
	if len(s.Functions) > MaxDesired {
		return fmt.Errorf("status: %d functions, limit %d: %w", len(s.Functions), MaxDesired, errdefs.ErrInvalid)
	}
	for _, f := range s.Functions {
		switch {
		case !api.ValidName(f.Name):
			return fmt.Errorf("status: function name %q: %w", f.Name, errdefs.ErrInvalid)
		case !knownStates[f.State]:
			return fmt.Errorf("status: function %q: state %q: %w", f.Name, f.State, errdefs.ErrInvalid)
		case f.Revision < 0 || f.Serving < 0 || f.AtMs < 0:
			return fmt.Errorf("status: function %q: negative revision or time: %w", f.Name, errdefs.ErrInvalid)
		case len(f.Reason) > MaxReason || (f.Digest != "" && !ValidDigest(f.Digest)):
			return fmt.Errorf("status: function %q: reason too long or bad digest: %w", f.Name, errdefs.ErrInvalid)
		}
	}
	return nil
}
