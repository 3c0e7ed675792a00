// Package controller is the edgefaas cloud controller (the edgecloud
// binary): it enrols devices with one-time tokens, holds their links (the
// hub), stores their inventory, health and activation records, serves
// the fleet's admin API, with a Go client for the command line, and an
// OCI registry the admin pushes to and devices pull from (registry.go).
//
// It is not the agent's side of the link (package cloudsync) and it shares
// only the wire protocol (cloudsync/proto) with it. Desired state and the
// dashboard are later steps (issue 8).
package controller

import (
	"time"

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
