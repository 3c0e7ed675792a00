package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// AsyncCall is one queued asynchronous invocation and, once it ran, its
// result waiting for delivery to CallbackURL.
type AsyncCall struct {
	Seq         int64
	CallID      string
	Function    string
	Method      string
	Path        string
	Query       string
	Header      http.Header
	Body        []byte
	CallbackURL string
	Created     time.Time
	Delivering  bool // ran; the result is stored and the callback is due
	Attempts    int  // invocations or deliveries tried so far
	Next        time.Time

	ResultCode   int
	ResultStatus string
	ResultHeader http.Header
	ResultBody   []byte
}

// EnqueueAsync stores a call and makes it durable (the WAL is synced)
// before returning: the caller's 202 promises the call will run. It
// refuses with ErrUnavailable when limit calls are already queued.
func (s *DB) EnqueueAsync(ctx context.Context, c AsyncCall, limit int) error {
	h, err := json.Marshal(c.Header)
	if err != nil {
		return err
	}
	err = s.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM async_calls`).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return fmt.Errorf("async queue holds %d calls, its limit: %w", n, errdefs.ErrUnavailable)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO async_calls (call_id, function_name, method, path, query,
			header_json, body, callback_url, created_ns, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued')`,
			c.CallID, c.Function, c.Method, c.Path, c.Query, string(h), c.Body, c.CallbackURL, c.Created.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: enqueue async call %q: %w", c.CallID, err)
	}
	return s.SyncWAL()
}

// DueAsync returns up to limit calls whose next attempt is due at now, in
// the order they came, skipping those in skip (being worked on).
func (s *DB) DueAsync(ctx context.Context, now time.Time, limit int, skip map[int64]bool) ([]AsyncCall, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, call_id, function_name, method, path, query, header_json,
		body, callback_url, created_ns, state, attempts, next_ns, result_code, result_status, result_header, result_body
		FROM async_calls WHERE next_ns <= ? ORDER BY seq LIMIT ?`, now.UnixNano(), limit+len(skip))
	if err != nil {
		return nil, fmt.Errorf("store: due async calls: %w", err)
	}
	defer rows.Close()
	var out []AsyncCall
	for rows.Next() {
		var c AsyncCall
		var h, rh, state string
		var created, next int64
		if err := rows.Scan(&c.Seq, &c.CallID, &c.Function, &c.Method, &c.Path, &c.Query, &h, &c.Body,
			&c.CallbackURL, &created, &state, &c.Attempts, &next, &c.ResultCode, &c.ResultStatus, &rh, &c.ResultBody); err != nil {
			return nil, fmt.Errorf("store: due async calls: %w", err)
		}
		if skip[c.Seq] || len(out) == limit {
			continue
		}
		c.Created, c.Next, c.Delivering = time.Unix(0, created), time.Unix(0, next), state == "delivering"
		if err := json.Unmarshal([]byte(h), &c.Header); err != nil {
			return nil, fmt.Errorf("store: async call %q header: %w", c.CallID, err)
		}
		if err := json.Unmarshal([]byte(rh), &c.ResultHeader); err != nil {
			return nil, fmt.Errorf("store: async call %q result header: %w", c.CallID, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// AsyncResult stores a call's result for delivery (the call will not run
// again) and schedules the first delivery at once.
func (s *DB) AsyncResult(ctx context.Context, seq int64, code int, status string, header http.Header, body []byte) error {
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `UPDATE async_calls SET state = 'delivering', attempts = 0, next_ns = 0,
		result_code = ?, result_status = ?, result_header = ?, result_body = ? WHERE seq = ?`,
		code, status, string(h), body, seq)
	if err != nil {
		return fmt.Errorf("store: async result %d: %w", seq, err)
	}
	return nil
}

// RetryAsync counts a failed attempt and sets when the next one is due.
func (s *DB) RetryAsync(ctx context.Context, seq int64, next time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE async_calls SET attempts = attempts + 1, next_ns = ? WHERE seq = ?`, next.UnixNano(), seq)
	if err != nil {
		return fmt.Errorf("store: retry async %d: %w", seq, err)
	}
	return nil
}

// DoneAsync forgets a call whose result was delivered (or had nowhere to go).
func (s *DB) DoneAsync(ctx context.Context, seq int64) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM async_calls WHERE seq = ?`, seq); err != nil {
		return fmt.Errorf("store: async done %d: %w", seq, err)
	}
	return nil
}
