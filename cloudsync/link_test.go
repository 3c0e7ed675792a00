package cloudsync

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/controller"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/metering"
	"github.com/edgefaas/edgefaas/store"
)

// cloud is a real controller on loopback.
type cloud struct {
	srv    *controller.Server
	url    string
	client *controller.Client
}

func startCloud(t *testing.T) *cloud {
	t.Helper()
	s, err := controller.New(t.Context(), controller.Config{DataDir: t.TempDir(), PingInterval: time.Second,
		HealthInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		s.Close()
	})
	c, err := controller.NewClient(url, s.AdminToken())
	if err != nil {
		t.Fatal(err)
	}
	return &cloud{srv: s, url: url, client: c}
}

func (c *cloud) token(t *testing.T, labels map[string]string) string {
	t.Helper()
	tok, err := c.client.CreateToken(t.Context(), labels)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// openLedger opens a real metering ledger that waits for acks.
func openLedger(t *testing.T) *metering.Ledger {
	t.Helper()
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "edgefaas.db"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := metering.Open(db, metering.Config{RequireAck: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		db.Close()
	})
	return l
}

func record(t *testing.T, l *metering.Ledger, n int) {
	t.Helper()
	for i := range n {
		_, err := l.Record(t.Context(), metering.Record{CallID: fmt.Sprintf("call-%d", i), Function: "f",
			Trigger: "http", Start: time.Now(), Duration: 150 * time.Millisecond, MemoryBytes: 128 << 20, Status: "ok"})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func startLink(t *testing.T, cfg Config) *Link {
	t.Helper()
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 200*time.Millisecond
	cfg.UploadEvery = 20 * time.Millisecond
	l, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(delay)
	}
}

// TestEnrolAndUpload: enrol with a token, link up, inventory at the
// controller, every record uploaded once and acknowledged in the ledger.
func TestEnrolAndUpload(t *testing.T) {
	c := startCloud(t)
	dir := t.TempDir()
	id, err := Enroll(t.Context(), dir, c.url, c.token(t, map[string]string{"site": "depot"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, keyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", fi, err)
	}
	if again, err := LoadIdentity(dir); err != nil || again.DeviceID != id.DeviceID || !again.Key.Equal(id.Key) {
		t.Fatalf("LoadIdentity: %+v %v", again, err)
	}
	ledger := openLedger(t)
	record(t, ledger, 1234)
	var fnVersion atomic.Int64
	fnVersion.Store(3)
	l := startLink(t, Config{Identity: id, Ledger: ledger, BatchSize: 100,
		Inventory: func(context.Context) proto.Hello {
			return proto.Hello{Version: "test", Arch: "riscv64",
				Functions: []proto.FunctionVersion{{Name: "f", Version: fnVersion.Load()}}}
		}})
	waitFor(t, 20*time.Second, "1234 records acknowledged", func() bool { return l.Status().AckedSeq == 1234 })
	if left, err := ledger.Unacked(t.Context(), 0, 10); err != nil || len(left) != 0 {
		t.Fatalf("unacked after upload: %d %v", len(left), err)
	}
	rows, err := c.client.Usage(t.Context(), controller.UsageQuery{Device: id.DeviceID})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Invocations != 1234 || rows[0].BilledMs != 1234*200 {
		t.Fatalf("usage at the controller %+v, want 1234 invocations of 200 billed ms", rows)
	}
	d, err := c.client.Device(t.Context(), id.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Online || d.Labels["site"] != "depot" || d.Inventory == nil || d.Inventory.Arch != "riscv64" ||
		len(d.Inventory.Functions) != 1 {
		t.Fatalf("device at the controller %+v", d)
	}
	if st := l.Status(); !st.Connected || st.Uploaded != 1234 {
		t.Fatalf("link status %+v", st)
	}
	// A changed inventory is sent again.
	fnVersion.Store(4)
	waitFor(t, 10*time.Second, "the new inventory", func() bool {
		d, err := c.client.Device(t.Context(), id.DeviceID)
		return err == nil && d.Inventory != nil && d.Inventory.Functions[0].Version == 4 && d.Health != nil
	})
	// Records written while the link is up go too.
	record(t, ledger, 10)
	waitFor(t, 10*time.Second, "10 more", func() bool { return l.Status().AckedSeq == 1244 })
}

// TestRefused: a replayed token fails enrolment; a wrong key and a revoked
// device keep being refused (the link retries with backoff, never up).
func TestRefused(t *testing.T) {
	c := startCloud(t)
	tok := c.token(t, nil)
	id, err := Enroll(t.Context(), t.TempDir(), c.url, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Enroll(t.Context(), t.TempDir(), c.url, tok, nil); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("replayed token: got %v, want ErrConflict", err)
	}
	other, err := Enroll(t.Context(), t.TempDir(), c.url, c.token(t, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	wrong := id
	wrong.Key = other.Key
	l := startLink(t, Config{Identity: wrong})
	waitFor(t, 10*time.Second, "refusal", func() bool {
		return strings.Contains(l.Status().LastError, proto.CodeUnauthorized)
	})
	if l.Status().Links != 0 {
		t.Fatal("a link came up with the wrong key")
	}
	l.Close()

	good := startLink(t, Config{Identity: id})
	waitFor(t, 10*time.Second, "link up", func() bool { return good.Status().Connected })
	if _, err := c.client.Revoke(t.Context(), id.DeviceID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "revoked refusal", func() bool {
		st := good.Status()
		return !st.Connected && strings.Contains(st.LastError, proto.CodeRevoked)
	})
}

// TestReconnectAfterBadFrames: a controller that sends a malformed frame,
// then an oversized one, then behaves: the agent drops each bad link and
// dials again. The controller here is a fake on purpose: the real one does
// not misbehave.
func TestReconnectAfterBadFrames(t *testing.T) {
	c := startCloud(t)
	id, err := Enroll(t.Context(), t.TempDir(), c.url, c.token(t, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		n := conns.Add(1)
		send := func(typ string, body any) {
			b, _ := proto.Encode(typ, "", body)
			_ = conn.WriteMessage(websocket.TextMessage, b)
		}
		send(proto.TypeChallenge, proto.Challenge{Nonce: bytes.Repeat([]byte{1}, proto.NonceSize)})
		if _, _, err := conn.ReadMessage(); err != nil {
			return
		}
		send(proto.TypeWelcome, proto.Welcome{DeviceID: id.DeviceID, PingIntervalMs: 1000, HealthIntervalMs: 1000})
		switch n {
		case 1:
			_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":"usage_ack","body":{"up_to":"x"}}`))
		case 2:
			_ = conn.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte(" "), proto.MaxFrame+10))
		}
		// Hold the link until the agent drops it.
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer fake.Close()
	l := startLink(t, Config{Identity: id, URL: fake.URL})
	waitFor(t, 10*time.Second, "a third link, up", func() bool { return conns.Load() >= 3 && l.Status().Connected })
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (the third one stays up)", n)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name     string
		attempt  int
		min, max time.Duration
	}{
		{"first", 0, 500 * time.Millisecond, time.Second},
		{"third", 2, 2 * time.Second, 4 * time.Second},
		{"capped", 40, 90 * time.Second, 3 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 100 {
				if d := Backoff(time.Second, 3*time.Minute, tt.attempt); d < tt.min || d > tt.max {
					t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tt.attempt, d, tt.min, tt.max)
				}
			}
		})
	}
}

// TestCloseLeavesNoGoroutines: after Close, the link's goroutines (the
// run loop, the session, its reader) are gone, and so are the controller's
// for that link.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	c := startCloud(t)
	id, err := Enroll(t.Context(), t.TempDir(), c.url, c.token(t, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	ledger := openLedger(t)
	http.DefaultClient.CloseIdleConnections() // enrolment's keep-alive connection
	before := runtime.NumGoroutine()
	l, err := Start(Config{Identity: id, Ledger: ledger, UploadEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "link up", func() bool { return l.Status().Connected })
	l.Close()
	waitFor(t, 10*time.Second, "goroutines back to the count before the link", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// TestTLS: enrolment and the link over https/wss to a controller with a
// private certificate, trusted through the given CA; without it, enrolment
// fails as a configuration error, not as an unreachable controller.
func TestTLS(t *testing.T) {
	s, err := controller.New(t.Context(), controller.Config{DataDir: t.TempDir(), PingInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewTLSServer(s.Handler())
	defer func() { s.Close(); hs.Close() }()
	pool := x509.NewCertPool()
	pool.AddCert(hs.Certificate())
	tlsConf := &tls.Config{RootCAs: pool}
	cl, err := controller.NewClient(hs.URL, s.AdminToken())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cl.WithTLS(tlsConf).CreateToken(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Enroll(t.Context(), t.TempDir(), hs.URL, tok.Token, nil); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("enrol without the CA: got %v, want ErrInvalid", err)
	}
	id, err := Enroll(t.Context(), t.TempDir(), hs.URL, tok.Token, tlsConf)
	if err != nil {
		t.Fatal(err)
	}
	ledger := openLedger(t)
	record(t, ledger, 50)
	l := startLink(t, Config{Identity: id, Ledger: ledger, TLS: tlsConf})
	waitFor(t, 10*time.Second, "50 records over wss", func() bool { return l.Status().AckedSeq == 50 })
}
