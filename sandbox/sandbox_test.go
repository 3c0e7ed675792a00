package sandbox_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/cgroups"
	"github.com/edgefaas/edgefaas/internal/testroot"
	"github.com/edgefaas/edgefaas/sandbox"
)

func TestMain(m *testing.M) {
	if sandbox.IsInit() {
		sandbox.RunInit()
	}
	os.Exit(m.Run())
}

var seq atomic.Int64

func newManager(t *testing.T) *sandbox.Manager {
	t.Helper()
	testroot.RequireRoot(t)
	parent := fmt.Sprintf("edgefaas-test-%d-%d", os.Getpid(), seq.Add(1))
	m, err := sandbox.NewManager(sandbox.Config{StateDir: t.TempDir(), CgroupParent: parent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := cgroups.Cleanup(m.CgroupMode(), parent); err != nil {
			t.Error(err)
		}
	})
	return m
}

func spec(root string, args ...string) sandbox.Spec {
	return sandbox.Spec{
		ID:     fmt.Sprintf("t%d-%d", os.Getpid(), seq.Add(1)),
		Root:   root,
		Args:   args,
		Env:    []string{"PATH=/bin"},
		Limits: cgroups.Limits{MemoryBytes: 64 << 20, CPUMillis: 1000, Pids: 32},
	}
}

func create(t *testing.T, m *sandbox.Manager, s sandbox.Spec) *sandbox.Sandbox {
	t.Helper()
	sb, err := m.Create(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy() })
	return sb
}

func waitDone(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	select {
	case <-sb.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("sandbox init did not exit")
	}
}

// execOut runs a shell command in a held sandbox and returns its stdout.
func execOut(t *testing.T, sb *sandbox.Sandbox, script string) (string, sandbox.ExitStatus) {
	t.Helper()
	var out bytes.Buffer
	st, err := sb.Exec(context.Background(), sandbox.Process{
		Args: []string{"/bin/sh", "-c", script}, Env: []string{"PATH=/bin"}, Stdout: &out, Stderr: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), st
}

func TestRunInit(t *testing.T) {
	m := newManager(t)
	var out bytes.Buffer
	s := spec(testroot.Busybox(t), "/bin/echo", "hello from a sandbox")
	s.Stdout = &out
	sb := create(t, m, s)
	waitDone(t, sb)
	if got := strings.TrimSpace(out.String()); got != "hello from a sandbox" {
		t.Fatalf("stdout = %q", got)
	}
}

func TestHeldSandboxExec(t *testing.T) {
	m := newManager(t)
	s := spec(testroot.Busybox(t), "/bin/sh")
	s.Hold = true
	sb := create(t, m, s)
	for i := range 3 {
		var out bytes.Buffer
		st, err := sb.Exec(context.Background(), sandbox.Process{
			Args: []string{"/bin/cat"}, Stdin: strings.NewReader(fmt.Sprint("body ", i)), Stdout: &out,
		})
		if err != nil || st.Code != 0 {
			t.Fatalf("exec %d: %v %+v", i, err, st)
		}
		if want := fmt.Sprint("body ", i); out.String() != want {
			t.Fatalf("exec %d: got %q want %q", i, out.String(), want)
		}
	}
	if _, st := execOut(t, sb, "exit 3"); st.Code != 3 {
		t.Fatalf("exit code = %+v, want 3", st)
	}
}

// TestHardening checks the sandbox from the inside: what a function sees.
func TestHardening(t *testing.T) {
	m := newManager(t)
	s := spec(testroot.Busybox(t), "/bin/sh")
	s.Hold = true
	s.UID, s.GID = 1000, 1000
	sb := create(t, m, s)
	tests := []struct {
		name, script, want string
	}{
		{"root is read-only", "touch /bin/x 2>/dev/null; echo rc=$?", "rc=1"},
		{"tmp is writable", "echo x > /tmp/f && cat /tmp/f", "x"},
		{"no new privileges", "grep NoNewPrivs /proc/self/status", "NoNewPrivs:\t1"},
		{"no capabilities for non-root", "grep CapEff /proc/self/status", "CapEff:\t0000000000000000"},
		{"loopback only", "grep -c : /proc/net/dev", "1"},
		{"runs as the image user", "id -u", "1000"},
		// In its own pid namespace the shell sees only the held init and
		// itself (the glob is expanded by the shell: no child to race with).
		{"pid namespace", "set -- /proc/[0-9]*; echo $#", "2"},
		{"timer_list masked", "wc -c < /proc/timer_list", "0"},
		{"proc/sys read-only", "(echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null; echo rc=$?", "rc=1"},
		{"no host devices", "ls /dev | tr '\\n' ' '", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := execOut(t, sb, tt.script)
			out = strings.TrimSpace(out)
			if tt.want == "" {
				for _, bad := range []string{"sda", "vda", "mem ", "kmsg", "nvme"} {
					if strings.Contains(out+" ", bad) {
						t.Fatalf("/dev has %q: %s", bad, out)
					}
				}
				return
			}
			if out != tt.want {
				t.Fatalf("got %q want %q", out, tt.want)
			}
		})
	}
}

func TestExecTimeoutKills(t *testing.T) {
	m := newManager(t)
	s := spec(testroot.Busybox(t), "/bin/sh")
	s.Hold = true
	sb := create(t, m, s)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	st, err := sb.Exec(ctx, sandbox.Process{Args: []string{"/bin/sleep", "60"}})
	if err == nil || st.Signal.String() != "killed" {
		t.Fatalf("got err=%v status=%+v, want deadline and SIGKILL", err, st)
	}
	paths := sb.CgroupPaths()
	if err := sb.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, sb.Pid(), paths)
}

func assertGone(t *testing.T, pid int, paths map[string]string) {
	t.Helper()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("process %d still exists", pid)
	}
	if len(paths) == 0 {
		t.Error("no cgroup paths recorded")
	}
	for k, p := range paths {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("cgroup %s %s still exists", k, p)
		}
	}
}

func TestDialIntoNetworkNamespace(t *testing.T) {
	m := newManager(t)
	root := testroot.Busybox(t)
	if err := os.WriteFile(root+"/etc/index.html", []byte("served inside"), 0o644); err != nil {
		t.Fatal(err)
	}
	sb := create(t, m, spec(root, "/bin/httpd", "-f", "-p", "8080", "-h", "/etc"))
	var conn io.ReadWriteCloser
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := sb.Dial(context.Background(), "tcp", "127.0.0.1:8080")
		if err == nil {
			conn = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /index.html HTTP/1.0\r\n\r\n")
	body, _ := io.ReadAll(bufio.NewReader(conn))
	if !strings.Contains(string(body), "served inside") {
		t.Fatalf("response %q", body)
	}
}

func TestCleanupAfterCrash(t *testing.T) {
	m := newManager(t)
	s := spec(testroot.Busybox(t), "/bin/sleep", "600")
	sb, err := m.Create(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	paths, pid := sb.CgroupPaths(), sb.Pid()
	// A new manager on the same state dir plays the restarted agent: it does
	// not know the sandbox, only what is on disk.
	ids, err := m.Cleanup()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != s.ID {
		t.Fatalf("cleaned %v, want [%s]", ids, s.ID)
	}
	waitDone(t, sb)
	assertGone(t, pid, paths)
}

func TestExecReportsCPUTime(t *testing.T) {
	m := newManager(t)
	s := spec(testroot.Busybox(t), "/bin/sh")
	s.Hold = true
	sb := create(t, m, s)
	before, err := sb.CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	// A busy loop of a fixed amount of work, not of time.
	_, st := execOut(t, sb, "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
	after, err := sb.CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUTime <= 0 {
		t.Fatalf("exec reported no CPU time: %+v", st)
	}
	// The process was alone in the sandbox: its rusage and its cgroup's
	// charge agree, up to accounting granularity and the few ms that the
	// joining runc init spent before entering the cgroup.
	delta := after - before
	if diff := (st.CPUTime - delta).Abs(); diff > delta/5+5*time.Millisecond {
		t.Fatalf("process CPU %v, cgroup CPU delta %v", st.CPUTime, delta)
	}
}
