package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Notifier hears about the agent's life cycle; under systemd it is a
// systemd.Notifier. Its methods must return quickly.
type Notifier interface {
	// Ready: the store is open, a previous agent's leftovers are cleaned
	// up, and both servers accept connections.
	Ready()
	// Status: a one-line summary, sent when it changes and every
	// Config.StatusInterval.
	Status(text string)
	// Stopping: shutting down.
	Stopping()
}

type nopNotifier struct{}

func (nopNotifier) Ready()        {}
func (nopNotifier) Status(string) {}
func (nopNotifier) Stopping()     {}

// statusPoll is how often reportStatus looks for a change. The status is
// read from memory, so this costs next to nothing.
const statusPoll = time.Second

// reportStatus sends the status line when it changes and at least every
// StatusInterval, until ctx ends.
func (a *Agent) reportStatus(ctx context.Context) {
	poll := min(statusPoll, a.cfg.StatusInterval)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var last string
	var sent time.Time
	for {
		if s := a.status(); s != last || time.Since(sent) >= a.cfg.StatusInterval {
			a.notify.Status(s)
			last, sent = s, time.Now()
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// status is the one-line summary `systemctl status` shows. The cloud link
// does not exist yet: "standalone".
func (a *Agent) status() string {
	states := a.invoker.states()
	warm := 0
	for _, s := range states {
		warm += s.instances
	}
	return fmt.Sprintf("%s, %s; mqtt: %s; cloud: standalone",
		count(len(states), "function", "functions"), count(warm, "warm instance", "warm instances"), a.mqttStatus())
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Probe proves the agent makes progress, for the systemd watchdog: the
// store commits a write (its heartbeat row), and the gateway answers
// GET /healthz over loopback on a new connection, so through its accept
// loop. It fails when ctx ends first.
func (a *Agent) Probe(ctx context.Context) error {
	if err := a.db.Heartbeat(ctx); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	a.mu.Lock()
	serving := a.gwAddr != ""
	a.mu.Unlock()
	if !serving {
		return fmt.Errorf("probe: the gateway is not serving yet: %w", errdefs.ErrUnavailable)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.gatewayAddr()+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := a.probe.Do(req)
	if err != nil {
		return fmt.Errorf("probe: gateway: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe: gateway /healthz answered %s: %w", resp.Status, errdefs.ErrUnavailable)
	}
	return nil
}

// newProbeClient returns the probe's HTTP client: no proxy from the
// environment (the gateway is local), no kept-alive connections (a probe
// must go through the accept loop).
func newProbeClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
}
