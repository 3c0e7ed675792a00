// Command edgefaas is the command line of edgefaas: it deploys, invokes and
// inspects functions through an agent's admin API. It links neither
// libcontainer nor SQLite.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgefaas/edgefaas/api"
)

const usage = `edgefaas: deploy, invoke and inspect functions on an edgefaas agent

  edgefaas deploy NAME --image REF [--mode http|exec] [--memory 128Mi] [--cpu 500m]
          [--pids 64] [--timeout 10s] [--concurrency N] [--min N] [--max N]
          [--idle 5m] [--queue N] [--recycle-after N] [--recycle-memory SIZE] [--env K=V]...
          [--mqtt 'FILTER[=REPLY][;qos=0|1|2][;ordered]']...
  edgefaas deploy -f stack.yaml                 many functions, one file
  edgefaas invoke NAME [-d DATA | -d @FILE]     body from stdin when -d is absent
  edgefaas ls | describe NAME | rm NAME
  edgefaas logs NAME [-f] [--since 10m] [--call ID] [--tail N]
  edgefaas usage [NAME] [--since 24h] [--by hour|day]
  edgefaas image import FILE|DIR [--name NAME:TAG] | pull REF | ls | rm REF | prune [--all]
  edgefaas new NAME --lang go|sh            write a starter function in ./NAME
  edgefaas build DIR -t NAME:TAG -o FILE [--platform linux/arm64,linux/arm/v7,linux/amd64]
          [--from REF] [--mode http|exec] [--entrypoint CMD] [--env K=V]... [--workdir DIR] [--user U]
  edgefaas status | version

The agent: --agent URL or EDGEFAAS_AGENT (unix:///run/edgefaas/edgefaasd.sock,
or http://host:port with EDGEFAAS_TOKEN). Listings take --json.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "edgefaas:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// cli carries what every verb needs.
type cli struct {
	agent string
	in    io.Reader
	out   io.Writer
}

func (c *cli) client() (*api.Client, error) {
	return api.NewClient(c.agent, os.Getenv("EDGEFAAS_TOKEN"))
}

func run(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	c := &cli{agent: os.Getenv("EDGEFAAS_AGENT"), in: in, out: out}
	for len(args) > 1 && (args[0] == "--agent" || args[0] == "-agent") {
		c.agent, args = args[1], args[2:]
	}
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "deploy":
		return c.deploy(ctx, rest)
	case "invoke":
		return c.invoke(ctx, rest)
	case "ls", "list":
		return c.list(ctx, rest)
	case "describe":
		return c.describe(ctx, rest)
	case "rm", "remove":
		return c.remove(ctx, rest)
	case "usage":
		return c.usage(ctx, rest)
	case "logs":
		return c.logs(ctx, rest)
	case "image", "images":
		return c.image(ctx, rest)
	case "build":
		return c.build(ctx, rest)
	case "new":
		return c.newFunction(ctx, rest)
	case "status":
		return c.status(ctx, rest)
	case "version":
		return c.version(ctx)
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", verb)
}
