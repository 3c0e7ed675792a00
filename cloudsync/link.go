package cloudsync

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/metering"
)

// Ledger is what the link needs of the metering ledger.
type Ledger interface {
	Unacked(ctx context.Context, after int64, limit int) ([]metering.Record, error)
	Ack(ctx context.Context, upTo int64) error
}

// Config configures a Link. Zero values have the defaults given.
type Config struct {
	Identity  Identity                               // required: an enrolled device
	URL       string                                 // the controller, http(s)://; Identity.Controller
	Ledger    Ledger                                 // nil: no usage upload
	Inventory func(ctx context.Context) proto.Hello  // what hello reports; nil: nothing but the version
	Health    func(ctx context.Context) proto.Health // what health reports; nil: uptime only
	Version   string                                 // the agent's version, for hello when Inventory is nil
	// Desired hears each desired set the controller sends, from the link's
	// goroutine: it must not block (hand the set over and return).
	Desired func(proto.Desired)

	BatchSize   int           // records per usage message; 500 (at most proto.MaxBatch)
	UploadEvery time.Duration // how often the ledger is checked while idle; 1s
	MinBackoff  time.Duration // the first reconnect delay; 1s
	MaxBackoff  time.Duration // the cap of the reconnect delay; 3m
	// StableAfter is how long a link must stay up for the next reconnect
	// to start from MinBackoff again; 10s.
	StableAfter  time.Duration
	DialTimeout  time.Duration // the dial plus the handshake; 15s
	WriteTimeout time.Duration // one frame's write; 10s
	// AckTimeout is how long a usage message may wait for its ack before
	// the link is deemed broken; 30s.
	AckTimeout time.Duration
	Dialer     *websocket.Dialer // a default one, with TLS
	TLS        *tls.Config       // for wss:// with a private CA; nil: the system's roots
	Logger     *slog.Logger      // slog.Default()
}

func (c *Config) setDefaults() {
	if c.URL == "" {
		c.URL = c.Identity.Controller
	}
	if c.BatchSize <= 0 || c.BatchSize > proto.MaxBatch {
		c.BatchSize = 500
	}
	if c.UploadEvery <= 0 {
		c.UploadEvery = time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 3 * time.Minute
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.StableAfter <= 0 {
		c.StableAfter = 10 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 15 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 30 * time.Second
	}
	if c.Dialer == nil {
		c.Dialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: c.DialTimeout,
			TLSClientConfig: c.TLS}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Link keeps the device connected to its controller until Close.
type Link struct {
	cfg     Config
	log     *slog.Logger
	started time.Time

	cancel context.CancelFunc
	done   chan struct{}

	connected atomic.Bool
	links     atomic.Int64 // links that reached welcome
	acked     atomic.Int64 // the highest seq the controller acknowledged
	uploaded  atomic.Int64 // records acknowledged since start

	mu      sync.Mutex
	lastErr string
	status  *proto.Status // the latest ReportStatus, sent on every link
	// statusKick wakes the session to send a new status.
	statusKick chan struct{}
}

// ReportStatus sets the status of the functions the cloud placed, sent now
// if the link is up and again on every new link. Only the latest counts:
// each status is the whole picture.
func (l *Link) ReportStatus(st proto.Status) {
	l.mu.Lock()
	l.status = &st
	l.mu.Unlock()
	select {
	case l.statusKick <- struct{}{}:
	default:
	}
}

func (l *Link) latestStatus() *proto.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

// Status is the link as the agent's /v1/info shows it.
type Status struct {
	Controller string `json:"controller"`
	DeviceID   string `json:"device_id"`
	Connected  bool   `json:"connected"`
	Links      int64  `json:"links"`     // links established since the agent started
	AckedSeq   int64  `json:"acked_seq"` // highest seq the controller acknowledged in this run
	Uploaded   int64  `json:"uploaded"`  // records acknowledged in this run
	LastError  string `json:"last_error,omitempty"`
}

// Start validates cfg and runs the link in the background.
func Start(cfg Config) (*Link, error) {
	cfg.setDefaults()
	if cfg.Identity.Key == nil || !proto.ValidDeviceID(cfg.Identity.DeviceID) {
		return nil, fmt.Errorf("cloud link: no enrolled identity: %w", errdefs.ErrInvalid)
	}
	wsURL, err := linkURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{cfg: cfg, log: cfg.Logger.With("component", "cloud", "device", cfg.Identity.DeviceID),
		started: time.Now(), cancel: cancel, done: make(chan struct{}), statusKick: make(chan struct{}, 1)}
	go l.run(ctx, wsURL)
	return l, nil
}

// linkURL turns the controller's base URL into its websocket's.
func linkURL(base string) (string, error) {
	switch {
	case strings.HasPrefix(base, "http://"):
		return "ws://" + strings.TrimSuffix(strings.TrimPrefix(base, "http://"), "/") + proto.LinkPath, nil
	case strings.HasPrefix(base, "https://"):
		return "wss://" + strings.TrimSuffix(strings.TrimPrefix(base, "https://"), "/") + proto.LinkPath, nil
	}
	return "", fmt.Errorf("controller %q: want http(s)://host[:port]: %w", base, errdefs.ErrInvalid)
}

// Close ends the link and waits for it: no upload is in flight afterwards,
// so the ledger may be closed next.
func (l *Link) Close() error {
	l.cancel()
	<-l.done
	return nil
}

// Status reports the link's state.
func (l *Link) Status() Status {
	l.mu.Lock()
	lastErr := l.lastErr
	l.mu.Unlock()
	return Status{Controller: l.cfg.URL, DeviceID: l.cfg.Identity.DeviceID, Connected: l.connected.Load(),
		Links: l.links.Load(), AckedSeq: l.acked.Load(), Uploaded: l.uploaded.Load(), LastError: lastErr}
}

// run connects again and again, with jittered exponential backoff between
// attempts, until ctx ends.
func (l *Link) run(ctx context.Context, wsURL string) {
	defer close(l.done)
	attempt := 0
	for {
		began := time.Now()
		err := l.session(ctx, wsURL)
		l.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		l.lastErr = err.Error()
		l.mu.Unlock()
		if time.Since(began) >= l.cfg.StableAfter {
			attempt = 0
		}
		delay := Backoff(l.cfg.MinBackoff, l.cfg.MaxBackoff, attempt)
		attempt++
		var refused *refusedError
		if errors.As(err, &refused) {
			l.log.Error("the controller refused this device", "code", refused.Code, "reason", refused.Message, "retry_in", delay)
		} else {
			l.log.Warn("cloud link down", "err", err, "retry_in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Backoff is the delay before reconnect attempt n (from 0): min doubled n
// times, capped at max, with "equal jitter" (half fixed, half random) so
// that a fleet cut off together does not come back in lockstep.
func Backoff(minDelay, maxDelay time.Duration, n int) time.Duration {
	maxDelay = max(maxDelay, minDelay)
	d := minDelay
	for range min(n, 30) {
		d *= 2
		if d >= maxDelay {
			d = maxDelay
			break
		}
	}
	half := d / 2
	return half + rand.N(half+1)
}

// refusedError is the controller's error frame.
type refusedError struct{ Code, Message string }

func (e *refusedError) Error() string {
	return fmt.Sprintf("controller: %s: %s", e.Code, e.Message)
}
