package metering

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

func TestRollup(t *testing.T) {
	// Retention 7 days from base+9d+30m: the cutoff is base+2d on the
	// hour, so records 1..411 (start i*7 min < 2880 min) are old enough.
	const retention = 7 * 24 * time.Hour
	start := base.Add(9*24*time.Hour + 30*time.Minute)
	type step struct {
		advance    time.Duration // moves the clock before the step
		ack        int64         // Ack(ack) before the roll-up when > 0
		wantRolled int
	}
	tests := []struct {
		name       string
		requireAck bool
		steps      []step
	}{
		{name: "standalone rolls every old record", steps: []step{
			{wantRolled: 411},
			{advance: 29 * time.Minute, wantRolled: 0},                 // same cutoff hour
			{advance: 24 * time.Hour, wantRolled: 617 - 411},           // cutoff base+3d: i*7 < 4320
			{advance: 30 * 24 * time.Hour, wantRolled: nRecords - 617}, // all
		}},
		{name: "nothing acknowledged stays raw", requireAck: true, steps: []step{
			{wantRolled: 0},
			{advance: 30 * 24 * time.Hour, wantRolled: 0},
		}},
		// Seq 300 starts at 35:00 and 301..308 in the same hour: the
		// second roll-up adds them to the hourly rows the first one made.
		{name: "acknowledged part then the rest", requireAck: true, steps: []step{
			{ack: 300, wantRolled: 300},
			{ack: 1000, wantRolled: 111},
		}},
		{name: "acknowledged beyond the cutoff", requireAck: true, steps: []step{
			{ack: 1000, wantRolled: 411},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock(start)
			db, _ := openDB(t)
			l := openLedger(t, db, Config{Retention: retention, RequireAck: tt.requireAck, Clock: clk.Now})
			recordAll(t, l)
			before := usageBy(t, l)
			var acked int64
			for n, s := range tt.steps {
				clk.Set(clk.Now().Add(s.advance))
				if s.ack > 0 {
					if err := l.Ack(ctx, s.ack); err != nil {
						t.Fatal(err)
					}
					acked = s.ack
				}
				rolled, err := l.Rollup(ctx)
				if err != nil || rolled != s.wantRolled {
					t.Fatalf("step %d: Rollup = %d, %v, want %d", n, rolled, err, s.wantRolled)
				}
				cutoff := clk.Now().Add(-retention).Truncate(time.Hour)
				var wantRaw []int64
				hours := map[string]bool{}
				for i := 1; i <= nRecords; i++ {
					r := testRecord(i)
					old := r.Start.Before(cutoff) && (!tt.requireAck || int64(i) <= acked)
					if !old {
						wantRaw = append(wantRaw, int64(i))
						continue
					}
					hours[r.Function+r.Start.Truncate(time.Hour).String()] = true
				}
				if got := rawSeqs(t, db); !slices.Equal(got, wantRaw) {
					t.Errorf("step %d: %d raw records left, want %d (%v...)", n, len(got), len(wantRaw), head(wantRaw))
				}
				var hourly int
				if err := db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM metering_hourly").Scan(&hourly); err != nil {
					t.Fatal(err)
				}
				if hourly != len(hours) {
					t.Errorf("step %d: %d hourly rows, want one per function and hour rolled up: %d", n, hourly, len(hours))
				}
				after := usageBy(t, l)
				for by, want := range before {
					if !slices.Equal(after[by], want) {
						t.Errorf("step %d: Usage by %q changed with the roll-up:\n before %+v\n after  %+v", n, by, want, after[by])
					}
				}
			}
		})
	}
}

// usageBy returns Usage of everything for each grouping.
func usageBy(t *testing.T, l *Ledger) map[string][]Usage {
	t.Helper()
	m := map[string][]Usage{}
	for _, by := range []string{"", "hour", "day"} {
		us, err := l.Usage(t.Context(), Query{By: by})
		if err != nil {
			t.Fatal(err)
		}
		m[by] = us
	}
	return m
}

func head(s []int64) []int64 {
	return s[:min(len(s), 5)]
}

func TestAckAndUnacked(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLedger(t, db, Config{RequireAck: true, Clock: newClock(base).Now})
	var recorded []Record
	for i := 1; i <= 10; i++ {
		r := testRecord(i)
		r.Start = r.Start.In(time.FixedZone("CET", 3600)) // comes back in UTC
		r.Seq = mustRecord(t, l, r)
		r.Start = r.Start.UTC()
		recorded = append(recorded, r)
	}
	seqs := func(rs []Record) (s []int64) {
		for _, r := range rs {
			s = append(s, r.Seq)
		}
		return s
	}
	tests := []struct {
		name    string
		ack     int64 // -1: no Ack call
		after   int64
		limit   int
		want    []int64
		wantErr error
	}{
		{name: "nothing acknowledged", ack: -1, after: 0, limit: 100, want: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{name: "limit", ack: -1, after: 0, limit: 3, want: []int64{1, 2, 3}},
		{name: "after", ack: -1, after: 7, limit: 100, want: []int64{8, 9, 10}},
		{name: "ack 0 is a no-op", ack: 0, after: 0, limit: 2, want: []int64{1, 2}},
		{name: "ack 5", ack: 5, after: 0, limit: 100, want: []int64{6, 7, 8, 9, 10}},
		{name: "lower ack ignored", ack: 3, after: 0, limit: 100, want: []int64{6, 7, 8, 9, 10}},
		{name: "after beyond ack", ack: -1, after: 8, limit: 100, want: []int64{9, 10}},
		{name: "ack beyond the last seq", ack: 11, wantErr: errdefs.ErrInvalid},
		{name: "bad limit", ack: -1, limit: 0, wantErr: errdefs.ErrInvalid},
		{name: "ack all", ack: 10, after: 0, limit: 100, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ack >= 0 {
				err := l.Ack(ctx, tt.ack)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Ack(%d) = %v, want %v", tt.ack, err, tt.wantErr)
				}
				if err != nil {
					return
				}
			}
			got, err := l.Unacked(ctx, tt.after, tt.limit)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Unacked(%d, %d) = %v, want %v", tt.after, tt.limit, err, tt.wantErr)
			}
			if !slices.Equal(seqs(got), tt.want) {
				t.Errorf("Unacked(%d, %d) = seqs %v, want %v", tt.after, tt.limit, seqs(got), tt.want)
			}
			for _, r := range got {
				if want := recorded[r.Seq-1]; r != want {
					t.Errorf("Unacked record %d\n got  %+v\n want %+v", r.Seq, r, want)
				}
			}
		})
	}
}

// TestHourlyRowsExpire: hourly rows older than KeepHourly are deleted, so the
// ledger's disk use is bounded however long the gateway runs.
func TestHourlyRowsExpire(t *testing.T) {
	clk := newClock(base.Add(9*24*time.Hour + 30*time.Minute))
	db, _ := openDB(t)
	l := openLedger(t, db, Config{Retention: 7 * 24 * time.Hour, KeepHourly: 30 * 24 * time.Hour, Clock: clk.Now})
	recordAll(t, l)
	if _, err := l.Rollup(t.Context()); err != nil {
		t.Fatal(err)
	}
	hourly := func() int {
		var n int
		if err := db.SQL().QueryRow("SELECT COUNT(*) FROM metering_hourly").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if hourly() == 0 {
		t.Fatal("the roll-up made no hourly rows")
	}
	clk.Set(clk.Now().Add(60 * 24 * time.Hour)) // every record's hour is now past KeepHourly
	if _, err := l.Rollup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := hourly(); n != 0 {
		t.Fatalf("%d hourly rows older than KeepHourly remain", n)
	}
	if raw := rawSeqs(t, db); len(raw) != 0 {
		t.Fatalf("raw records remain: %d", len(raw))
	}
}
