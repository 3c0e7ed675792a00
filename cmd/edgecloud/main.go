// Command edgecloud is the edgefaas cloud controller: `edgecloud serve`
// runs it, and the other verbs talk to a running one through its admin API.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/controller"
)

const usage = `edgecloud: the edgefaas cloud controller

  edgecloud serve [--listen :7070] [--data-dir /var/lib/edgecloud]
          [--tls-cert FILE --tls-key FILE] [--ping 30s] [--health 60s]
  edgecloud token create [--labels k=v,...]     a one-time enrolment token
  edgecloud devices [--json]                    the fleet: online, last seen, version
  edgecloud devices revoke ID                   refuse a device's key from now on
  edgecloud usage [--device D] [--function F] [--since 24h] [--by hour|day|DURATION] [--json]
  edgecloud deploy NAME --image REPO:TAG --selector k=v,... [--wait 2m] [function flags as in edgefaas deploy:
          --mode --memory --cpu --pids --timeout --concurrency --min --max --idle --queue
          --recycle-after --recycle-memory --env K=V --mqtt FILTER[=REPLY]]
  edgecloud rollout [NAME] [--json]             deployments, or one's state on each device
  edgecloud undeploy NAME                       its devices remove the function
  edgecloud registry gc                         remove untagged, undeployed manifests and unused blobs
                                                (also daily; what is under an hour old stays)
  edgecloud version

Images are pushed to the controller's registry with standard tools, e.g.
  skopeo copy --dest-creds admin:TOKEN oci-archive:fn.tar docker://HOST:7070/fn:1

The verbs other than serve reach the controller at --controller URL or
EDGECLOUD_URL (default http://127.0.0.1:7070) with the admin token from
--token, EDGECLOUD_TOKEN, or DATA-DIR/admin.token (--data-dir).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case err == nil, errors.Is(err, context.Canceled):
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "edgecloud:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "serve":
		return serve(ctx, rest, out)
	case "token", "tokens":
		if len(rest) == 0 || rest[0] != "create" {
			return fmt.Errorf("want: edgecloud token create [--labels k=v,...]")
		}
		return tokenCreate(ctx, rest[1:], out)
	case "devices", "device":
		if len(rest) > 0 && rest[0] == "revoke" {
			return revoke(ctx, rest[1:], out)
		}
		return devices(ctx, rest, out)
	case "usage":
		return usageCmd(ctx, rest, out)
	case "deploy":
		return deployCmd(ctx, rest, out)
	case "rollout", "rollouts", "deployments":
		return rolloutCmd(ctx, rest, out)
	case "undeploy":
		return undeployCmd(ctx, rest, out)
	case "registry":
		if len(rest) == 0 || rest[0] != "gc" {
			return fmt.Errorf("want: edgecloud registry gc")
		}
		return registryGC(ctx, rest[1:], out)
	case "version":
		fmt.Fprintln(out, "edgecloud", api.Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", verb)
}

func serve(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("edgecloud serve", flag.ContinueOnError)
	listen := fs.String("listen", ":7070", "address of the agents' link, enrolment and the admin API")
	dataDir := fs.String("data-dir", "/var/lib/edgecloud", "the database (edgecloud.db) and the admin token (admin.token)")
	cert := fs.String("tls-cert", "", "serve HTTPS with this certificate (PEM); agents then use https:// URLs")
	key := fs.String("tls-key", "", "the certificate's private key (PEM)")
	ping := fs.Duration("ping", 30*time.Second, "how often each link is pinged")
	health := fs.Duration("health", 60*time.Second, "how often agents report health")
	debug := fs.Bool("debug", false, "log at debug level")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if (*cert == "") != (*key == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	s, err := controller.New(ctx, controller.Config{DataDir: *dataDir, PingInterval: *ping, HealthInterval: *health, Logger: log})
	if err != nil {
		return err
	}
	defer s.Close()
	tokenPath := filepath.Join(*dataDir, controller.AdminTokenFile)
	if s.NewAdminToken {
		fmt.Fprintf(out, "admin token (also in %s): %s\n", tokenPath, s.AdminToken())
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *cert != "" {
		if ln, err = tlsListener(ln, *cert, *key); err != nil {
			return err
		}
	}
	return s.Serve(ctx, ln)
}

// client builds the admin API client from the common flags.
type clientFlags struct {
	url, token, dataDir, ca *string
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	def := os.Getenv("EDGECLOUD_URL")
	if def == "" {
		def = "http://127.0.0.1:7070"
	}
	return clientFlags{
		url:     fs.String("controller", def, "the controller's URL (EDGECLOUD_URL)"),
		token:   fs.String("token", os.Getenv("EDGECLOUD_TOKEN"), "the admin token (EDGECLOUD_TOKEN); read from DATA-DIR/admin.token when empty"),
		dataDir: fs.String("data-dir", "/var/lib/edgecloud", "where to find admin.token when no token is given"),
		ca:      fs.String("ca", "", "PEM file of the CA that signed a private https certificate of the controller"),
	}
}

func (f clientFlags) client() (*controller.Client, error) {
	token := *f.token
	if token == "" {
		b, err := os.ReadFile(filepath.Join(*f.dataDir, controller.AdminTokenFile))
		if err != nil {
			return nil, fmt.Errorf("no admin token: give --token or EDGECLOUD_TOKEN, or --data-dir of the controller (%v)", err)
		}
		token = strings.TrimSpace(string(b))
	}
	c, err := controller.NewClient(*f.url, token)
	if err != nil || *f.ca == "" {
		return c, err
	}
	pem, err := os.ReadFile(*f.ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate", *f.ca)
	}
	return c.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), nil
}

// parseArgs parses flags wherever they stand among the arguments and
// returns the others.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}
