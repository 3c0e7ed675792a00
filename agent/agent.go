// Package agent wires the edgefaasd daemon together: the function registry
// (kept in store), the image store, the sandbox manager, the invoker that
// starts instances on demand, the HTTP gateway and the admin API. It owns no
// low-level mechanism itself; each lives in its own package.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgefaas/edgefaas/images"
	"github.com/edgefaas/edgefaas/logs"
	"github.com/edgefaas/edgefaas/metering"
	"github.com/edgefaas/edgefaas/sandbox"
	"github.com/edgefaas/edgefaas/store"
)

// Config configures an Agent. Zero values have the defaults given.
type Config struct {
	StateDir     string        // "/var/lib/edgefaas"
	APISocket    string        // "/run/edgefaas/edgefaasd.sock"
	Listen       string        // ":8080"
	CgroupParent string        // "edgefaas"
	StartTimeout time.Duration // how long an instance may take to become ready; 10s
	Retention    time.Duration // raw activation records kept before hourly roll-up; 7 days
	// ShutdownTimeout is how long a stop waits for calls in flight to
	// finish before their sandboxes are destroyed; 20s (below the unit's
	// TimeoutStopSec of 30s, so systemd does not kill us first).
	ShutdownTimeout time.Duration
	// Prewarm is how many prewarmed sandboxes (created, program not yet
	// started: a cold start then costs about one exec) the agent holds, one
	// per function called within PrewarmWindow; 4, and -1 for none. Each
	// holds a parked init process charged to its function's memory limit.
	Prewarm       int
	PrewarmWindow time.Duration // 10m
	// AsyncQueue is how many async calls may wait in the durable queue
	// before POST /async-function answers 429; 10000.
	AsyncQueue int
	Logger     *slog.Logger // slog.Default()
	// Images bounds the image store: per-layer caps, a disk quota, and how
	// pulls reach registries (images.Config documents the defaults).
	Images images.Config

	// APIListener and GatewayListener, when set, are served instead of
	// listening on APISocket and Listen: sockets systemd passed (socket
	// activation). Serve closes them when it returns.
	APIListener     net.Listener
	GatewayListener net.Listener
	// Notifier hears when the agent is ready, how it is doing and when it
	// stops (systemd.Notifier under systemd); nil tells no one.
	Notifier Notifier
	// StatusInterval is how often the status line is sent again when it did
	// not change; 10s. A change is sent within a second.
	StatusInterval time.Duration
	// MQTT configures the MQTT trigger; its zero value has none (no broker).
	MQTT MQTTConfig

	// CloudURL is the cloud controller (http:// or https://); empty runs
	// standalone. Records then wait for the controller's acknowledgement
	// before they may be rolled up.
	CloudURL string
	// CloudEnroll is a one-time enrolment token, used when the device has
	// no identity in StateDir/cloud yet.
	CloudEnroll     string
	CloudCA         string        // PEM file of the CA that signed an https controller's certificate; the system's roots
	CloudMaxBackoff time.Duration // the cap of the reconnect delay; 3m
	CloudBatch      int           // activation records per upload message; 500
}

func (c *Config) setDefaults() {
	if c.StateDir == "" {
		c.StateDir = "/var/lib/edgefaas"
	}
	if c.APISocket == "" {
		c.APISocket = "/run/edgefaas/edgefaasd.sock"
	}
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Notifier == nil {
		c.Notifier = nopNotifier{}
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.Prewarm == 0 {
		c.Prewarm = 4
	}
	if c.PrewarmWindow == 0 {
		c.PrewarmWindow = 10 * time.Minute
	}
	if c.AsyncQueue == 0 {
		c.AsyncQueue = 10000
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.CloudMaxBackoff <= 0 {
		c.CloudMaxBackoff = 3 * time.Minute
	}
}

// Agent is the daemon: every long-lived part, wired in one visible place.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	db        *store.DB
	images    *images.Store
	sandboxes *sandbox.Manager
	invoker   *invoker
	async     *asyncQueue
	ledger    *metering.Ledger
	logs      *logs.Store
	metrics   *metricsSet
	notify    Notifier
	// imageMu orders image changes against collection (see images.go).
	imageMu sync.RWMutex
	probe   *http.Client // the watchdog probe's: no proxy, a new connection each time
	mqtt    mqttLink     // started by Serve
	cloud   cloudPart    // enrolment and the link to the controller (cloud.go)

	mu      sync.Mutex
	servers []*http.Server
	gwAddr  string // the gateway's bound address, once serving
}

// gatewayAddr is the address the gateway serves on, with a wildcard host
// replaced by loopback so that it can be dialed as given.
func (a *Agent) gatewayAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	host, port, err := net.SplitHostPort(a.gwAddr)
	if err != nil {
		return a.gwAddr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// New opens the store, cleans up after a crashed predecessor and prepares
// the parts. It does not listen yet: see Serve. When it fails it closes the
// listeners in cfg.
func New(ctx context.Context, cfg Config) (_ *Agent, retErr error) {
	cfg.setDefaults()
	a := &Agent{cfg: cfg, log: cfg.Logger, notify: cfg.Notifier, probe: newProbeClient()}
	defer func() {
		if retErr != nil {
			a.Close() // also closes the listeners in cfg
		}
	}()
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	var err error
	if a.db, err = store.Open(ctx, filepath.Join(cfg.StateDir, "edgefaas.db")); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	// Before the image store: pulls from the controller's registry use
	// the device's identity and the controller's CA.
	if cfg.CloudURL != "" {
		if err := a.loadCloudCA(); err != nil {
			return nil, err
		}
		cfg.Images.Remote = a.cloudRemote(cfg.Images.Remote)
	}
	if a.images, err = images.Open(filepath.Join(cfg.StateDir, "images"), cfg.Images); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	a.sandboxes, err = sandbox.NewManager(sandbox.Config{
		StateDir:     filepath.Join(cfg.StateDir, "sandboxes"),
		CgroupParent: cfg.CgroupParent,
		Logger:       cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	// Before any sandbox of ours exists: whatever is there belongs to a
	// previous agent that did not stop cleanly.
	if _, err := a.sandboxes.Cleanup(); err != nil {
		a.log.Warn("cleanup after previous agent was incomplete", "err", err)
	}
	// Under systemd (JOURNAL_STREAM is set for the service), function
	// output also goes to the journal, tagged with the function and call.
	a.logs, err = logs.Open(logs.Config{Dir: filepath.Join(cfg.StateDir, "logs"),
		Journal: os.Getenv("JOURNAL_STREAM") != "", Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("open function logs: %w", err)
	}
	a.invoker = newInvoker(a.sandboxes, a.logs, invokerConfig{
		startTimeout: cfg.StartTimeout, prewarm: cfg.Prewarm, prewarmWindow: cfg.PrewarmWindow}, a.log)
	a.metrics = newMetrics(a.invoker)
	// Standalone, every record counts as acknowledged, so retention rolls
	// them up; with a controller only those it acknowledged are.
	if cfg.CloudURL != "" {
		if a.cloud.id, err = a.cloudIdentity(ctx); err != nil {
			return nil, err
		}
		a.cloud.setIdentity(a.cloud.id)
	}
	if a.ledger, err = metering.Open(a.db, metering.Config{Retention: cfg.Retention, Logger: a.log,
		RequireAck: cfg.CloudURL != ""}); err != nil {
		return nil, fmt.Errorf("open metering ledger: %w", err)
	}
	if err := a.loadFunctions(ctx); err != nil {
		return nil, err
	}
	// Calls queued before a restart run now.
	a.async = newAsyncQueue(a.db, a.invokeByName, cfg.AsyncQueue, a.log)
	// Whatever a crash left unreferenced (a pull's blobs, an import
	// committed to the store but not recorded) goes now.
	a.collectImages(ctx)
	return a, nil
}

// Serve listens on the admin socket and the gateway address, or serves the
// listeners given in Config, until ctx ends, then shuts down. It returns nil
// on a clean shutdown.
func (a *Agent) Serve(ctx context.Context) error {
	apiLn, gwLn := a.cfg.APIListener, a.cfg.GatewayListener
	// First: a taken MQTT port fails the start with the flag to change.
	if err := a.startMQTT(ctx); err != nil {
		closeAll(apiLn, gwLn)
		return fmt.Errorf("mqtt: %w", err)
	}
	var err error
	if apiLn == nil {
		if apiLn, err = listenUnix(a.cfg.APISocket); err != nil {
			closeAll(gwLn)
			return err
		}
	}
	if gwLn == nil {
		if gwLn, err = net.Listen("tcp", a.cfg.Listen); err != nil {
			apiLn.Close()
			return fmt.Errorf("gateway listen %s: %w", a.cfg.Listen, err)
		}
	}
	return a.serveOn(ctx, apiLn, gwLn)
}

func (a *Agent) serveOn(ctx context.Context, apiLn, gwLn net.Listener) error {
	errc := make(chan error, 2)
	a.mu.Lock()
	a.gwAddr = gwLn.Addr().String()
	a.mu.Unlock()
	for _, s := range []struct {
		ln net.Listener
		h  http.Handler
	}{{apiLn, a.adminHandler()}, {gwLn, a.gatewayHandler()}} {
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
		a.mu.Lock()
		a.servers = append(a.servers, srv)
		a.mu.Unlock()
		go func(ln net.Listener) {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(s.ln)
	}
	a.log.Info("edgefaasd serving", "api", apiLn.Addr().String(), "gateway", gwLn.Addr().String(),
		"state_dir", a.cfg.StateDir, "cgroups", a.sandboxes.CgroupMode().String())
	// Ready only now: New opened the store and cleaned up after a previous
	// agent, and both listeners are bound with their servers started, so a
	// client that connects the moment systemd hears this is answered.
	a.notify.Ready()
	a.startCloud()
	statusCtx, stopStatus := context.WithCancel(ctx)
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		a.reportStatus(statusCtx)
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	a.notify.Stopping()
	stopStatus()
	<-statusDone
	a.shutdown()
	return err
}

// shutdown stops accepting and waits (up to ShutdownTimeout) for requests
// in flight, invocations included, to be answered.
func (a *Agent) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	a.mu.Lock()
	servers := a.servers
	a.servers = nil
	a.mu.Unlock()
	for _, s := range servers {
		_ = s.Shutdown(ctx)
	}
}

// Close stops every instance and closes the store. Sandboxes do not outlive
// a clean stop; after a crash the next start cleans them up.
func (a *Agent) Close() error {
	// Before the invoker stops: running MQTT invocations end and are
	// recorded; messages not yet run stay in the inbox.
	a.stopMQTT()
	a.shutdown()
	// Before the ledger closes: no upload may be in flight.
	a.stopCloud()
	closeAll(a.cfg.APIListener, a.cfg.GatewayListener) // when Serve never ran
	if a.async != nil {
		a.async.close() // no new async calls start
	}
	if a.invoker != nil {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		a.invoker.stopAll(ctx)
		cancel()
	}
	if a.async != nil {
		a.async.wait()
	}
	if a.ledger != nil {
		if err := a.ledger.Close(); err != nil {
			a.log.Error("closing the metering ledger", "err", err)
		}
	}
	if a.logs != nil {
		if err := a.logs.Close(); err != nil {
			a.log.Error("closing function logs", "err", err)
		}
	}
	if a.db != nil {
		return a.db.Close()
	}
	return nil
}

// listenUnix listens on a unix socket of mode 0660, replacing a stale one.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("api socket %s: another agent is serving it", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func closeAll(lns ...net.Listener) {
	for _, ln := range lns {
		if ln != nil {
			_ = ln.Close()
		}
	}
}
