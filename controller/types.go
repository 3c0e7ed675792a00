// Package controller is the edgefaas cloud controller (the edgecloud
// binary): it enrols devices with one-time tokens, holds their links (the
// hub), stores their inventory, health and activation records, keeps
// deployments and sends each device its desired functions, records what
// the devices report of them, serves an OCI registry the admin pushes to
// and devices pull from (registry.go), and serves the fleet's admin API,
// with a Go client for the command line.
//
// It is not the agent's side of the link (package cloudsync) and it shares
// only the wire protocol (cloudsync/proto) with it.
package controller

import (
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/cloudsync/proto"
)

// Device is an enrolled gateway as the store keeps it.
type Device struct {
	ID         string            `json:"id"`
	PublicKey  []byte            `json:"public_key"`
	Labels     map[string]string `json:"labels"`
	Hostname   string            `json:"hostname,omitempty"`
	EnrolledAt time.Time         `json:"enrolled_at"`
	RevokedAt  *time.Time        `json:"revoked_at,omitempty"`
	LastSeen   time.Time         `json:"last_seen"` // zero: never connected
	Inventory  *proto.Hello      `json:"inventory,omitempty"`
	Health     *proto.Health     `json:"health,omitempty"`
}

// DeviceStatus is a device as the admin API shows it: the stored record
// and whether a link is up now.
type DeviceStatus struct {
	Device
	Online      bool       `json:"online"`
	ConnectedAt *time.Time `json:"connected_at,omitempty"` // of the current link
	Links       int64      `json:"links"`                  // links accepted since the controller started
}

// TokenRequest asks for an enrolment token.
type TokenRequest struct {
	Labels map[string]string `json:"labels,omitempty"`
}

// TokenResponse carries the token: shown once, stored only as a hash.
type TokenResponse struct {
	Token  string            `json:"token"`
	Labels map[string]string `json:"labels,omitempty"`
}

// UsageQuery selects records: since a time, of one device and one
// function when not empty.
type UsageQuery struct {
	Since    time.Time
	Device   string
	Function string
}

// UsageRow sums one device's records of one function.
type UsageRow struct {
	Device      string    `json:"device"`
	Function    string    `json:"function"`
	Invocations int64     `json:"invocations"`
	Errors      int64     `json:"errors"`
	ColdStarts  int64     `json:"cold_starts"`
	BilledMs    int64     `json:"billed_ms"`
	GBSeconds   float64   `json:"gb_seconds"`
	CPUSeconds  float64   `json:"cpu_seconds"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
}

// Deployment places one function on every device whose labels include the
// selector's. The image is pinned to a digest when deployed: a tag pushed
// again later does not change what runs until the next deploy.
type Deployment struct {
	Name       string            `json:"name"`
	Image      string            `json:"image"`      // as given: repo:tag or repo@digest
	Repository string            `json:"repository"` // in the controller's registry
	Digest     string            `json:"digest"`
	Selector   map[string]string `json:"selector"`
	Spec       api.FunctionSpec  `json:"spec"`
	Revision   int64             `json:"revision"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
}

// Selects reports whether a device with labels is one the deployment
// places its function on: it has every label of the selector. An empty
// selector selects every device.
func (d Deployment) Selects(labels map[string]string) bool {
	for k, v := range d.Selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// DeployRequest creates or changes a deployment: POST /v1/deployments.
type DeployRequest struct {
	Image    string            `json:"image"`
	Selector map[string]string `json:"selector"`
	Spec     api.FunctionSpec  `json:"spec"` // Spec.Name names the deployment
}

// DeviceFunction is what a device last reported of one function the cloud
// placed on it.
type DeviceFunction struct {
	Device string `json:"device"`
	proto.FunctionStatus
	UpdatedAt time.Time `json:"updated_at"` // when the controller heard it
}

// Rollout is a deployment's progress: one row per device it selects.
type Rollout struct {
	Deployment Deployment      `json:"deployment"`
	Devices    []RolloutDevice `json:"devices"`
	// Counts of Devices by state (failed counts rolled_back too); Done
	// when every device runs the deployment's revision.
	Running  int  `json:"running"`
	Applying int  `json:"applying"`
	Pending  int  `json:"pending"`
	Failed   int  `json:"failed"`
	Done     bool `json:"done"`
	// Settled: no device is pending or applying: every selected device
	// runs the revision or has said why it cannot.
	Settled bool `json:"settled"`
}

// RolloutDevice is one selected device's progress. State is the device's
// report when it is about the deployment's revision, else "pending" (the
// device has not heard of it yet: offline, or not reported).
type RolloutDevice struct {
	Device   string    `json:"device"`
	Hostname string    `json:"hostname,omitempty"`
	Online   bool      `json:"online"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	Serving  int64     `json:"serving,omitempty"` // the revision answering calls there
	Reported time.Time `json:"reported,omitempty"`
}

// StatePending is a rollout row's state before the device reports the
// deployment's revision.
const StatePending = "pending"

// UsageBucket sums one function's records in one time bucket (all devices
// selected by the query).
type UsageBucket struct {
	Start       time.Time `json:"start"`
	Function    string    `json:"function"`
	Invocations int64     `json:"invocations"`
	Errors      int64     `json:"errors"`
	GBSeconds   float64   `json:"gb_seconds"`
}
