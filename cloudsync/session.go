package cloudsync

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/metering"
)

// session is one connection: handshake, then hello, health and uploads
// until the connection fails or ctx ends. The session goroutine is the
// only writer of data frames; a reader goroutine hands frames over.
func (l *Link) session(ctx context.Context, wsURL string) error {
	dctx, cancel := context.WithTimeout(ctx, l.cfg.DialTimeout)
	conn, resp, err := l.cfg.Dialer.DialContext(dctx, wsURL, nil)
	cancel()
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return fmt.Errorf("dial %s: %w", wsURL, err)
	}
	defer conn.Close()
	conn.SetReadLimit(proto.MaxFrame)
	w, err := Handshake(conn, l.cfg.Identity, l.cfg.DialTimeout, l.cfg.WriteTimeout)
	if err != nil {
		return err
	}
	l.connected.Store(true)
	l.links.Add(1)
	l.log.Info("cloud link up", "controller", l.cfg.URL, "labels", w.Labels)

	ping := time.Duration(w.PingIntervalMs) * time.Millisecond
	// Two missed pings (plus slack for a slow network) and the controller
	// is gone, whatever TCP believes.
	alive := func() { _ = conn.SetReadDeadline(time.Now().Add(2*ping + 10*time.Second)) }
	alive()
	conn.SetPingHandler(func(data string) error {
		alive()
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(l.cfg.WriteTimeout))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	frames := make(chan proto.Envelope)
	readErr := make(chan error, 1)
	sessCtx, endSession := context.WithCancel(ctx)
	go func() {
		for {
			e, err := readFrame(conn)
			if err != nil {
				readErr <- err
				return
			}
			alive()
			select {
			case frames <- e:
			case <-sessCtx.Done():
				readErr <- sessCtx.Err()
				return
			}
		}
	}()
	// Closing the connection ends the reader; wait for it so that no
	// goroutine outlives the session.
	defer func() {
		endSession()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
			time.Now().Add(time.Second))
		conn.Close()
		<-readErr
	}()
	return l.loop(ctx, conn, w, frames, readErr)
}

// loop sends hello, then health on its interval and usage whenever the
// ledger has records the controller has not acknowledged, one message in
// flight at a time.
func (l *Link) loop(ctx context.Context, conn *websocket.Conn, w proto.Welcome,
	frames <-chan proto.Envelope, readErr chan error) error {
	// hello now, and again whenever the inventory changed by a health
	// tick (a deploy, an upgrade): the controller keeps the last one.
	var lastHello proto.Hello
	sendHello := func(force bool) error {
		h := proto.Hello{Version: l.cfg.Version}
		if l.cfg.Inventory != nil {
			h = l.cfg.Inventory(ctx)
		}
		if !force && reflect.DeepEqual(h, lastHello) {
			return nil
		}
		lastHello = h
		return l.write(conn, proto.TypeHello, "", h)
	}
	if err := sendHello(true); err != nil {
		return err
	}
	// The status, whatever was sent on an earlier link: the controller may
	// have missed it.
	var sentStatus *proto.Status
	sendStatus := func() error {
		st := l.latestStatus()
		if st == nil || st == sentStatus {
			return nil
		}
		sentStatus = st
		return l.write(conn, proto.TypeStatus, "", st)
	}
	if err := sendStatus(); err != nil {
		return err
	}
	health := time.NewTicker(time.Duration(w.HealthIntervalMs) * time.Millisecond)
	defer health.Stop()
	poll := time.NewTimer(0) // look at the ledger at once
	defer poll.Stop()
	var (
		msgSeq   int
		inflight string // id of the usage message awaiting its ack
		upTo     int64  // its last seq
		count    int    // its records
		deadline <-chan time.Time
	)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			readErr <- err // for session's deferred wait
			return err
		case <-health.C:
			if err := sendHello(false); err != nil {
				return err
			}
			if err := l.write(conn, proto.TypeHealth, "", l.health(ctx)); err != nil {
				return err
			}
		case <-l.statusKick:
			if err := sendStatus(); err != nil {
				return err
			}
		case <-deadline:
			return fmt.Errorf("no ack for usage message %s within %s", inflight, l.cfg.AckTimeout)
		case <-poll.C:
			if inflight != "" || l.cfg.Ledger == nil {
				continue
			}
			recs, err := l.cfg.Ledger.Unacked(ctx, 0, l.cfg.BatchSize)
			if err != nil {
				return fmt.Errorf("reading the ledger: %w", err)
			}
			if len(recs) == 0 {
				poll.Reset(l.cfg.UploadEvery)
				continue
			}
			msgSeq++
			inflight, upTo, count = "u"+strconv.Itoa(msgSeq), recs[len(recs)-1].Seq, len(recs)
			if err := l.write(conn, proto.TypeUsage, inflight, proto.Usage{Records: toProto(recs)}); err != nil {
				return err
			}
			deadline = time.After(l.cfg.AckTimeout)
		case e := <-frames:
			switch e.Type {
			case proto.TypeUsageAck:
				a, err := proto.DecodeBody[proto.UsageAck](e)
				if err != nil {
					return err
				}
				if e.ID != inflight || a.UpTo != upTo {
					return fmt.Errorf("usage ack %s up to %d, awaiting %s up to %d: %w", e.ID, a.UpTo, inflight, upTo, errdefs.ErrInvalid)
				}
				// The controller holds them durably: only now may the ledger
				// count them acknowledged (and roll them up later).
				if err := l.cfg.Ledger.Ack(ctx, a.UpTo); err != nil {
					return fmt.Errorf("acking the ledger: %w", err)
				}
				l.acked.Store(a.UpTo)
				l.uploaded.Add(int64(count))
				inflight, deadline = "", nil
				poll.Reset(0) // more may be waiting
			case proto.TypeDesired:
				d, err := proto.DecodeBody[proto.Desired](e)
				if err != nil {
					return err
				}
				if l.cfg.Desired != nil {
					l.cfg.Desired(d)
				}
			case proto.TypeError:
				m, _ := proto.DecodeBody[proto.Error](e)
				return &refusedError{m.Code, m.Message}
			default:
				return fmt.Errorf("unexpected %q from the controller: %w", e.Type, errdefs.ErrInvalid)
			}
		}
	}
}

func (l *Link) health(ctx context.Context) proto.Health {
	h := proto.Health{}
	if l.cfg.Health != nil {
		h = l.cfg.Health(ctx)
	}
	h.UptimeMs = time.Since(l.started).Milliseconds()
	return h
}

func (l *Link) write(conn *websocket.Conn, typ, id string, body any) error {
	return writeFrame(conn, l.cfg.WriteTimeout, typ, id, body)
}

// Handshake answers the controller's challenge on a new connection with
// the identity's signature and returns the welcome. An error frame instead
// of the welcome is a *refusedError. Exported for tests and the benchmark's
// simulated agents, which speak the protocol without an agent.
func Handshake(conn *websocket.Conn, id Identity, timeout, writeTimeout time.Duration) (proto.Welcome, error) {
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	e, err := readFrame(conn)
	if err != nil {
		return proto.Welcome{}, fmt.Errorf("handshake: %w", err)
	}
	if e.Type == proto.TypeError {
		m, _ := proto.DecodeBody[proto.Error](e)
		return proto.Welcome{}, &refusedError{m.Code, m.Message}
	}
	if e.Type != proto.TypeChallenge {
		return proto.Welcome{}, fmt.Errorf("handshake: %q before the challenge: %w", e.Type, errdefs.ErrInvalid)
	}
	c, err := proto.DecodeBody[proto.Challenge](e)
	if err != nil {
		return proto.Welcome{}, fmt.Errorf("handshake: %w", err)
	}
	sig := ed25519.Sign(id.Key, proto.ChallengeMessage(id.DeviceID, c.Nonce))
	if err := writeFrame(conn, writeTimeout, proto.TypeAuth, "", proto.Auth{DeviceID: id.DeviceID, Signature: sig}); err != nil {
		return proto.Welcome{}, fmt.Errorf("handshake: %w", err)
	}
	if e, err = readFrame(conn); err != nil {
		return proto.Welcome{}, fmt.Errorf("handshake: %w", err)
	}
	switch e.Type {
	case proto.TypeWelcome:
		w, err := proto.DecodeBody[proto.Welcome](e)
		if err != nil {
			return proto.Welcome{}, fmt.Errorf("handshake: %w", err)
		}
		return w, nil
	case proto.TypeError:
		m, _ := proto.DecodeBody[proto.Error](e)
		return proto.Welcome{}, &refusedError{m.Code, m.Message}
	}
	return proto.Welcome{}, fmt.Errorf("handshake: %q instead of welcome: %w", e.Type, errdefs.ErrInvalid)
}

// IsRefused reports whether err is the controller refusing the device, and
// with which proto code.
func IsRefused(err error) (string, bool) {
	var r *refusedError
	if errors.As(err, &r) {
		return r.Code, true
	}
	return "", false
}

func writeFrame(conn *websocket.Conn, timeout time.Duration, typ, id string, body any) error {
	return proto.WriteFrame(conn, timeout, typ, id, body)
}

func readFrame(conn *websocket.Conn) (proto.Envelope, error) { return proto.ReadFrame(conn) }

// toProto converts ledger records to the wire's.
func toProto(recs []metering.Record) []proto.UsageRecord {
	out := make([]proto.UsageRecord, len(recs))
	for i, r := range recs {
		out[i] = proto.UsageRecord{
			Seq: r.Seq, CallID: r.CallID, Function: r.Function, ImageDigest: r.ImageDigest, Trigger: r.Trigger,
			StartNs: r.Start.UnixNano(), DurationNs: int64(r.Duration), BilledMs: r.BilledMs(),
			MemoryBytes: r.MemoryBytes, KiBMs: r.KiBMs(), CPUNs: int64(r.CPUTime), Cold: r.Cold,
			InitNs: int64(r.InitTime), Status: r.Status, RequestBytes: r.RequestBytes, ResponseBytes: r.ResponseBytes,
		}
	}
	return out
}
