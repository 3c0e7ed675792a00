package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"

	"github.com/edgefaas/edgefaas/agent"
	"github.com/edgefaas/edgefaas/systemd"
)

// run runs the agent until ctx ends, wired to systemd when systemd runs it:
// logs to the journal, the sockets systemd passed, readiness, status,
// stopping and the watchdog. Without systemd each of these falls back or
// does nothing.
func run(ctx context.Context, o options) error {
	log := systemd.NewLogger(o.level())
	if os.Geteuid() != 0 {
		return errors.New("must run as root: it creates namespaces and cgroups for sandboxes")
	}
	cfg := o.cfg
	cfg.Logger = log
	// Before anything else: this unsets LISTEN_* and makes the passed
	// descriptors close-on-exec, so that no child inherits them.
	lns, err := systemd.Listeners()
	if err != nil {
		return err
	}
	cfg.APIListener, cfg.GatewayListener = take(lns, systemd.APIListener), take(lns, systemd.GatewayListener)
	for name, ln := range lns {
		log.Warn("closing a socket systemd passed that the agent has no use for", "name", name, "addr", ln.Addr().String())
		ln.Close()
	}
	logActivation(log, cfg)
	n := systemd.NewNotifier(log)
	cfg.Notifier = n
	interval, err := systemd.WatchdogInterval()
	if err != nil {
		log.Warn("watchdog off: WATCHDOG_USEC is malformed", "err", err)
	}

	a, err := agent.New(ctx, cfg) // closes the passed listeners when it fails
	if err != nil {
		return err
	}
	defer a.Close()
	// The watchdog stops before Close: a probe must not meet a closed store.
	wctx, stopWatchdog := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { n.Watchdog(wctx, interval, a.Probe) })
	defer func() {
		stopWatchdog()
		wg.Wait()
	}()
	return a.Serve(ctx)
}

func take[V any](m map[string]V, key string) V {
	v := m[key]
	delete(m, key)
	return v
}

func logActivation(log *slog.Logger, cfg agent.Config) {
	if cfg.APIListener == nil && cfg.GatewayListener == nil {
		return
	}
	attrs := []any{}
	if cfg.APIListener != nil {
		attrs = append(attrs, "api", cfg.APIListener.Addr().String())
	} else {
		attrs = append(attrs, "api", "not passed: listening on "+cfg.APISocket)
	}
	if cfg.GatewayListener != nil {
		attrs = append(attrs, "gateway", cfg.GatewayListener.Addr().String())
	} else {
		attrs = append(attrs, "gateway", "not passed: listening on "+cfg.Listen)
	}
	log.Info("using sockets passed by systemd", attrs...)
}
