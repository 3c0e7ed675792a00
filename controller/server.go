package controller

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// AdminTokenFile is the file in the data directory that holds the admin
// token, written (mode 0600) on the first start.
const AdminTokenFile = "admin.token"

// Config configures a Server. Zero values have the defaults given.
type Config struct {
	DataDir        string           // required: the database and the admin token
	PingInterval   time.Duration    // how often each link is pinged; 30s
	HealthInterval time.Duration    // how often agents report health; 60s
	AuthTimeout    time.Duration    // from the websocket upgrade to the signed answer; 10s
	WriteTimeout   time.Duration    // one frame's write; 10s
	Logger         *slog.Logger     // slog.Default()
	SessionTTL     time.Duration    // how long a dashboard login lasts; 12h
	Clock          func() time.Time // the dashboard sessions' clock; time.Now
	// Store replaces the SQLite store in DataDir (a test's, or another
	// database); the Server closes it.
	Store Store
}

func (c *Config) setDefaults() {
	if c.PingInterval <= 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = 60 * time.Second
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 12 * time.Hour
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Server is the controller: store, hub, ingester and the HTTP API.
type Server struct {
	cfg    Config
	log    *slog.Logger
	store  Store
	hub    *hub
	ingest *ingester
	admin  string     // the admin token
	reg    *registry  // the OCI registry under /v2/
	ui     *dashboard // the web pages under /ui/ and their sessions

	// NewAdminToken is set when this start wrote the admin token.
	NewAdminToken bool

	mu       sync.Mutex
	httpSrv  *http.Server
	stopping bool                         // no link may start: shutdown began
	conns    map[*websocket.Conn]struct{} // every link's connection, from the upgrade on
	linkWG   sync.WaitGroup               // links, which outlive the HTTP server's Shutdown (hijacked)

	pingStop, pingDone chan struct{} // pingStop ends the pinger, the pusher and the collection
	pingOnce           sync.Once

	// Desired state (deploy.go): desiredGen counts deployment changes;
	// pushKick wakes the pusher, which closes pushDone when it ends.
	desiredGen atomic.Int64
	pushKick   chan struct{}
	pushDone   chan struct{}
	gcDone     chan struct{} // the registry's daily collection ended
}

// New opens the store and loads (or on the first start creates) the admin
// token. It does not listen: see Serve.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.DataDir == "" {
		return nil, errors.New("controller: no data directory")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, hub: newHub(), store: cfg.Store, conns: map[*websocket.Conn]struct{}{}}
	var err error
	if s.admin, s.NewAdminToken, err = loadAdminToken(cfg.DataDir); err != nil {
		return nil, err
	}
	if s.store == nil {
		if s.store, err = OpenStore(ctx, cfg.DataDir); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
	}
	if s.reg, err = newRegistry(cfg.DataDir, s.store, s); err != nil {
		s.store.Close()
		return nil, err
	}
	s.ingest = newIngester(s.store, s.log)
	s.ui = newDashboard(s)
	s.pingStop, s.pingDone = make(chan struct{}), make(chan struct{})
	s.pushKick, s.pushDone, s.gcDone = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	// One pinger for the hub, not a goroutine and timer per link.
	go s.every(s.cfg.PingInterval, s.pingDone, func() { s.hub.pingAll(s.cfg.WriteTimeout) })
	go s.pusher()
	go s.every(24*time.Hour, s.gcDone, s.collectDaily)
	return s, nil
}

// AdminToken is the bearer token of the admin API.
func (s *Server) AdminToken() string { return s.admin }

// loadAdminToken reads dir/admin.token, creating it on the first start.
func loadAdminToken(dir string) (token string, created bool, err error) {
	path := filepath.Join(dir, AdminTokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, false, nil
		}
		return "", false, fmt.Errorf("controller: %s is empty", path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("controller: %w", err)
	}
	token = "adm_" + randomHex(24)
	// O_EXCL: two controllers started at once on one directory do not
	// write two tokens.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("controller: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("controller: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", false, fmt.Errorf("controller: %w", err)
	}
	return token, true, f.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// Handler serves the link, enrolment, the admin API, the registry and the
// dashboard.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /v1/link", s.handleLink)
	mux.HandleFunc("POST /v1/enroll", s.handleEnroll)
	mux.Handle("POST /v1/tokens", s.adminOnly(s.handleCreateToken))
	mux.Handle("GET /v1/devices", s.adminOnly(s.handleDevices))
	mux.Handle("GET /v1/devices/{id}", s.adminOnly(s.handleDevice))
	mux.Handle("POST /v1/devices/{id}/revoke", s.adminOnly(s.handleRevoke))
	mux.Handle("GET /v1/devices/{id}/functions", s.adminOnly(s.handleDeviceFunctions))
	mux.Handle("GET /v1/usage", s.adminOnly(s.handleUsage))
	mux.Handle("GET /v1/usage/series", s.adminOnly(s.handleUsageSeries))
	mux.Handle("POST /v1/deployments", s.adminOnly(s.handleDeploy))
	mux.Handle("GET /v1/deployments", s.adminOnly(s.handleDeployments))
	mux.Handle("GET /v1/deployments/{name}", s.adminOnly(s.handleRollout))
	mux.Handle("DELETE /v1/deployments/{name}", s.adminOnly(s.handleUndeploy))
	mux.Handle("GET /v1/stats", s.adminOnly(s.handleStats))
	mux.Handle("POST /v1/registry/gc", s.adminOnly(s.handleRegistryGC))
	mux.HandleFunc("/v2/", s.handleRegistry) // the OCI registry: registry.go
	s.ui.routes(mux)
	return mux
}

func (s *Server) adminOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.admin)) != 1 {
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "admin token required (Authorization: Bearer ...)"})
			return
		}
		h(w, r)
	})
}

// Serve serves on ln until ctx ends, then shuts down: the HTTP server, then
// every link. It returns nil on a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.httpSrv = srv
	s.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("edgecloud serving", "listen", ln.Addr().String(), "data_dir", s.cfg.DataDir)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.shutdown()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// shutdown stops the HTTP server and closes every link.
func (s *Server) shutdown() {
	s.mu.Lock()
	srv := s.httpSrv
	s.httpSrv = nil
	s.stopping = true
	s.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	// Hijacked websocket connections are not the HTTP server's to close.
	s.mu.Lock()
	conns := make([]*websocket.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		closeWith(c, websocket.CloseGoingAway, "controller stopping")
	}
	s.linkWG.Wait()
}

// every runs fn each interval until Close, then closes done.
func (s *Server) every(interval time.Duration, done chan struct{}, fn func()) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.pingStop:
			return
		case <-t.C:
			fn()
		}
	}
}

// Close shuts down (if serving) and closes the store after the last batch
// of usage is stored.
func (s *Server) Close() error {
	s.shutdown()
	s.pingOnce.Do(func() { close(s.pingStop) })
	<-s.pingDone
	<-s.pushDone
	<-s.gcDone
	s.ingest.close()
	return s.store.Close()
}
