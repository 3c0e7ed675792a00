package systemd

import (
	"fmt"
	"net"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Listeners returns the listening sockets systemd passed to this process
// (socket activation), by the name their socket unit gave them
// (FileDescriptorName=, LISTEN_FDNAMES); a socket without a name is
// "LISTEN_FD_N". The map is empty when nothing was passed to this process:
// no LISTEN_FDS, or a LISTEN_PID that is not ours.
//
// It unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES and marks the
// descriptors close-on-exec, so that no child (no sandbox init) inherits
// them. Call it once, early. Two sockets under one name are an error: the
// agent could not tell which to serve.
func Listeners() (map[string]net.Listener, error) {
	byName, err := activation.ListenersWithNames()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	out := make(map[string]net.Listener, len(byName))
	var dup error
	for name, lns := range byName {
		if len(lns) > 1 && dup == nil {
			dup = fmt.Errorf("socket activation: %d sockets named %q, want one: %w", len(lns), name, errdefs.ErrInvalid)
		}
		out[name] = lns[0]
	}
	if dup != nil {
		for _, lns := range byName {
			for _, ln := range lns {
				ln.Close()
			}
		}
		return nil, dup
	}
	return out, nil
}
