package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/edgefaas/edgefaas/api"
)

func TestHTTPModeEndToEnd(t *testing.T) {
	a := startAgent(t)
	out := a.mustCLI("deploy", "echo", "--image", built.testfn)
	if !strings.Contains(out, "deployed echo (version 1") {
		t.Fatalf("deploy said %q", out)
	}

	// Through the CLI: body on stdin, and with -d.
	if out, err := a.cli("from stdin", "invoke", "echo"); err != nil || out != `testfn got "from stdin"` {
		t.Fatalf("invoke from stdin: %q %v", out, err)
	}
	if out := a.mustCLI("invoke", "echo", "-d", "from flag"); out != `testfn got "from flag"` {
		t.Fatalf("invoke -d: %q", out)
	}

	// Through plain HTTP: method, path suffix, query and body pass through;
	// the function sees the trigger and call id headers.
	ans := a.call(http.MethodPut, "/function/echo/echo?x=1&y=2", "payload").want(t, 200, "ok")
	if ans.body != "PUT /echo?x=1&y=2 payload" {
		t.Fatalf("body %q", ans.body)
	}
	if got, want := ans.header.Get("X-Seen-Call-Id"), ans.header.Get("X-Call-Id"); got == "" || got != want {
		t.Fatalf("function saw call id %q, gateway answered %q", got, want)
	}
	if got := ans.header.Get("X-Seen-Trigger"); got != "http" {
		t.Fatalf("function saw trigger %q", got)
	}

	// Listings.
	var fns []api.Function
	if err := json.Unmarshal([]byte(a.mustCLI("ls", "--json")), &fns); err != nil {
		t.Fatal(err)
	}
	if len(fns) != 1 || fns[0].Spec.Name != "echo" || fns[0].Instances != 1 || fns[0].Spec.Mode != "http" {
		t.Fatalf("ls --json: %+v", fns)
	}
	if out := a.mustCLI("ls"); !strings.Contains(out, "NAME") || !strings.Contains(out, "echo") {
		t.Fatalf("ls: %q", out)
	}
	if out := a.mustCLI("describe", "echo"); !strings.Contains(out, `"image_digest": "sha256:`) {
		t.Fatalf("describe: %q", out)
	}
	if out := a.mustCLI("status"); !strings.Contains(out, "functions  1 (1 instances running)") {
		t.Fatalf("status: %q", out)
	}
	if out := a.mustCLI("image", "ls"); !strings.Contains(out, "testfn:1") {
		t.Fatalf("image ls: %q", out)
	}

	a.mustCLI("rm", "echo")
	a.call(http.MethodPost, "/function/echo", "").want(t, 404, "not_found")
	if pids := a.sandboxPids("echo"); len(pids) != 0 {
		t.Fatalf("processes of removed function remain: %v", pids)
	}
}

func TestExecModeEndToEnd(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "sh", "--image", built.busybox, "--env",
		`SCRIPT=echo "$FAAS_TRIGGER $HTTP_METHOD $HTTP_PATH $HTTP_QUERY id=${#FAAS_CALL_ID}"; cat; [ "$HTTP_PATH" != /fail ] || exit 3`)
	// The busybox image runs the shell code in $SCRIPT, given at deploy.
	out := a.mustCLI("invoke", "sh", "-d", "hello")
	if out != "http POST /  id=24\nhello" { // HTTP_QUERY is empty
		t.Fatalf("invoke: %q", out)
	}
	ans := a.call(http.MethodGet, "/function/sh/some/path?q=1", "body").want(t, 200, "ok")
	if ans.body != "http GET /some/path q=1 id=24\nbody" {
		t.Fatalf("body %q", ans.body)
	}
	ans = a.call(http.MethodPost, "/function/sh/fail", "").want(t, 500, "error")
	if ans.header.Get("X-Faas-Exit-Code") != "3" {
		t.Fatalf("exit code header %q", ans.header.Get("X-Faas-Exit-Code"))
	}
	// Exec mode keeps one warm sandbox and runs calls in it concurrently.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { a.call(http.MethodPost, "/function/sh", "x").want(t, 200, "ok") })
	}
	wg.Wait()
	if n := len(a.sandboxCgroups()); n == 0 {
		t.Fatal("no warm sandbox")
	}
}

func TestNotFoundAndBadInput(t *testing.T) {
	a := startAgent(t)
	ans := a.call(http.MethodPost, "/function/nope", "").want(t, 404, "not_found")
	var e api.Error
	if err := json.Unmarshal([]byte(ans.body), &e); err != nil || !strings.Contains(e.Error, `"nope"`) {
		t.Fatalf("error body %q", ans.body)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad name", []string{"deploy", "Bad_Name", "--image", built.testfn}, "function name"},
		{"unknown image", []string{"deploy", "x", "--image", "nosuch:1"}, "import it first"},
		{"bad mode", []string{"deploy", "x", "--image", built.testfn, "--mode", "batch"}, "mode"},
		{"bad memory", []string{"deploy", "x", "--image", built.testfn, "--memory", "lots"}, "--memory"},
		{"memory too small", []string{"deploy", "x", "--image", built.testfn, "--memory", "1Ki"}, "memory"},
		{"missing archive", []string{"image", "import", "/nonexistent.tar"}, "no such file"},
		{"describe unknown", []string{"describe", "ghost"}, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := a.cli("", tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q, %v; want an error mentioning %q", out, err, tt.want)
			}
		})
	}
}

func TestRequestAndResponseLimits(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "lim", "--image", built.testfn)
	big := strings.Repeat("x", 7<<20)
	a.call(http.MethodPost, "/function/lim/echo", big).want(t, 413, "too_large")
	a.call(http.MethodGet, "/function/lim/big", "").want(t, 502, "too_large")
	a.call(http.MethodGet, "/function/lim/crash", "").want(t, 502, "crashed")
	// A crash costs the instance, not the function.
	a.call(http.MethodPost, "/function/lim/echo", "again").want(t, 200, "ok")
}
