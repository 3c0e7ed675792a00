// Command edgefaasd is the edgefaas agent: one per gateway, run as root
// under systemd. It is also the container init of every sandbox it starts
// (libcontainer re-executes it as "/proc/self/exe init").
//
//	edgefaasd [--config FILE] [flags]        run the agent
//	edgefaasd install [--uninstall] [--root DIR]
//	                                         install (or remove) its systemd units
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
	"github.com/edgefaas/edgefaas/systemd"
)

func main() {
	if sandbox.IsInit() {
		sandbox.RunInit() // never returns
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:])
	stop()
	switch {
	case err == nil, errors.Is(err, context.Canceled):
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "edgefaasd:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "install" {
		opts, uninstall, err := parseInstallFlags(args[1:])
		if err != nil {
			return err
		}
		return runInstall(ctx, opts, uninstall)
	}
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.version {
		fmt.Println("edgefaasd", api.Version)
		return nil
	}
	return run(ctx, o)
}

// options are the agent's command line, after the configuration file.
type options struct {
	cfg     agent.Config
	debug   bool
	version bool
}

func (o options) level() slog.Level {
	if o.debug {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// parseFlags parses the agent's flags, then fills in those the command line
// did not give from the --config file.
func parseFlags(args []string) (options, error) {
	var o options
	var configFile string
	fs := agentFlags(&o, &configFile)
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q (edgefaasd -h lists the flags)", fs.Arg(0))
	}
	if configFile != "" {
		if err := applyConfigFile(fs, configFile); err != nil {
			return options{}, err
		}
	}
	return o, nil
}

// agentFlags defines the agent's flags, with their defaults, on o.
func agentFlags(o *options, configFile *string) *flag.FlagSet {
	fs := flag.NewFlagSet("edgefaasd", flag.ContinueOnError)
	fs.StringVar(configFile, "config", "", "read defaults for the flags below from this file of `key = value` lines (the systemd unit uses "+systemd.ConfigPath+")")
	fs.StringVar(&o.cfg.StateDir, "state-dir", "/var/lib/edgefaas", "SQLite database, image store and sandbox state")
	fs.StringVar(&o.cfg.APISocket, "api-socket", api.DefaultSocket, "admin API unix socket (mode 0660), unless systemd passes it")
	fs.StringVar(&o.cfg.Listen, "listen", ":8080", "address of the HTTP gateway that invokes functions, unless systemd passes it")
	fs.StringVar(&o.cfg.CgroupParent, "cgroup-parent", "edgefaas", "cgroup below which every sandbox gets its own")
	fs.DurationVar(&o.cfg.Retention, "retention", 7*24*time.Hour, "how long raw activation records are kept before they are rolled up per function and hour")
	fs.DurationVar(&o.cfg.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "on stop, how long calls in flight may take to finish (keep it below the unit's TimeoutStopSec, 30s)")
	fs.DurationVar(&o.cfg.StartTimeout, "start-timeout", 10*time.Second, "how long a new instance may take to become ready (listening, in http mode) before it counts as failed")
	fs.IntVar(&o.cfg.Prewarm, "prewarm", 4, "prewarmed sandboxes held for recently called functions (a cold start then costs about one exec); -1 for none")
	fs.DurationVar(&o.cfg.PrewarmWindow, "prewarm-window", 10*time.Minute, "a function called within this keeps a prewarmed sandbox")
	fs.IntVar(&o.cfg.AsyncQueue, "async-queue", 10000, "async calls that may wait in the durable queue before POST /async-function answers 429")
	fs.Var(sizeFlag{&o.cfg.Images.Quota}, "image-quota", "most the image store may hold, blobs plus unpacked roots, e.g. 4Gi; 0 for no quota")
	fs.Var(sizeFlag{&o.cfg.Images.MaxLayerBytes}, "layer-max-bytes", "most one image layer may unpack to, e.g. 1Gi; 0 for the default, 2Gi")
	fs.IntVar(&o.cfg.Images.MaxLayerEntries, "layer-max-entries", 0, "most files one image layer may hold; 0 for the default, 200000")
	m := &o.cfg.MQTT
	fs.StringVar(&m.Broker, "mqtt-broker", "embedded", "MQTT trigger: embedded (a broker inside the agent), none, or the URL of a broker (tcp://, ssl://, ws://, wss://)")
	fs.StringVar(&m.Listen, "mqtt-listen", ":1883", "address of the embedded MQTT broker")
	fs.StringVar(&m.AuthFile, "mqtt-auth", "", "users and access rules of the embedded broker (lines 'user NAME PASSWORD', 'allow WHO pub|sub|pubsub FILTER'; see README); without it or --mqtt-anonymous no client gets in")
	fs.BoolVar(&m.Anonymous, "mqtt-anonymous", false, "the embedded broker admits every client without a login")
	fs.StringVar(&m.ClientID, "mqtt-client-id", "", "client id of the persistent session with an external broker (default edgefaas-DEVICEID, kept in STATE/device-id)")
	fs.StringVar(&m.Username, "mqtt-username", "", "user name at the external broker")
	fs.StringVar(&m.Password, "mqtt-password", "", "password at the external broker (better in the config file than on the command line)")
	fs.StringVar(&m.CAFile, "mqtt-ca", "", "PEM CA certificates that sign the external broker's certificate (ssl://, wss://)")
	fs.StringVar(&m.CertFile, "mqtt-cert", "", "PEM client certificate for the external broker")
	fs.StringVar(&m.KeyFile, "mqtt-key", "", "PEM key of --mqtt-cert")
	fs.IntVar(&m.InboxSize, "mqtt-inbox", 10000, "durable inbox bound: when full, QoS 1 messages are not acknowledged (the broker keeps them) and QoS 0 messages are dropped")
	fs.IntVar(&m.MaxPayload, "mqtt-max-payload", 1<<20, "larger MQTT messages are refused (logged, acknowledged, not run)")
	fs.IntVar(&m.Retries, "mqtt-retries", 4, "retries of a failed MQTT invocation before its dead letter on edgefaas/deadletter/FUNCTION (-1: none)")
	fs.DurationVar(&m.Backoff, "mqtt-backoff", time.Second, "wait before the first retry, doubled for each next (at most 1m)")
	fs.StringVar(&o.cfg.CloudURL, "cloud", "", "cloud controller URL (http:// or https://); empty runs standalone")
	fs.StringVar(&o.cfg.CloudEnroll, "enroll", "", "one-time enrolment token (edgecloud token create), used once: the device key and id are then kept in STATE-DIR/cloud")
	fs.StringVar(&o.cfg.CloudCA, "cloud-ca", "", "PEM file of the CA that signed an https controller's certificate (default: the system's roots)")
	fs.DurationVar(&o.cfg.CloudMaxBackoff, "cloud-max-backoff", 3*time.Minute, "the longest wait between two attempts to reach the controller")
	fs.IntVar(&o.cfg.CloudBatch, "cloud-batch", 500, "activation records per upload message to the controller")
	fs.BoolVar(&o.debug, "debug", false, "log at debug level")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	return fs
}

func parseInstallFlags(args []string) (systemd.InstallOptions, bool, error) {
	var opts systemd.InstallOptions
	var uninstall bool
	fs := flag.NewFlagSet("edgefaasd install", flag.ContinueOnError)
	fs.StringVar(&opts.Root, "root", "/", "install below this directory, enabling the units offline (an image being built)")
	fs.BoolVar(&uninstall, "uninstall", false, "stop, disable and remove the units; keep the configuration and the state")
	if err := fs.Parse(args); err != nil {
		return opts, false, err
	}
	if fs.NArg() > 0 {
		return opts, false, fmt.Errorf("install: unexpected argument %q", fs.Arg(0))
	}
	return opts, uninstall, nil
}
