package systemd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// notifySocket listens where NOTIFY_SOCKET points, as systemd does for a
// Type=notify service.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

// next returns the next notification, or "" when none arrives within d.
func next(t *testing.T, conn *net.UnixConn, d time.Duration) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func discard() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func TestNotifierSends(t *testing.T) {
	conn := notifySocket(t)
	n := NewNotifier(discard())
	tests := []struct {
		name string
		call func()
		want string
	}{
		{name: "ready", call: n.Ready, want: "READY=1"},
		{name: "status", call: func() { n.Status("3 functions, 2 warm instances; mqtt: none; cloud: standalone") },
			want: "STATUS=3 functions, 2 warm instances; mqtt: none; cloud: standalone"},
		{name: "status on one line", call: func() { n.Status("two\nlines\n") }, want: "STATUS=two lines"},
		{name: "stopping", call: n.Stopping, want: "STOPPING=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.call()
			if got := next(t, conn, 5*time.Second); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("ready only once", func(t *testing.T) {
		n.Ready()
		n.Status("after")
		if got := next(t, conn, 5*time.Second); got != "STATUS=after" {
			t.Errorf("a second Ready sent %q", got)
		}
	})
}

func TestNotifierWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := NewNotifier(discard())
	n.Ready()
	n.Status("x")
	n.Stopping()
	if sent := n.send("READY=1"); sent {
		t.Error("send reported a notification without NOTIFY_SOCKET")
	}
}

func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	tests := []struct {
		name    string
		usec    string
		pid     string
		want    time.Duration
		wantErr bool
	}{
		{name: "not watched", want: 0},
		{name: "watched", usec: "400000", want: 200 * time.Millisecond},
		{name: "watched, our pid", usec: "30000000", pid: me, want: 15 * time.Second},
		{name: "another process is watched", usec: "400000", pid: "1", want: 0},
		{name: "malformed", usec: "soon", wantErr: true},
		{name: "zero", usec: "0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			if tt.usec == "" {
				os.Unsetenv("WATCHDOG_USEC")
			}
			if tt.pid == "" {
				os.Unsetenv("WATCHDOG_PID")
			}
			got, err := WatchdogInterval()
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("WatchdogInterval() = %s, %v; want %s, error %v", got, err, tt.want, tt.wantErr)
			}
			for _, v := range []string{"WATCHDOG_USEC", "WATCHDOG_PID"} {
				if _, set := os.LookupEnv(v); set {
					t.Errorf("%s still set: children would inherit it", v)
				}
			}
		})
	}
}

// probeScript is a watchdog probe whose answers the test scripts: call i
// (from 1) gets answers[i-1], the last answer repeats. An answer "block"
// waits for the probe's deadline and then reports success, as a probe
// that ignores its context would.
type probeScript struct {
	answers []string
	calls   atomic.Int64
}

func (p *probeScript) probe(ctx context.Context) error {
	i := int(p.calls.Add(1))
	a := p.answers[min(i, len(p.answers))-1]
	switch a {
	case "ok":
		return nil
	case "block":
		<-ctx.Done()
		return nil
	default:
		return errors.New(a)
	}
}

func TestWatchdogPingsOnlyAfterAProbeSucceeds(t *testing.T) {
	const interval = 20 * time.Millisecond
	tests := []struct {
		name       string
		answers    []string
		firstAfter int64 // the first WATCHDOG=1 comes after this many probes
	}{
		{name: "healthy", answers: []string{"ok"}, firstAfter: 1},
		{name: "store stuck, then fine", answers: []string{"store read-only", "store read-only", "store read-only", "ok"}, firstAfter: 4},
		{name: "probe overruns its deadline", answers: []string{"block", "block", "ok"}, firstAfter: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := notifySocket(t)
			n := NewNotifier(discard())
			p := &probeScript{answers: tt.answers}
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			wg.Go(func() { n.Watchdog(ctx, interval, p.probe) })
			defer func() { cancel(); wg.Wait() }()

			n.Ready()
			if got := next(t, conn, 5*time.Second); got != "READY=1" {
				t.Fatalf("first notification %q, want READY=1", got)
			}
			for i := range 3 {
				got := next(t, conn, 5*time.Second)
				calls := p.calls.Load()
				if got != "WATCHDOG=1" {
					t.Fatalf("notification %d: %q, want WATCHDOG=1", i, got)
				}
				if i == 0 && calls < tt.firstAfter {
					t.Errorf("first WATCHDOG=1 after %d probes, want after %d (the failing ones must send nothing)", calls, tt.firstAfter)
				}
			}
		})
	}
}

func TestWatchdogWaitsForReady(t *testing.T) {
	conn := notifySocket(t)
	n := NewNotifier(discard())
	p := &probeScript{answers: []string{"ok"}}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { n.Watchdog(ctx, 10*time.Millisecond, p.probe) })
	defer func() { cancel(); wg.Wait() }()
	// Absence needs a window: ten intervals without Ready.
	if got := next(t, conn, 100*time.Millisecond); got != "" || p.calls.Load() != 0 {
		t.Fatalf("before Ready: notification %q after %d probes, want none", got, p.calls.Load())
	}
	n.Ready()
	for _, want := range []string{"READY=1", "WATCHDOG=1"} {
		if got := next(t, conn, 5*time.Second); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestWatchdogStops(t *testing.T) {
	notifySocket(t)
	n := NewNotifier(discard())
	n.Ready()
	tests := []struct {
		name     string
		interval time.Duration
		cancel   bool
	}{
		{name: "watchdog off", interval: 0},
		{name: "context ends", interval: 10 * time.Millisecond, cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan struct{})
			go func() {
				n.Watchdog(ctx, tt.interval, (&probeScript{answers: []string{"ok"}}).probe)
				close(done)
			}()
			if tt.cancel {
				cancel()
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Watchdog did not return")
			}
		})
	}
}
