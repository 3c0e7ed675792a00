package metering

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Ack marks every record with Seq <= upTo acknowledged by the cloud
// controller. The mark only grows: a lower upTo than an earlier one is
// ignored. An upTo above the last seq handed out is ErrInvalid, since it
// would acknowledge records not yet written.
func (l *Ledger) Ack(ctx context.Context, upTo int64) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	err := l.db.Tx(ctx, func(tx *sql.Tx) error {
		// sqlite_sequence holds the last AUTOINCREMENT key handed out,
		// even after its row was rolled up and deleted.
		var last int64
		err := tx.QueryRowContext(ctx,
			"SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'metering_records'), 0)").Scan(&last)
		if err != nil {
			return err
		}
		if upTo > last {
			return fmt.Errorf("last seq is %d: %w", last, errdefs.ErrInvalid)
		}
		_, err = tx.ExecContext(ctx, "UPDATE metering_ack SET acked_seq = ? WHERE id = 1 AND acked_seq < ?", upTo, upTo)
		return err
	})
	if err != nil {
		return fmt.Errorf("metering: ack %d: %w", upTo, err)
	}
	return nil
}

// Unacked returns up to limit records with Seq > after that the controller
// has not acknowledged, in Seq order: what the uploader sends next.
// Records already rolled up are gone; with RequireAck that only happens
// to acknowledged ones.
func (l *Ledger) Unacked(ctx context.Context, after int64, limit int) ([]Record, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("metering: unacked: limit %d: %w", limit, errdefs.ErrInvalid)
	}
	rows, err := l.db.SQL().QueryContext(ctx, `SELECT seq, `+recordColumns+` FROM metering_records
		WHERE seq > ? AND seq > (SELECT acked_seq FROM metering_ack WHERE id = 1)
		ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("metering: unacked: %w", err)
	}
	defer rows.Close()
	var recs []Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("metering: unacked: %w", err)
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metering: unacked: %w", err)
	}
	return recs, nil
}

// scanRecord reads a row of seq and recordColumns. billed_ms and kib_ms are
// read and dropped: Record derives them.
func scanRecord(rows *sql.Rows) (Record, error) {
	var r Record
	var start, dur, cpu, init, billed, kibMs int64
	err := rows.Scan(&r.Seq, &r.CallID, &r.Function, &r.ImageDigest, &r.Trigger, &start, &dur,
		&r.MemoryBytes, &cpu, &r.Cold, &init, &r.Status, &r.RequestBytes, &r.ResponseBytes, &billed, &kibMs)
	if err != nil {
		return Record{}, err
	}
	r.Start = time.Unix(0, start).UTC()
	r.Duration, r.CPUTime, r.InitTime = time.Duration(dur), time.Duration(cpu), time.Duration(init)
	return r, nil
}
