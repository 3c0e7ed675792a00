// Package integration runs the real binaries end to end: edgefaasd with real
// libcontainer sandboxes and cgroups, the edgefaas CLI, real image archives.
// Tests need root (CI runs as root) and skip with the reason otherwise.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/internal/testroot"
)

// built holds what TestMain builds once: the binaries and test images.
var built struct {
	dir        string
	edgefaasd  string
	edgefaas   string
	edgecloud  string // the cloud controller
	testfn     string // http-mode Go function (testdata/testfn)
	busybox    string // busybox root as an exec-mode image that runs the shell code in $SCRIPT
	moduleRoot string
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("integration: skipping everything: needs root (real sandboxes and cgroups; CI runs as root)")
		return 0
	}
	dir, err := os.MkdirTemp("", "edgefaas-it-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := buildAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "integration: build:", err)
		return 1
	}
	return m.Run()
}

func buildAll(dir string) error {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	built.dir, built.moduleRoot = dir, root
	built.edgefaasd = filepath.Join(dir, "edgefaasd")
	built.edgefaas = filepath.Join(dir, "edgefaas")
	built.edgecloud = filepath.Join(dir, "edgecloud")
	args := []string{"build", "-o", dir + "/"}
	if os.Getenv("EDGEFAAS_IT_RACE") != "" { // agents built with the race detector
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/edgefaasd", "./cmd/edgefaas", "./cmd/edgecloud")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	built.testfn = filepath.Join(dir, "testfn.tar")
	if out, err := exec.Command(built.edgefaas, "build", filepath.Join(root, "integration/testdata/testfn"),
		"-t", "testfn:1", "-o", built.testfn).CombinedOutput(); err != nil {
		return fmt.Errorf("edgefaas build testfn: %v\n%s", err, out)
	}
	bbRoot, err := busyboxRoot(dir)
	if err != nil {
		return err
	}
	built.busybox = filepath.Join(dir, "busybox.tar")
	if out, err := exec.Command(built.edgefaas, "build", bbRoot, "-t", "busybox-sh:1", "--mode", "exec",
		"--entrypoint", "/bin/sh /run.sh", "-o", built.busybox).CombinedOutput(); err != nil {
		return fmt.Errorf("edgefaas build busybox: %v\n%s", err, out)
	}
	return nil
}

// busyboxRoot lays out a busybox root plus run.sh, which runs $SCRIPT.
func busyboxRoot(dir string) (string, error) {
	root := filepath.Join(dir, "bbroot")
	if err := testroot.WriteBusybox(root); err != nil {
		return "", err
	}
	return root, os.WriteFile(filepath.Join(root, "run.sh"), []byte("eval \"$SCRIPT\"\n"), 0o755)
}

// agentProc is a running edgefaasd with its own state, socket, port and
// cgroup parent.
type agentProc struct {
	t            testing.TB
	cmd          *exec.Cmd
	state        string
	sock         string
	gw           string // http://127.0.0.1:PORT
	cgroupParent string
	extra        []string // more flags; later flags win over the defaults
	logs         *syncBuffer
}

var agentSeq int

// startAgent starts an agent without MQTT; extra flags are added (and win).
func startAgent(t testing.TB, extra ...string) *agentProc {
	t.Helper()
	agentSeq++
	a := &agentProc{
		t:            t,
		state:        t.TempDir(),
		cgroupParent: fmt.Sprintf("edgefaas-it-%d-%d", os.Getpid(), agentSeq),
		extra:        extra,
	}
	a.sock = filepath.Join(a.state, "api.sock")
	a.start()
	t.Cleanup(func() {
		a.stop()
		a.assertNoCgroups()
	})
	return a
}

// start runs edgefaasd on the agent's state dir and waits until it serves.
func (a *agentProc) start() {
	t := a.t
	t.Helper()
	a.logs = &syncBuffer{}
	a.cmd = exec.Command(built.edgefaasd, append([]string{"--state-dir", a.state, "--api-socket", a.sock,
		"--listen", "127.0.0.1:0", "--cgroup-parent", a.cgroupParent,
		"--mqtt-broker", "none"}, a.extra...)...)
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	// No Pdeathsig here: it fires when the *thread* that forked the agent
	// exits, and the benchmarks' dialIn retires locked threads, which killed
	// agents mid-run. An agent orphaned by a crashed test binary is cleaned
	// up by the next agent started on its state (or by hand).
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cl := a.client()
	waitFor(t, 10*time.Second, "agent to serve", func() bool {
		info, err := cl.Info(context.Background())
		if err != nil {
			return false
		}
		a.gw = "http://" + info.Listen
		return true
	})
}

// stop ends the agent with SIGTERM (a clean stop).
func (a *agentProc) stop() {
	terminate(a.t, a.cmd, a.logs)
}

// terminate stops an agent process cleanly (SIGCONT first, in case a test
// left it stopped, then SIGTERM), kills it after 15 s, and shows its logs
// when the test failed.
func terminate(t testing.TB, cmd *exec.Cmd, logs *syncBuffer) {
	if cmd == nil || cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("agent did not stop within 15s after SIGTERM")
	}
	if strings.Contains(logs.String(), "WARNING: DATA RACE") {
		t.Errorf("the agent (built with EDGEFAAS_IT_RACE) reported a data race")
	}
	if t.Failed() {
		t.Logf("agent logs:\n%s", logs.String())
	}
}

// kill9 ends the agent the hard way, as a crash or power cut would.
func (a *agentProc) kill9() {
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
}

func (a *agentProc) client() *api.Client {
	cl, err := api.NewClient("unix://"+a.sock, "")
	if err != nil {
		a.t.Fatal(err)
	}
	return cl
}

// cli runs the edgefaas binary against this agent.
func (a *agentProc) cli(stdin string, args ...string) (string, error) {
	cmd := exec.Command(built.edgefaas, args...)
	cmd.Env = append(os.Environ(), "EDGEFAAS_AGENT=unix://"+a.sock)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

func (a *agentProc) mustCLI(args ...string) string {
	a.t.Helper()
	out, err := a.cli("", args...)
	if err != nil {
		a.t.Fatalf("edgefaas %s: %v\nagent logs:\n%s", strings.Join(args, " "), err, a.logs.String())
	}
	return out
}

// answer is a gateway response, read whole.
type answer struct {
	code   int
	status string // X-Faas-Status
	header http.Header
	body   string
}

func (a *agentProc) call(method, path, body string) answer {
	a.t.Helper()
	req, err := http.NewRequest(method, a.gw+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return answer{code: resp.StatusCode, status: resp.Header.Get("X-Faas-Status"), header: resp.Header, body: string(b)}
}

// want fails unless the answer has the code and faas status.
func (ans answer) want(t testing.TB, code int, status string) answer {
	t.Helper()
	if ans.code != code || ans.status != status {
		t.Fatalf("got %d %q (%s), want %d %q", ans.code, ans.status, ans.body, code, status)
	}
	return ans
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(delay)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
