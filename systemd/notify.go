package systemd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier tells systemd how the service is doing, over the sd_notify
// protocol (a datagram to NOTIFY_SOCKET). When NOTIFY_SOCKET is unset (not
// started by systemd, or Type= is not notify) every method is a no-op.
//
// NOTIFY_SOCKET stays in the environment, since it is read at each send.
// Sandboxes do not inherit it (libcontainer gives each init an environment
// of its own), and the unit's NotifyAccess=main would ignore them anyway.
type Notifier struct {
	log *slog.Logger

	readyOnce sync.Once
	ready     chan struct{} // closed by Ready
}

// NewNotifier returns a Notifier that logs failed sends to log.
func NewNotifier(log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.Default()
	}
	return &Notifier{log: log, ready: make(chan struct{})}
}

// Ready sends READY=1: start-up is complete. Only the first call sends.
func (n *Notifier) Ready() {
	n.readyOnce.Do(func() {
		n.send(daemon.SdNotifyReady)
		close(n.ready)
	})
}

// Stopping sends STOPPING=1: the service is shutting down.
func (n *Notifier) Stopping() {
	n.send(daemon.SdNotifyStopping)
}

// Status sends STATUS=text, the line `systemctl status` shows. Line breaks
// become spaces: each line of a notification is an assignment of its own.
func (n *Notifier) Status(text string) {
	n.send("STATUS=" + strings.Join(strings.Fields(text), " "))
}

func (n *Notifier) send(state string) bool {
	sent, err := daemon.SdNotify(false, state)
	if err != nil {
		n.log.Warn("sd_notify failed", "state", state, "err", err)
	}
	return sent
}

// WatchdogInterval returns how often to send WATCHDOG=1: half of the unit's
// WatchdogSec=, as sd_watchdog_enabled(3) advises, so that one late ping
// does not cost a restart. It is 0 when systemd does not watch this process
// (no WATCHDOG_USEC, or a WATCHDOG_PID that is not ours). It unsets both
// variables so that no child inherits them.
func WatchdogInterval() (time.Duration, error) {
	d, err := daemon.SdWatchdogEnabled(true)
	if err != nil {
		return 0, fmt.Errorf("systemd watchdog: %w", err)
	}
	return d / 2, nil
}

// Watchdog sends WATCHDOG=1 every interval, each time only after probe
// succeeded: a ping says the agent makes progress, not merely that one of
// its goroutines still runs. A failing probe is logged and sends nothing;
// when probes keep failing for WatchdogSec, systemd kills and restarts the
// service.
//
// Each probe gets half an interval. One that overruns counts as failed even
// if it ends well: systemd must hear from the agent within two intervals.
// The first probe waits for Ready, since systemd arms the watchdog only when
// start-up is complete. Watchdog returns when ctx ends, at once when
// interval is not positive (the watchdog is off).
func (n *Notifier) Watchdog(ctx context.Context, interval time.Duration, probe func(context.Context) error) {
	if interval <= 0 {
		return
	}
	select {
	case <-n.ready:
	case <-ctx.Done():
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failing := false
	for {
		err := n.probe(ctx, interval/2, probe)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			n.log.Error("watchdog probe failed: not telling systemd we are alive", "err", err)
			failing = true
		default:
			if failing {
				n.log.Info("watchdog probe succeeds again")
				failing = false
			}
			n.send(daemon.SdNotifyWatchdog)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

func (n *Notifier) probe(ctx context.Context, timeout time.Duration, probe func(context.Context) error) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := probe(pctx)
	if err == nil && pctx.Err() != nil {
		err = fmt.Errorf("probe took longer than %s", timeout)
	}
	return err
}
