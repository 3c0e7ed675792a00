// Package systemd is the agent's only contact with systemd: the unit files
// (embedded, and installed by Install), readiness, status and the watchdog
// over sd_notify, socket activation, and logging to the journal.
//
// Every part works without systemd: the agent then runs as a plain process
// (tests, `make run`), notifications are no-ops, there are no passed
// sockets, and logs go to stderr. It does not talk to systemd's D-Bus API,
// and it holds no state of its own beyond what a Notifier keeps.
package systemd

import (
	"embed"
	"io/fs"
)

// files are the unit files and the default agent configuration, as
// installed. Their comments say why each setting is there.
//
//go:embed edgefaasd.service edgefaasd.socket edgefaasd-gateway.socket edgecloud.service
var files embed.FS

//go:embed agent.conf
var defaultConfig string

// Unit names.
const (
	AgentService  = "edgefaasd.service"
	APISocket     = "edgefaasd.socket"         // the admin socket, passed as "api"
	GatewaySocket = "edgefaasd-gateway.socket" // the gateway port, passed as "gateway"
	CloudService  = "edgecloud.service"
)

// Socket names, as the socket units' FileDescriptorName= gives them to the
// agent in LISTEN_FDNAMES.
const (
	APIListener     = "api"
	GatewayListener = "gateway"
)

// ConfigPath is where the agent's unit reads its configuration.
const ConfigPath = "/etc/edgefaas/agent.conf"

// Units returns the unit files, each at the top level under its unit name:
// the agent's (AgentService, APISocket, GatewaySocket) and the cloud
// controller's (CloudService).
func Units() fs.FS {
	return files
}

// agentUnits are the units Install writes, the service first.
func agentUnits() []string {
	return []string{AgentService, APISocket, GatewaySocket}
}

// DefaultConfig returns the configuration file Install writes when there is
// none: every setting commented out, showing its default.
func DefaultConfig() string {
	return defaultConfig
}
