package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/internal/testroot"
	"github.com/edgefaas/edgefaas/store"
)

// recorder is a Notifier that records what the agent told it. It stands
// in for systemd, which does not run here. onReady runs inside Ready, so
// it sees the agent exactly as systemd would when READY=1 arrives.
type recorder struct {
	onReady func()

	mu     sync.Mutex
	events []string
	status chan string
}

func newRecorder(onReady func()) *recorder {
	return &recorder{onReady: onReady, status: make(chan string, 100)}
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) Ready() {
	r.onReady()
	r.add("ready")
}

func (r *recorder) Status(s string) {
	r.add("status")
	select {
	case r.status <- s:
	default:
	}
}

func (r *recorder) Stopping() { r.add("stopping") }

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// lifecycleAgent is a real agent (store, sandbox manager) given the
// listeners and notifier of the test.
func lifecycleAgent(t *testing.T, cfg Config) *Agent {
	t.Helper()
	testroot.RequireRoot(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg.StateDir = t.TempDir()
	cfg.CgroupParent = "edgefaas-unit-" + hex.EncodeToString(b)
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func get(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

// TestServePassedListeners serves on listeners made by someone else, as
// systemd's are: the agent binds nothing itself, says Ready only when the
// gateway answers, reports its status, and says Stopping before it stops.
func TestServePassedListeners(t *testing.T) {
	dir := t.TempDir()
	apiPath := filepath.Join(dir, "passed.sock")
	apiLn, err := net.Listen("unix", apiPath)
	if err != nil {
		t.Fatal(err)
	}
	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gwURL := "http://" + gwLn.Addr().String()
	readyErr := make(chan error, 1)
	rec := newRecorder(func() {
		readyErr <- errors.Join(get(http.DefaultClient, gwURL+"/healthz"), get(unixClient(apiPath), "http://agent/v1/info"))
	})
	ownSocket := filepath.Join(dir, "own.sock")
	a := lifecycleAgent(t, Config{
		APISocket: ownSocket,
		// Not an address: listening on it would fail Serve.
		Listen:          "no such address",
		APIListener:     apiLn,
		GatewayListener: gwLn,
		Notifier:        rec,
		StatusInterval:  20 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx) }()

	select {
	case err := <-readyErr:
		if err != nil {
			t.Fatalf("at Ready the agent did not answer: %v", err)
		}
	case err := <-served:
		t.Fatalf("Serve returned before Ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no Ready within 10s")
	}
	if _, err := os.Stat(ownSocket); !os.IsNotExist(err) {
		t.Errorf("the agent made its own socket %s: %v", ownSocket, err)
	}
	const want = "0 functions, 0 warm instances; mqtt: none; cloud: standalone"
	for i := range 3 { // unchanged, it is still sent every StatusInterval
		select {
		case s := <-rec.status:
			if s != want {
				t.Errorf("status %d: %q, want %q", i, s, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("status %d not sent", i)
		}
	}
	if err := a.Probe(t.Context()); err != nil {
		t.Errorf("Probe of a healthy agent: %v", err)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	events := rec.list()
	if events[0] != "ready" || events[len(events)-1] != "stopping" {
		t.Errorf("events %v, want ready first and stopping last", events)
	}
	if _, err := gwLn.Accept(); err == nil {
		t.Error("the passed gateway listener is still open after Serve")
	}
}

// TestServeFallsBackForMissingListener: only the admin socket was passed;
// the agent listens on Listen for the gateway itself.
func TestServeFallsBackForMissingListener(t *testing.T) {
	apiLn, err := net.Listen("unix", filepath.Join(t.TempDir(), "passed.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	a := lifecycleAgent(t, Config{
		APISocket:   filepath.Join(t.TempDir(), "own.sock"),
		Listen:      "127.0.0.1:0",
		APIListener: apiLn,
		Notifier:    newRecorder(func() { close(ready) }),
	})
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx) }()
	defer func() { cancel(); <-served }()
	select {
	case <-ready:
	case err := <-served:
		t.Fatalf("Serve: %v", err)
	}
	if addr := a.gatewayAddr(); !strings.HasPrefix(addr, "127.0.0.1:") || addr == "127.0.0.1:0" {
		t.Fatalf("gateway address %q, want one the agent bound on 127.0.0.1", addr)
	}
	if err := get(http.DefaultClient, "http://"+a.gatewayAddr()+"/healthz"); err != nil {
		t.Errorf("the agent's own gateway: %v", err)
	}
}

func TestProbe(t *testing.T) {
	ready := make(chan struct{})
	a := lifecycleAgent(t, Config{
		APISocket: filepath.Join(t.TempDir(), "api.sock"),
		Listen:    "127.0.0.1:0",
		Notifier:  newRecorder(func() { close(ready) }),
	})
	if err := a.Probe(t.Context()); err == nil {
		t.Error("Probe succeeded before the gateway serves")
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx) }()
	defer func() { cancel(); <-served }()
	<-ready
	if err := a.Probe(t.Context()); err != nil {
		t.Fatalf("Probe of a serving agent: %v", err)
	}

	t.Run("store locked", func(t *testing.T) {
		// Another connection holds the write lock, as a stuck writer
		// would: the probe fails within its deadline.
		other, err := store.Open(t.Context(), filepath.Join(a.cfg.StateDir, "edgefaas.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		tx, err := other.SQL().BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // the lock goes with the test
		pctx, pcancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer pcancel()
		start := time.Now()
		if err := a.Probe(pctx); err == nil {
			t.Error("Probe succeeded while the store could not be written")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Probe took %s to fail, want about its 200ms deadline", d)
		}
	})
}
