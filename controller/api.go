package controller

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
)

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers err as JSON with its class's HTTP status.
func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, errdefs.HTTPStatus(err), errorBody{Error: err.Error()})
}

func decodeBody(r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %v: %w", err, errdefs.ErrInvalid)
	}
	return nil
}

// handleEnroll spends a token for a device key. A token that is unknown or
// already spent answers 403 with the same words, so that the answer does
// not tell which tokens ever existed.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var req proto.EnrollRequest
	if err := decodeBody(r, proto.MaxEnrollBody, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := req.Validate(); err != nil {
		writeError(w, err)
		return
	}
	pub := ed25519.PublicKey(req.PublicKey)
	d, err := s.store.Enroll(r.Context(), req.Token, Device{ID: proto.DeviceID(pub), PublicKey: pub, Hostname: req.Hostname})
	switch {
	case errors.Is(err, errdefs.ErrNotFound), errors.Is(err, errdefs.ErrConflict):
		s.log.Warn("enrolment refused", "remote", r.RemoteAddr, "err", err)
		writeJSON(w, http.StatusForbidden, errorBody{Error: "enrolment token unknown or already used"})
		return
	case err != nil:
		writeError(w, err)
		return
	}
	s.log.Info("device enrolled", "device", d.ID, "hostname", d.Hostname, "labels", d.Labels)
	writeJSON(w, http.StatusOK, proto.EnrollResponse{DeviceID: d.ID, Labels: d.Labels})
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := decodeBody(r, 64<<10, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := ValidateLabels(req.Labels); err != nil {
		writeError(w, err)
		return
	}
	token := "enr_" + randomHex(20)
	if err := s.store.CreateToken(r.Context(), token, req.Labels); err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("enrolment token created", "labels", req.Labels)
	writeJSON(w, http.StatusCreated, TokenResponse{Token: token, Labels: req.Labels})
}

func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request) {
	ds, err := s.store.Devices(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]DeviceStatus, 0, len(ds))
	for _, d := range ds {
		out = append(out, s.hub.status(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	d, err := s.store.Device(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.hub.status(d))
}

// Revoke marks the device revoked and ends its link: its key no longer
// opens one.
func (s *Server) Revoke(ctx context.Context, id string) error {
	if err := s.store.Revoke(ctx, id); err != nil {
		return err
	}
	if l := s.hub.get(id); l != nil {
		closeWith(l.conn, 4001, proto.CodeRevoked)
	}
	s.log.Info("device revoked", "device", id)
	return nil
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.Revoke(r.Context(), id); err != nil {
		writeError(w, err)
		return
	}
	d, err := s.store.Device(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.hub.status(d))
}

// usageQuery reads ?since=RFC3339&device=&function=.
func usageQuery(r *http.Request) (UsageQuery, error) {
	q := UsageQuery{Device: r.URL.Query().Get("device"), Function: r.URL.Query().Get("function")}
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return q, fmt.Errorf("since %q: want RFC 3339: %w", v, errdefs.ErrInvalid)
		}
		q.Since = t
	}
	return q, nil
}

func (s *Server) handleUsage(w http.ResponseWriter, r *http.Request) {
	q, err := usageQuery(r)
	if err != nil {
		writeError(w, err)
		return
	}
	rows, err := s.store.Usage(r.Context(), q)
	if err != nil {
		writeError(w, err)
		return
	}
	if rows == nil {
		rows = []UsageRow{}
	}
	writeJSON(w, http.StatusOK, rows)
}

// handleUsageSeries sums usage per function and time bucket:
// ?bucket=1h (a Go duration, at least 1s) &since=RFC3339 &device= &function=.
func (s *Server) handleUsageSeries(w http.ResponseWriter, r *http.Request) {
	q, err := usageQuery(r)
	if err != nil {
		writeError(w, err)
		return
	}
	bucket := time.Hour
	if v := r.URL.Query().Get("bucket"); v != "" {
		if bucket, err = time.ParseDuration(v); err != nil {
			writeError(w, fmt.Errorf("bucket %q: want a duration like 1h: %w", v, errdefs.ErrInvalid))
			return
		}
	}
	series, err := s.store.UsageSeries(r.Context(), q, bucket)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNilSlice(series))
}

// Stats are the hub's counters since the controller started.
type Stats struct {
	Online     int64 `json:"online"`     // links up now
	Ingested   int64 `json:"ingested"`   // usage records stored
	Duplicates int64 `json:"duplicates"` // usage records received again and dropped
	Conflicts  int64 `json:"conflicts"`  // usage records whose seq was stored with another call id
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

// Stats returns the hub's counters.
func (s *Server) Stats() Stats {
	return Stats{Online: s.hub.online.Load(), Ingested: s.hub.ingested.Load(), Duplicates: s.hub.dups.Load(),
		Conflicts: s.hub.conflicts.Load()}
}
