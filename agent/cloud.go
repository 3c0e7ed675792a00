package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sys/unix"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/cloudsync"
	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/images"
)

// cloudPart is the agent's side of the cloud: its identity, the TLS
// settings for the controller, and the link once started.
type cloudPart struct {
	id     cloudsync.Identity
	tls    *tls.Config                        // from CloudCA; nil: the system's roots
	caPEM  []byte                             // CloudCA's certificates
	pullID atomic.Pointer[cloudsync.Identity] // for the registry keychain; nil until enrolled

	apply *applier // brings the device to the controller's desired set

	mu   sync.Mutex
	link *cloudsync.Link
	// stop ends the goroutine that enrols (when New could not) and starts
	// the link; done is closed when it has.
	stop context.CancelFunc
	done chan struct{}
}

// cloudDir holds the device key and what enrolment returned.
func (a *Agent) cloudDir() string { return filepath.Join(a.cfg.StateDir, "cloud") }

// loadCloudCA reads cfg.CloudCA (PEM certificates) into the TLS settings
// of enrolment and the link; no file keeps the system's roots.
func (a *Agent) loadCloudCA() error {
	if a.cfg.CloudCA == "" {
		return nil
	}
	pem, err := os.ReadFile(a.cfg.CloudCA)
	if err != nil {
		return fmt.Errorf("cloud CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("cloud CA %s: no PEM certificate: %w", a.cfg.CloudCA, errdefs.ErrInvalid)
	}
	a.cloud.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	a.cloud.caPEM = pem
	return nil
}

// setIdentity gives image pulls the device's identity, once it has one.
func (c *cloudPart) setIdentity(id cloudsync.Identity) {
	if id.Key != nil {
		c.pullID.Store(&id)
	}
}

// cloudRemote makes image pulls from the controller's registry carry the
// device's credential (cloudsync.Keychain, first, then the keychain
// configured or docker's), reach an http:// controller over plain HTTP,
// and trust the controller's CA beside the system's roots.
func (a *Agent) cloudRemote(r images.Remote) images.Remote {
	next := r.Keychain
	if next == nil {
		next = authn.DefaultKeychain
	}
	r.Keychain = authn.NewMultiKeychain(cloudsync.Keychain(a.cfg.CloudURL, a.cloud.pullID.Load), next)
	if u, err := url.Parse(a.cfg.CloudURL); err == nil && u.Scheme == "http" {
		r.PlainHTTP = u.Host
	}
	if a.cloud.caPEM != nil && r.Transport == nil {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(a.cloud.caPEM)
		r.Transport = images.NewTransport(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	return r
}

// cloudIdentity returns the device's identity, enrolling with
// cfg.CloudEnroll first when the device has none. A device already
// enrolled ignores the token, so that a unit file or a config that keeps
// --enroll works across restarts. A controller that cannot be reached
// returns no identity and no error: the agent starts, keeps its records
// for the controller, and enrols in the background (startCloud). A token
// the controller refuses stops the start.
func (a *Agent) cloudIdentity(ctx context.Context) (cloudsync.Identity, error) {
	id, err := cloudsync.LoadIdentity(a.cloudDir())
	switch {
	case err == nil:
		if a.cfg.CloudEnroll != "" {
			a.log.Info("already enrolled: ignoring the enrolment token", "device", id.DeviceID)
		}
		if id.Controller != a.cfg.CloudURL {
			a.log.Warn("enrolled with another controller URL; using the one configured",
				"enrolled_with", id.Controller, "cloud", a.cfg.CloudURL)
		}
		return id, nil
	case !errors.Is(err, errdefs.ErrNotFound):
		return id, err
	case a.cfg.CloudEnroll == "":
		return id, fmt.Errorf("cloud %s: this device is not enrolled: start it once with --enroll TOKEN (edgecloud token create): %w",
			a.cfg.CloudURL, errdefs.ErrInvalid)
	}
	id, err = a.enroll(ctx)
	if errors.Is(err, errdefs.ErrUnavailable) {
		a.log.Warn("cloud controller unreachable: enrolment goes on in the background", "cloud", a.cfg.CloudURL, "err", err)
		return cloudsync.Identity{}, nil
	}
	return id, err
}

func (a *Agent) enroll(ctx context.Context) (cloudsync.Identity, error) {
	id, err := cloudsync.Enroll(ctx, a.cloudDir(), a.cfg.CloudURL, a.cfg.CloudEnroll, a.cloud.tls)
	if err == nil {
		a.log.Info("enrolled with the cloud controller", "device", id.DeviceID, "cloud", a.cfg.CloudURL, "labels", id.Labels)
	}
	return id, err
}

// startCloud starts the link when the agent has a controller, after
// enrolling first if New could not reach it.
func (a *Agent) startCloud() {
	if a.cfg.CloudURL == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.cloud.mu.Lock()
	a.cloud.stop, a.cloud.done = cancel, done
	a.cloud.mu.Unlock()
	a.cloud.apply = newApplier(ctx, a)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		a.cloud.apply.run(ctx)
	}()
	go func() {
		wg.Wait()
		close(done)
	}()
	go func() {
		defer wg.Done()
		id := a.cloud.id
		for attempt := 0; id.Key == nil; attempt++ {
			t := time.NewTimer(cloudsync.Backoff(time.Second, a.cfg.CloudMaxBackoff, attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			var err error
			if id, err = a.enroll(ctx); err != nil && !errors.Is(err, errdefs.ErrUnavailable) {
				a.log.Error("enrolment refused: no cloud link until the agent is given another token", "err", err)
				return
			}
		}
		a.cloud.setIdentity(id)
		l, err := cloudsync.Start(cloudsync.Config{
			Identity: id, URL: a.cfg.CloudURL, Ledger: a.ledger,
			Inventory: a.inventory, Health: a.health, Version: api.Version, Desired: a.cloud.apply.desired,
			MaxBackoff: a.cfg.CloudMaxBackoff, BatchSize: a.cfg.CloudBatch, Logger: a.log, TLS: a.cloud.tls,
		})
		if err != nil {
			a.log.Error("cloud link not started", "err", err)
			return
		}
		a.cloud.mu.Lock()
		a.cloud.link = l
		a.cloud.mu.Unlock()
		a.cloud.apply.setReporter(l.ReportStatus)
	}()
}

// stopCloud ends enrolment attempts, the applier of desired sets and the
// link; no upload or deploy from the cloud is in flight once it returns.
func (a *Agent) stopCloud() {
	a.cloud.mu.Lock()
	stop, done := a.cloud.stop, a.cloud.done
	a.cloud.stop, a.cloud.done = nil, nil
	a.cloud.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	<-done
	a.cloud.mu.Lock()
	l := a.cloud.link
	a.cloud.link = nil
	a.cloud.mu.Unlock()
	if l != nil {
		_ = l.Close()
	}
}

func (a *Agent) cloudStatus() *api.CloudStatus {
	a.cloud.mu.Lock()
	l, starting := a.cloud.link, a.cloud.stop != nil
	a.cloud.mu.Unlock()
	switch {
	case l == nil && starting:
		return &api.CloudStatus{Controller: a.cfg.CloudURL, LastError: "link not started yet (enrolling, or starting)"}
	case l == nil:
		return nil
	}
	st := l.Status()
	return &api.CloudStatus{Controller: st.Controller, DeviceID: st.DeviceID, Connected: st.Connected,
		Links: st.Links, AckedSeq: st.AckedSeq, Uploaded: st.Uploaded, LastError: st.LastError}
}

// inventory is what the link's hello reports.
func (a *Agent) inventory(ctx context.Context) proto.Hello {
	h := proto.Hello{Version: api.Version, Arch: runtime.GOARCH, CgroupMode: a.sandboxes.CgroupMode().String(),
		Functions: []proto.FunctionVersion{}}
	h.Hostname, _ = os.Hostname()
	fns, err := a.db.Functions(ctx)
	if err != nil {
		a.log.Warn("inventory: listing functions", "err", err)
	}
	for _, f := range fns {
		h.Functions = append(h.Functions, proto.FunctionVersion{Name: f.Spec.Name, Version: f.Version,
			ImageDigest: f.ImageDigest, Mode: f.Spec.Mode})
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		h.Resources = &proto.Resources{CPUs: runtime.NumCPU(), MemoryBytes: int64(si.Totalram) * int64(si.Unit)}
	}
	return h
}

// health is what the link reports periodically.
func (a *Agent) health(ctx context.Context) proto.Health {
	var h proto.Health
	for _, n := range a.invoker.instances() {
		h.Instances += n
	}
	if fns, err := a.db.Functions(ctx); err == nil {
		h.Functions = len(fns)
	}
	h.ResidentBytes = residentBytes()
	return h
}

// residentBytes is the agent's resident memory, from /proc/self/statm.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
