package metering

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/store"
)

// BenchmarkRecord measures, in one run, the latency of one Record with a
// single caller and the insert rate of 32 concurrent callers, against the
// same on the same database without the ledger: a plain single-row
// INSERT + COMMIT per record. It ignores b.N: the sample counts are fixed
// (make bench runs it with -benchtime 1x).
func BenchmarkRecord(b *testing.B) {
	const (
		samples  = 2000
		callers  = 32
		duration = 2 * time.Second
	)
	for b.Loop() {
		db, _ := openDB(b)
		l := openLedger(b, db, Config{})
		r := record("bench", time.Now(), 42*time.Millisecond)

		ledgerOne := latencies(b, samples, func() error { _, err := l.Record(context.Background(), r); return err })
		ledgerRate := rate(b, callers, duration, func() error { _, err := l.Record(context.Background(), r); return err })
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		plain := func() error { return plainInsert(db, r) }
		plainOne := latencies(b, samples, plain)
		plainRate := rate(b, callers, duration, plain)

		p50, p99 := pct(ledgerOne, 50), pct(ledgerOne, 99)
		bp50, bp99 := pct(plainOne, 50), pct(plainOne, 99)
		fmt.Printf("metering: Record, %d sequential calls, then %d callers for %v\n", samples, callers, duration)
		fmt.Printf("%-28s %12s %14s %8s\n", "what", "Record", "INSERT+COMMIT", "ratio")
		fmt.Printf("%-28s %12v %14v %7.2fx\n", "one caller, p50", p50, bp50, ratio(p50, bp50))
		fmt.Printf("%-28s %12v %14v %7.2fx\n", "one caller, p99", p99, bp99, ratio(p99, bp99))
		fmt.Printf("%-28s %10.0f/s %12.0f/s %7.2fx\n", fmt.Sprintf("%d callers, records/s", callers),
			ledgerRate, plainRate, ledgerRate/plainRate)
		b.ReportMetric(float64(p50.Microseconds()), "p50-us")
		b.ReportMetric(float64(p99.Microseconds()), "p99-us")
		b.ReportMetric(float64(bp50.Microseconds()), "insert-p50-us")
		b.ReportMetric(ratio(p50, bp50), "p50-ratio")
		b.ReportMetric(ledgerRate, "records/s")
		b.ReportMetric(plainRate, "insert-records/s")
		b.ReportMetric(ledgerRate/plainRate, "rate-ratio")
	}
}

// plainInsert is the baseline: one record, one transaction, no ledger.
func plainInsert(db *store.DB, r Record) error {
	return db.Tx(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(insertRecord, recordArgs(r)...)
		return err
	})
}

func latencies(b *testing.B, n int, call func() error) []time.Duration {
	ds := make([]time.Duration, n)
	for i := range ds {
		start := time.Now()
		if err := call(); err != nil {
			b.Fatal(err)
		}
		ds[i] = time.Since(start)
	}
	slices.Sort(ds)
	return ds
}

// rate runs call from callers goroutines for d and returns calls per second.
func rate(b *testing.B, callers int, d time.Duration, call func() error) float64 {
	var done atomic.Int64
	var failed atomic.Value
	stop := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if err := call(); err != nil {
					failed.Store(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	return float64(done.Load()) / time.Since(start).Seconds()
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)-1)*p/100].Round(time.Microsecond)
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }
