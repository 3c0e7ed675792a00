package metering

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

const (
	hourNs = int64(time.Hour)
	dayNs  = 24 * hourNs
)

// Query selects and groups usage.
type Query struct {
	Function string    // "" = all
	Since    time.Time // zero = all; rounded down to its UTC hour, the grain of rolled-up rows
	By       string    // "", "hour" or "day" (UTC)
}

// Usage is what one function used in one bucket.
type Usage struct {
	Function    string
	Bucket      time.Time // start of the hour or day (UTC); zero when By == ""
	Invocations int64
	Errors      int64 // Status != "ok"
	ColdStarts  int64
	BilledMs    int64
	KiBMs       int64
	GBSeconds   float64 // from KiBMs
	CPUMs       int64   // summed in nanoseconds, then truncated
}

// Usage sums raw records and rolled-up hourly rows together, so that totals
// are the same before and after a roll-up. Rows come ordered by function,
// then bucket.
func (l *Ledger) Usage(ctx context.Context, q Query) ([]Usage, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	width := map[string]int64{"": 0, "hour": hourNs, "day": dayNs}
	w, ok := width[q.By]
	if !ok {
		return nil, fmt.Errorf("metering: usage by %q: want hour or day: %w", q.By, errdefs.ErrInvalid)
	}
	// Both sides are grouped before the union, so the raw side reads each
	// record once and the hourly side adds one row per function and bucket.
	rawBucket, hourBucket := "0", "0"
	if w != 0 {
		rawBucket = fmt.Sprintf("start_ns - start_ns %% %d", w)
		hourBucket = fmt.Sprintf("hour_ns - hour_ns %% %d", w)
	}
	var rawWhere, hourWhere []string
	var rawArgs, hourArgs []any
	if q.Function != "" {
		rawWhere, rawArgs = append(rawWhere, "function_name = ?"), append(rawArgs, q.Function)
		hourWhere, hourArgs = append(hourWhere, "function_name = ?"), append(hourArgs, q.Function)
	}
	if since := q.Since.Truncate(time.Hour); since.After(time.Unix(0, 0)) {
		rawWhere, rawArgs = append(rawWhere, "start_ns >= ?"), append(rawArgs, since.UnixNano())
		hourWhere, hourArgs = append(hourWhere, "hour_ns >= ?"), append(hourArgs, since.UnixNano())
	}
	query := `SELECT function_name, bucket, SUM(invocations), SUM(errors), SUM(cold_starts),
			SUM(billed_ms), SUM(kib_ms), SUM(cpu_ns)
		FROM (
			SELECT function_name, ` + rawBucket + ` AS bucket, COUNT(*) AS invocations,
				SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END) AS errors, SUM(cold) AS cold_starts,
				SUM(billed_ms) AS billed_ms, SUM(kib_ms) AS kib_ms, SUM(cpu_ns) AS cpu_ns
			FROM metering_records` + where(rawWhere) + `
			GROUP BY function_name, bucket
			UNION ALL
			SELECT function_name, ` + hourBucket + ` AS bucket, SUM(invocations), SUM(errors), SUM(cold_starts),
				SUM(billed_ms), SUM(kib_ms), SUM(cpu_ns)
			FROM metering_hourly` + where(hourWhere) + `
			GROUP BY function_name, bucket
		) AS u
		GROUP BY function_name, bucket
		ORDER BY function_name, bucket`
	rows, err := l.db.SQL().QueryContext(ctx, query, append(rawArgs, hourArgs...)...)
	if err != nil {
		return nil, fmt.Errorf("metering: usage: %w", err)
	}
	defer rows.Close()
	var us []Usage
	for rows.Next() {
		var u Usage
		var bucket, cpuNs int64
		if err := rows.Scan(&u.Function, &bucket, &u.Invocations, &u.Errors, &u.ColdStarts,
			&u.BilledMs, &u.KiBMs, &cpuNs); err != nil {
			return nil, fmt.Errorf("metering: usage: %w", err)
		}
		if w != 0 {
			u.Bucket = time.Unix(0, bucket).UTC()
		}
		u.GBSeconds = gbSeconds(u.KiBMs)
		u.CPUMs = cpuNs / int64(time.Millisecond)
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metering: usage: %w", err)
	}
	return us, nil
}

func where(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}
