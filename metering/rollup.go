package metering

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"
)

// Rollup moves raw records whose Start is before the retention cutoff
// (now - Retention, truncated to the UTC hour) into the hourly table, summed
// per function and hour and added to a row already there, and deletes them,
// all in one transaction. With RequireAck it leaves records the controller
// has not acknowledged raw, whatever their age: they still have to be
// uploaded. It returns how many records it rolled up.
//
// Hourly rows older than KeepHourly are deleted in the same transaction.
//
// The cutoff is on an hour boundary so that an hour is rolled up whole:
// a query with hourly buckets sums the same records before and after.
func (l *Ledger) Rollup(ctx context.Context) (int, error) {
	if err := l.checkOpen(); err != nil {
		return 0, err
	}
	return l.rollup(ctx)
}

func (l *Ledger) rollup(ctx context.Context) (int, error) {
	cutoff := l.cfg.Clock().Add(-l.cfg.Retention).Truncate(time.Hour).UnixNano()
	if cutoff <= 0 {
		return 0, nil // nothing can be that old
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	var rolled int64
	err := l.db.Tx(ctx, func(tx *sql.Tx) error {
		upTo := int64(math.MaxInt64)
		if l.cfg.RequireAck {
			if err := tx.QueryRowContext(ctx, "SELECT acked_seq FROM metering_ack WHERE id = 1").Scan(&upTo); err != nil {
				return err
			}
		}
		// WHERE before GROUP BY keeps SQLite's upsert parser from reading
		// ON CONFLICT as a join constraint.
		_, err := tx.ExecContext(ctx, `INSERT INTO metering_hourly (function_name, hour_ns, invocations, errors,
				cold_starts, billed_ms, kib_ms, cpu_ns, duration_ns, init_ns, request_bytes, response_bytes)
			SELECT function_name, start_ns - start_ns % ?, COUNT(*),
				SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), SUM(cold), SUM(billed_ms), SUM(kib_ms),
				SUM(cpu_ns), SUM(duration_ns), SUM(init_ns), SUM(request_bytes), SUM(response_bytes)
			FROM metering_records
			WHERE start_ns < ? AND seq <= ?
			GROUP BY function_name, start_ns - start_ns % ?
			ON CONFLICT (function_name, hour_ns) DO UPDATE SET
				invocations    = metering_hourly.invocations + excluded.invocations,
				errors         = metering_hourly.errors + excluded.errors,
				cold_starts    = metering_hourly.cold_starts + excluded.cold_starts,
				billed_ms      = metering_hourly.billed_ms + excluded.billed_ms,
				kib_ms         = metering_hourly.kib_ms + excluded.kib_ms,
				cpu_ns         = metering_hourly.cpu_ns + excluded.cpu_ns,
				duration_ns    = metering_hourly.duration_ns + excluded.duration_ns,
				init_ns        = metering_hourly.init_ns + excluded.init_ns,
				request_bytes  = metering_hourly.request_bytes + excluded.request_bytes,
				response_bytes = metering_hourly.response_bytes + excluded.response_bytes`,
			hourNs, cutoff, upTo, hourNs)
		if err != nil {
			return err
		}
		// The same predicate under the same write lock: exactly the rows
		// just summed.
		res, err := tx.ExecContext(ctx, "DELETE FROM metering_records WHERE start_ns < ? AND seq <= ?", cutoff, upTo)
		if err != nil {
			return err
		}
		if rolled, err = res.RowsAffected(); err != nil {
			return err
		}
		// Hourly rows past KeepHourly go, so that disk use stays bounded
		// however long the gateway runs (about 9,600 rows per function at
		// the 400-day default). They were acknowledged when rolled up.
		expiry := l.cfg.Clock().Add(-l.cfg.KeepHourly).Truncate(time.Hour).UnixNano()
		_, err = tx.ExecContext(ctx, "DELETE FROM metering_hourly WHERE hour_ns < ?", expiry)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("metering: roll-up: %w", err)
	}
	return int(rolled), nil
}
