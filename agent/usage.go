package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/logs"
	"github.com/edgefaas/edgefaas/metering"
)

// handleUsage answers GET /v1/usage?function=&since=24h&by=hour|day.
func (a *Agent) handleUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	mq := metering.Query{Function: q.Get("function"), By: q.Get("by")}
	if mq.By != "" && mq.By != "hour" && mq.By != "day" {
		writeError(w, fmt.Errorf("by %q: want hour or day: %w", mq.By, errdefs.ErrInvalid))
		return
	}
	since, err := parseSince(q.Get("since"))
	if err != nil {
		writeError(w, err)
		return
	}
	mq.Since = since
	rows, err := a.ledger.Usage(r.Context(), mq)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]api.Usage, 0, len(rows))
	for _, u := range rows {
		out = append(out, api.Usage{
			Function: u.Function, Bucket: u.Bucket, Invocations: u.Invocations, Errors: u.Errors,
			ColdStarts: u.ColdStarts, BilledMs: u.BilledMs, GBSeconds: u.GBSeconds, CPUMs: u.CPUMs,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// parseSince reads "24h" (a duration back from now); "" is the beginning.
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("since %q: want a duration like 24h: %w", s, errdefs.ErrInvalid)
	}
	return time.Now().Add(-d), nil
}

// handleLogs streams a function's log lines as JSON lines; with follow=1 it
// keeps the stream open and sends new lines as they come.
func (a *Agent) handleLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lq := logs.Query{Function: r.PathValue("name"), CallID: q.Get("call")}
	var err error
	if lq.Since, err = parseSince(q.Get("since")); err != nil {
		writeError(w, err)
		return
	}
	if t := q.Get("tail"); t != "" {
		if lq.Tail, err = strconv.Atoi(t); err != nil || lq.Tail < 0 {
			writeError(w, fmt.Errorf("tail %q: want a count: %w", t, errdefs.ErrInvalid))
			return
		}
	}
	if _, err := a.db.Function(r.Context(), lq.Function); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	send := func(l logs.Line) error {
		return enc.Encode(api.LogLine{Time: l.Time, Function: l.Function, Instance: l.Instance,
			CallID: l.CallID, Stream: l.Stream, Text: l.Text})
	}
	if q.Get("follow") != "1" {
		lines, err := a.logs.Read(r.Context(), lq)
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			writeError(w, err)
			return
		}
		for _, l := range lines {
			if err := send(l); err != nil {
				return
			}
		}
		return
	}
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	_ = a.logs.Follow(r.Context(), lq, func(l logs.Line) error {
		if err := send(l); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
}
