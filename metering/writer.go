package metering

import (
	"context"
	"fmt"
)

// recordColumns are the columns of metering_records after seq, in the
// order of recordArgs and scanRecord.
const recordColumns = `call_id, function_name, image_digest, trigger_kind, start_ns, duration_ns,
	memory_bytes, cpu_ns, cold, init_ns, status, request_bytes, response_bytes, billed_ms, kib_ms`

const insertRecord = `INSERT INTO metering_records (` + recordColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func recordArgs(r Record) []any {
	cold := 0
	if r.Cold {
		cold = 1
	}
	return []any{r.CallID, r.Function, r.ImageDigest, r.Trigger, r.Start.UnixNano(), int64(r.Duration),
		r.MemoryBytes, int64(r.CPUTime), cold, int64(r.InitTime), r.Status, r.RequestBytes, r.ResponseBytes,
		r.BilledMs(), r.KiBMs()}
}

// writer is the only goroutine that inserts records. It takes everything
// pending (up to maxBatch), commits it in one transaction and answers each
// caller. There is no wait to gather a batch: records that arrive during a
// commit make the next batch, so a lone caller pays one commit and a busy
// gateway pays one commit per batch. It returns when Close has closed reqs
// and every queued record is answered.
func (l *Ledger) writer() {
	defer close(l.writerDone)
	batch := make([]*pending, 0, maxBatch)
	for p := range l.reqs {
		batch = append(batch[:0], p)
	fill:
		for len(batch) < maxBatch {
			select {
			case p, ok := <-l.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, p)
			default:
				break fill
			}
		}
		l.commit(batch)
	}
}

// commit inserts batch in one transaction and answers its callers. If the
// transaction fails, every caller of the batch gets the error and none of
// its records is stored; the rollback also takes back their seqs, so
// sequence numbers stay without gaps. Records are validated before they
// are queued, so one bad record does not sink its batch.
func (l *Ledger) commit(batch []*pending) {
	if l.testHookCommit != nil {
		l.testHookCommit(len(batch))
	}
	l.writeMu.Lock()
	seqs, err := l.insertLocked(batch)
	l.writeMu.Unlock()
	if err != nil {
		l.log.Error("committing activation records failed", "records", len(batch), "err", err)
	}
	for i, p := range batch {
		if err != nil {
			p.done <- result{err: fmt.Errorf("metering: record of call %q: %w", p.rec.CallID, err)}
			continue
		}
		p.done <- result{seq: seqs[i]}
	}
}

// insertLocked inserts batch in one transaction; writeMu is held. It
// returns the records' seqs in order.
func (l *Ledger) insertLocked(batch []*pending) ([]int64, error) {
	seqs := make([]int64, len(batch))
	// Not the callers' contexts: the batch is shared, and a record once
	// queued is committed (see Record).
	err := l.inTx(context.Background(), func() error {
		for i, p := range batch {
			res, err := l.insert.Exec(recordArgs(p.rec)...)
			if err != nil {
				return err
			}
			// SQLite assigns the AUTOINCREMENT key as the rowid.
			if seqs[i], err = res.LastInsertId(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.dirty.Store(true)
	select {
	case l.written <- struct{}{}:
	default:
	}
	return seqs, nil
}

// recordAlone commits r in the caller's goroutine when nothing else is
// being written or waits to be: a lone call then pays no hand-off to the
// writer goroutine and back (two wake-ups, a good part of a warm call's
// metering cost). ok is false when the caller must queue instead.
func (l *Ledger) recordAlone(r Record) (seq int64, ok bool, err error) {
	l.mu.RLock() // Close waits for us
	defer l.mu.RUnlock()
	if l.closed || len(l.reqs) > 0 || !l.writeMu.TryLock() {
		return 0, false, nil
	}
	seqs, err := l.insertLocked([]*pending{{rec: r}})
	l.writeMu.Unlock()
	if err != nil {
		l.log.Error("committing an activation record failed", "err", err)
		return 0, true, fmt.Errorf("metering: record of call %q: %w", r.CallID, err)
	}
	return seqs[0], true, nil
}

// inTx runs fn in a transaction on the writer's own connection. The insert
// is prepared once on that connection at Open: database/sql's Tx.Stmt would
// prepare it again for every transaction, which profiling showed to be a
// third of the cost of a commit. BEGIN IMMEDIATE takes the write lock at
// once, as the store's own transactions do.
func (l *Ledger) inTx(ctx context.Context, fn func() error) error {
	if _, err := l.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	if err := fn(); err != nil {
		_, _ = l.conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	if _, err := l.conn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = l.conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	return nil
}
