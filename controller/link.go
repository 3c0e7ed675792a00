package controller

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
)

// link is one device's websocket, from the accepted challenge to its close.
// Data frames come from its read loop (acks) and from the pusher (desired
// sets): wmu orders them, as gorilla allows one writer at a time; pings
// and closes from elsewhere go through WriteControl, which gorilla allows
// beside it.
type link struct {
	srv         *Server
	conn        *websocket.Conn
	device      string
	labels      map[string]string
	connectedAt time.Time
	log         *slog.Logger

	wmu        sync.Mutex
	welcomed   bool           // the welcome is sent: the pusher may write
	desired    *proto.Desired // the last desired set sent
	desiredGen int64          // the deployments' generation it was read at
}

var upgrader = websocket.Upgrader{
	// Memory per link matters with thousands of them. A read buffer size
	// of 0 reuses the HTTP server's 4 KiB reader instead of a second one;
	// links are idle nearly always, so a write buffer is taken from the
	// pool for a write and given back after, not held per link.
	ReadBufferSize:  0,
	WriteBufferSize: 4096,
	WriteBufferPool: &sync.Pool{},
	// Agents are not browsers: no Origin to check. The dashboard, when it
	// comes, does not use this endpoint.
	CheckOrigin: func(*http.Request) bool { return true },
}

func (s *Server) handleLink(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered already
	}
	conn.SetReadLimit(proto.MaxFrame)
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		closeWith(conn, websocket.CloseGoingAway, "controller stopping")
		return
	}
	s.linkWG.Add(1)
	s.conns[conn] = struct{}{}
	s.mu.Unlock()
	// The link runs on a goroutine of its own and this handler returns:
	// the HTTP server's goroutine has a stack grown by request parsing,
	// which would otherwise be held for as long as the link lives.
	go func() {
		defer s.linkWG.Done()
		s.runLink(conn, r.RemoteAddr)
		conn.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
}

func (s *Server) runLink(conn *websocket.Conn, remote string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.AuthTimeout)
	device, err := s.authenticate(ctx, conn)
	cancel()
	if err != nil {
		s.log.Info("link refused", "remote", remote, "err", err)
		code := proto.CodeUnauthorized
		switch {
		case errors.Is(err, errRevoked):
			code = proto.CodeRevoked
		case errors.Is(err, errdefs.ErrInvalid):
			code = proto.CodeInvalid
		}
		s.sendError(conn, code, err.Error())
		return
	}
	l := &link{srv: s, conn: conn, device: device.ID, labels: device.Labels, connectedAt: time.Now().UTC(),
		log: s.log.With("device", device.ID, "remote", remote)}
	if old := s.hub.attach(l); old != nil {
		closeWith(old.conn, websocket.ClosePolicyViolation, proto.CodeReplaced)
	}
	defer s.hub.detach(l)
	l.log.Info("link up")
	err = l.serve(device)
	l.log.Info("link down", "err", err)
	// Best effort: the time the link went down is when it was last seen.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	_ = s.store.Seen(ctx, device.ID, nil, nil)
	cancel()
}

// errRevoked refuses a device that was revoked.
var errRevoked = errors.New("device revoked")

// authenticate sends a fresh nonce and checks the device's signature of it.
func (s *Server) authenticate(ctx context.Context, conn *websocket.Conn) (Device, error) {
	nonce := make([]byte, proto.NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return Device{}, err
	}
	if err := s.write(conn, proto.TypeChallenge, "", proto.Challenge{Nonce: nonce}); err != nil {
		return Device{}, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(s.cfg.AuthTimeout))
	e, err := readFrame(conn)
	if err != nil {
		return Device{}, err
	}
	if e.Type != proto.TypeAuth {
		return Device{}, fmt.Errorf("first frame %q, want auth: %w", e.Type, errdefs.ErrInvalid)
	}
	a, err := proto.DecodeBody[proto.Auth](e)
	if err != nil {
		return Device{}, err
	}
	d, err := s.store.Device(ctx, a.DeviceID)
	if err != nil {
		return Device{}, fmt.Errorf("device %q: %w", a.DeviceID, err)
	}
	if !ed25519.Verify(d.PublicKey, proto.ChallengeMessage(a.DeviceID, nonce), a.Signature) {
		return Device{}, fmt.Errorf("device %q: signature does not match its key", a.DeviceID)
	}
	if d.RevokedAt != nil {
		return Device{}, fmt.Errorf("device %q: %w", d.ID, errRevoked)
	}
	return d, nil
}

// serve sends the welcome, then reads until the link fails or is closed.
func (l *link) serve(d Device) error {
	s := l.srv
	// The link is in the hub already (so a revoke finds it): the pusher
	// must not write a desired set before the welcome, which the agent's
	// handshake expects first.
	l.wmu.Lock()
	err := s.write(l.conn, proto.TypeWelcome, "", proto.Welcome{DeviceID: d.ID, Labels: d.Labels,
		PingIntervalMs: s.cfg.PingInterval.Milliseconds(), HealthIntervalMs: s.cfg.HealthInterval.Milliseconds()})
	l.welcomed = err == nil
	l.wmu.Unlock()
	if err != nil {
		return err
	}
	// The desired set right away: the agent may have been offline while
	// deployments changed.
	gen := s.desiredGen.Load()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	deps, err := s.store.Deployments(ctx)
	cancel()
	if err != nil {
		l.sendError(proto.CodeInternal, "reading deployments")
		return err
	}
	if err := l.sendDesired(gen, deps); err != nil {
		return err
	}
	// A pong or any frame proves the agent alive; missing two pings in a
	// row (the Server's pinger sends them) ends the link.
	alive := func() { _ = l.conn.SetReadDeadline(time.Now().Add(2*s.cfg.PingInterval + s.cfg.AuthTimeout)) }
	alive()
	l.conn.SetPongHandler(func(string) error { alive(); return nil })
	for {
		e, err := readFrame(l.conn)
		if err != nil {
			if errors.Is(err, errdefs.ErrInvalid) {
				l.sendError(proto.CodeInvalid, err.Error())
			}
			return err
		}
		alive()
		if err := l.handle(e); err != nil {
			code := proto.CodeInternal
			if errors.Is(err, errdefs.ErrInvalid) {
				code = proto.CodeInvalid
			}
			l.sendError(code, err.Error())
			return err
		}
		alive() // a slow store must not cost the link
	}
}

// handle acts on one frame from the agent.
func (l *link) handle(e proto.Envelope) error {
	s := l.srv
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout+10*time.Second)
	defer cancel()
	switch e.Type {
	case proto.TypeHello:
		h, err := proto.DecodeBody[proto.Hello](e)
		if err != nil {
			return err
		}
		l.log.Info("hello", "version", h.Version, "arch", h.Arch, "cgroups", h.CgroupMode, "functions", len(h.Functions))
		return s.store.Seen(ctx, l.device, &h, nil)
	case proto.TypeHealth:
		h, err := proto.DecodeBody[proto.Health](e)
		if err != nil {
			return err
		}
		return s.store.Seen(ctx, l.device, nil, &h)
	case proto.TypeUsage:
		u, err := proto.DecodeBody[proto.Usage](e)
		if err != nil {
			return err
		}
		res, err := s.ingest.put(ctx, UsageBatch{Device: l.device, Records: u.Records})
		if err != nil {
			return err
		}
		s.hub.ingested.Add(int64(res.Stored))
		s.hub.dups.Add(int64(len(u.Records) - res.Stored - res.Conflicts))
		s.hub.conflicts.Add(int64(res.Conflicts))
		if res.Conflicts > 0 {
			// Acknowledged all the same: the agent cannot fix its past, and
			// holding the link would stop every later record too.
			l.log.Error("usage records clash with stored ones of the same seq and another call id: was the device's state reset under its old identity?",
				"conflicts", res.Conflicts, "first_seq", u.Records[0].Seq)
		}
		if dropped := len(u.Records) - res.Stored - res.Conflicts; dropped > 0 {
			l.log.Info("usage records received again, kept once", "dropped", dropped)
		}
		// Only now, with the records durable, may the agent forget them.
		return l.write(proto.TypeUsageAck, e.ID, proto.UsageAck{UpTo: u.Records[len(u.Records)-1].Seq})
	case proto.TypeStatus:
		st, err := proto.DecodeBody[proto.Status](e)
		if err != nil {
			return err
		}
		for _, f := range st.Functions {
			if f.State == proto.StateFailed || f.State == proto.StateRolledBack {
				l.log.Warn("function failed on the device", "function", f.Name, "revision", f.Revision,
					"state", f.State, "serving", f.Serving, "reason", f.Reason)
			}
		}
		return s.store.PutStatus(ctx, l.device, st.Functions)
	case proto.TypeError:
		m, _ := proto.DecodeBody[proto.Error](e)
		return fmt.Errorf("agent closes: %s: %s", m.Code, m.Message)
	default:
		return fmt.Errorf("unexpected %q from an agent: %w", e.Type, errdefs.ErrInvalid)
	}
}

func readFrame(conn *websocket.Conn) (proto.Envelope, error) { return proto.ReadFrame(conn) }

func (s *Server) write(conn *websocket.Conn, typ, id string, body any) error {
	return proto.WriteFrame(conn, s.cfg.WriteTimeout, typ, id, body)
}

// write sends one data frame on an attached link.
func (l *link) write(typ, id string, body any) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.srv.write(l.conn, typ, id, body)
}

// sendError tells the agent why its link ends, then closes it.
func (l *link) sendError(code, msg string) {
	_ = l.write(proto.TypeError, "", proto.Error{Code: code, Message: msg})
	closeWith(l.conn, websocket.ClosePolicyViolation, code)
}

// sendError tells the agent why the link ends, then closes it.
func (s *Server) sendError(conn *websocket.Conn, code, msg string) {
	_ = s.write(conn, proto.TypeError, "", proto.Error{Code: code, Message: msg})
	closeWith(conn, websocket.ClosePolicyViolation, code)
}
