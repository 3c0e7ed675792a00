package metering

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// base is when the test records start: a Friday, 00:00 UTC.
var base = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// testRecord is the i-th of the known records (i from 1): two functions of
// different memory, durations i*7ms, mixed statuses, every fifth cold, one
// every seven minutes (so 1000 of them span five days).
func testRecord(i int) Record {
	r := Record{
		CallID:      fmt.Sprintf("call-%d", i),
		Function:    "resize",
		ImageDigest: "sha256:abc",
		Trigger:     "http",
		Start:       base.Add(time.Duration(i) * 7 * time.Minute),
		Duration:    time.Duration(i) * 7 * time.Millisecond,
		MemoryBytes: 128 << 20,
		CPUTime:     time.Duration(i)*3*time.Millisecond + 500*time.Microsecond,
		Cold:        i%5 == 0,
		Status:      "ok",
	}
	if i%2 == 0 {
		r.Function, r.MemoryBytes, r.Trigger = "thumb", 100_000_000, "mqtt"
	}
	switch {
	case i%10 == 0:
		r.Status = "error"
	case i%17 == 0:
		r.Status = "timeout"
	}
	if r.Cold {
		r.InitTime = 30 * time.Millisecond
	}
	return r
}

const nRecords = 1000

func recordAll(t *testing.T, l *Ledger) {
	t.Helper()
	for i := 1; i <= nRecords; i++ {
		if seq := mustRecord(t, l, testRecord(i)); seq != int64(i) {
			t.Fatalf("record %d got seq %d", i, seq)
		}
	}
}

// TestUsageTotals checks the sums against values computed here from the
// definitions, in integer milliseconds, without the package's helpers.
func TestUsageTotals(t *testing.T) {
	db, _ := openDB(t)
	l := openLedger(t, db, Config{Clock: newClock(base).Now})
	recordAll(t, l)

	want := map[string]*Usage{"resize": {Function: "resize"}, "thumb": {Function: "thumb"}}
	var cpuUs = map[string]int64{}
	for i := 1; i <= nRecords; i++ {
		fn, kib := "resize", int64(131072) // 128 MiB
		if i%2 == 0 {
			fn, kib = "thumb", 97657 // 100,000,000 B = 97656.25 KiB
		}
		ms := int64(i) * 7
		billed := (ms + 99) / 100 * 100
		if billed == 0 {
			billed = 100
		}
		u := want[fn]
		u.Invocations++
		if i%10 == 0 || i%17 == 0 {
			u.Errors++
		}
		if i%5 == 0 {
			u.ColdStarts++
		}
		u.BilledMs += billed
		u.KiBMs += kib * billed
		cpuUs[fn] += int64(i)*3000 + 500
	}
	for fn, u := range want {
		u.CPUMs = cpuUs[fn] / 1000
		u.GBSeconds = float64(u.KiBMs) / 1024 / 1024 / 1000
	}
	// Spot-check the hand computation against two exact figures.
	if want["resize"].Invocations != 500 || want["thumb"].Errors != 100+29-5 { // i%10, i%34, not both
		t.Fatalf("test arithmetic: %+v %+v", *want["resize"], *want["thumb"])
	}

	got, err := l.Usage(t.Context(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("Usage = %d rows, want 2: %+v", len(got), got)
	}
	for _, g := range got {
		w := want[g.Function]
		if w == nil {
			t.Fatalf("Usage has function %q", g.Function)
		}
		if g != *w {
			t.Errorf("Usage %s\n got  %+v\n want %+v", g.Function, g, *w)
		}
		// GB-s from summed KiBMs equals the sum of per-record GB-s up to
		// float rounding: storing the integer unit loses nothing.
		var sum float64
		for i := 1; i <= nRecords; i++ {
			if r := testRecord(i); r.Function == g.Function {
				sum += r.GBSeconds()
			}
		}
		if math.Abs(sum-g.GBSeconds) > 1e-9 {
			t.Errorf("%s: GBSeconds %v, per-record sum %v", g.Function, g.GBSeconds, sum)
		}
	}
}

func TestUsageQuery(t *testing.T) {
	db, _ := openDB(t)
	l := openLedger(t, db, Config{Clock: newClock(base).Now})
	recordAll(t, l)
	all, err := l.Usage(t.Context(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	count := func(fn string, from time.Time) (n int64) {
		for i := 1; i <= nRecords; i++ {
			if r := testRecord(i); (fn == "" || r.Function == fn) && !r.Start.Before(from) {
				n++
			}
		}
		return n
	}
	hours := func(fn string) int {
		seen := map[time.Time]bool{}
		for i := 1; i <= nRecords; i++ {
			if r := testRecord(i); r.Function == fn {
				seen[r.Start.Truncate(time.Hour)] = true
			}
		}
		return len(seen)
	}
	tests := []struct {
		name      string
		q         Query
		wantRows  int
		wantCalls int64
		wantErr   error
	}{
		{name: "all", q: Query{}, wantRows: 2, wantCalls: nRecords},
		{name: "one function", q: Query{Function: "thumb"}, wantRows: 1, wantCalls: nRecords / 2},
		{name: "unknown function", q: Query{Function: "nope"}, wantRows: 0},
		{name: "since, on the hour", q: Query{Since: base.Add(48 * time.Hour)}, wantRows: 2,
			wantCalls: count("", base.Add(48*time.Hour))},
		{name: "since rounds down to the hour", q: Query{Since: base.Add(48*time.Hour + 59*time.Minute)}, wantRows: 2,
			wantCalls: count("", base.Add(48*time.Hour))},
		{name: "since in another zone", q: Query{Since: base.Add(48 * time.Hour).In(time.FixedZone("IST", 5*3600+1800))},
			wantRows: 2, wantCalls: count("", base.Add(48*time.Hour))},
		{name: "by day", q: Query{By: "day"}, wantRows: 2 * 5, wantCalls: nRecords},
		{name: "by hour, one function", q: Query{Function: "resize", By: "hour"}, wantRows: hours("resize"), wantCalls: nRecords / 2},
		{name: "by week", q: Query{By: "week"}, wantErr: errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Usage(t.Context(), tt.q)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Usage(%+v) error = %v, want %v", tt.q, err, tt.wantErr)
			}
			var calls int64
			for i, u := range got {
				calls += u.Invocations
				if tt.q.By == "" && !u.Bucket.IsZero() {
					t.Errorf("row %d: bucket %v without By", i, u.Bucket)
				}
				if tt.q.By == "day" && (u.Bucket.Location() != time.UTC || !u.Bucket.Equal(u.Bucket.Truncate(24*time.Hour))) {
					t.Errorf("row %d: bucket %v is not a UTC midnight", i, u.Bucket)
				}
			}
			if len(got) != tt.wantRows || calls != tt.wantCalls {
				t.Errorf("Usage(%+v) = %d rows, %d invocations; want %d, %d", tt.q, len(got), calls, tt.wantRows, tt.wantCalls)
			}
			sorted := slices.IsSortedFunc(got, func(a, b Usage) int {
				if a.Function != b.Function {
					return cmpString(a.Function, b.Function)
				}
				return a.Bucket.Compare(b.Bucket)
			})
			if !sorted {
				t.Errorf("rows not ordered by function, bucket: %+v", got)
			}
		})
	}
	if len(all) != 2 || all[0].Function != "resize" || all[1].Function != "thumb" {
		t.Errorf("Usage() functions = %+v, want resize then thumb", all)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
