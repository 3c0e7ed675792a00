// Package metering is the agent's activation ledger: every invocation leaves
// one Record, committed to the store's SQLite database before the agent
// answers, numbered with a per-device sequence that the cloud uploader
// acknowledges. It rounds durations into billing units, rolls old records up
// per function and hour, and answers usage queries.
//
// It is not the uploader (package cloudsync reads Unacked and calls Ack) and
// it does not price anything: it counts billed milliseconds and KiB x ms.
package metering

import (
	"fmt"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// billingUnit is the granularity of billed duration.
const billingUnit = 100 * time.Millisecond

// Record is one invocation, as billed.
type Record struct {
	Seq           int64 // assigned by the ledger: per device, strictly increasing, never reused
	CallID        string
	Function      string
	ImageDigest   string
	Trigger       string // http, mqtt, schedule, async
	Start         time.Time
	Duration      time.Duration
	MemoryBytes   int64 // configured memory of the function
	CPUTime       time.Duration
	Cold          bool
	InitTime      time.Duration // time to start the instance when Cold
	Status        string        // ok, error, timeout, oom, crashed, too_large
	RequestBytes  int64
	ResponseBytes int64
}

// BilledMs is the duration rounded up to the next 100 ms, at least 100: a
// call that took no time still bills one unit.
func (r Record) BilledMs() int64 {
	units := (r.Duration + billingUnit - 1) / billingUnit
	if units < 1 {
		units = 1
	}
	return int64(units) * billingUnit.Milliseconds()
}

// KiBMs is the configured memory in KiB, rounded up, times BilledMs. It is
// the exact integer unit the ledger stores and sums, so that totals never
// drift with floating point.
func (r Record) KiBMs() int64 {
	kib := (r.MemoryBytes + 1023) / 1024
	return kib * r.BilledMs()
}

// GBSeconds is memory in GiB times billed seconds (the AWS convention: a GB
// is 1024 MiB).
func (r Record) GBSeconds() float64 {
	return gbSeconds(r.KiBMs())
}

func gbSeconds(kibMs int64) float64 {
	return float64(kibMs) / (1024 * 1024) / 1000
}

// validate rejects what the ledger cannot store faithfully. It is lenient
// with the rest (an unknown status or trigger is kept, and counts as an
// error if not "ok"): a record refused is an invocation never billed.
func (r Record) validate() error {
	var why string
	switch {
	case r.Function == "":
		why = "empty function"
	case r.Status == "":
		why = "empty status"
	case r.Start.Before(time.Unix(0, 0)) || r.Start.After(time.Unix(0, 1<<63-1)):
		// Stored as unix nanoseconds; a zero Start is a caller's bug.
		why = fmt.Sprintf("start %v out of range", r.Start)
	case r.Duration < 0 || r.CPUTime < 0 || r.InitTime < 0:
		why = "negative duration"
	case r.MemoryBytes < 0 || r.RequestBytes < 0 || r.ResponseBytes < 0:
		why = "negative size"
	default:
		return nil
	}
	return fmt.Errorf("metering: record of call %q: %s: %w", r.CallID, why, errdefs.ErrInvalid)
}
