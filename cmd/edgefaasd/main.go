// Command edgefaasd is the edgefaas agent: one per gateway, run as root
// under systemd. It is also the container init of every sandbox it starts
// (libcontainer re-executes it as "/proc/self/exe init").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edgefaas/edgefaas/agent"
	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/sandbox"
)

func main() {
	if sandbox.IsInit() {
		sandbox.RunInit() // never returns
	}
	var cfg agent.Config
	var debug, version bool
	flag.StringVar(&cfg.StateDir, "state-dir", "/var/lib/edgefaas", "SQLite database, image store and sandbox state")
	flag.StringVar(&cfg.APISocket, "api-socket", api.DefaultSocket, "admin API unix socket (mode 0660)")
	flag.StringVar(&cfg.Listen, "listen", ":8080", "address of the HTTP gateway that invokes functions")
	flag.StringVar(&cfg.CgroupParent, "cgroup-parent", "edgefaas", "cgroup below which every sandbox gets its own")
	flag.DurationVar(&cfg.Retention, "retention", 7*24*time.Hour, "how long raw activation records are kept before they are rolled up per function and hour")
	flag.BoolVar(&debug, "debug", false, "log at debug level")
	flag.BoolVar(&version, "version", false, "print the version and exit")
	flag.Parse()
	if version {
		fmt.Println("edgefaasd", api.Version)
		return
	}
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "edgefaasd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg agent.Config) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root: it creates namespaces and cgroups for sandboxes")
	}
	a, err := agent.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Serve(ctx)
}
