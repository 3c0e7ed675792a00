package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/sandbox"
	"golang.org/x/sys/unix"
)

// BenchmarkColdStart times a cold invoke (no instance running, none
// prewarmed: a function never called before) through the gateway against
// `runc run` of the same root and program, interleaved in one run, and
// prints p50, p90 and the ratio. Debian's runc CLI is only the baseline.
func BenchmarkColdStart(b *testing.B) {
	if _, err := exec.LookPath("runc"); err != nil {
		b.Skip("needs runc (apt-get install runc) for the baseline")
	}
	const samples = 25
	a := startAgent(b)
	a.mustCLI("deploy", "cold-exec", "--image", built.busybox, "--env", "SCRIPT=cat")
	a.mustCLI("deploy", "cold-http", "--image", built.testfn)
	cl := a.client()
	// fresh deploys a copy of a function under a new name: it has no
	// instance and no prewarmed sandbox.
	fresh := func(name string, i int) string {
		fn, err := cl.Function(b.Context(), name)
		if err != nil {
			b.Fatal(err)
		}
		fn.Spec.Name = fmt.Sprintf("%s-%d", name, i)
		if _, err := cl.Deploy(b.Context(), fn.Spec); err != nil {
			b.Fatal(err)
		}
		return fn.Spec.Name
	}
	execRoot, httpRoot := a.imageRoot(b, "run.sh"), a.imageRoot(b, "fn")
	runcDir := b.TempDir()
	execBundle := runcBundle(b, runcDir, "exec", execRoot, []string{"/bin/sh", "/run.sh"}, "SCRIPT=cat")
	httpBundle := runcBundle(b, runcDir, "http", httpRoot, []string{"/fn"}, "PORT=8080")

	var ours, base [2][]time.Duration // [0] exec, [1] http
	for i := range samples {
		name := fresh("cold-exec", i)
		start := time.Now()
		a.call(http.MethodPost, "/function/"+name, "hi").want(b, 200, "ok")
		ours[0] = append(ours[0], time.Since(start))
		_ = cl.Remove(b.Context(), name)

		base[0] = append(base[0], runcExec(b, runcDir, execBundle, fmt.Sprint("e", i)))

		name = fresh("cold-http", i)
		start = time.Now()
		a.call(http.MethodPost, "/function/"+name+"/echo", "hi").want(b, 200, "ok")
		ours[1] = append(ours[1], time.Since(start))
		_ = cl.Remove(b.Context(), name)

		base[1] = append(base[1], runcHTTP(b, runcDir, httpBundle, fmt.Sprint("h", i)))
	}
	fmt.Printf("\ncold start, no instance, %d runs each, %s/%s, %d CPUs\n", samples, runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	printRatios(b, ours, base, "")
}

// BenchmarkColdStartPrewarmed times a cold invoke that finds no instance
// but a prewarmed sandbox (the function was called, then scaled to zero),
// against `runc run` of the same root and program in the same run.
func BenchmarkColdStartPrewarmed(b *testing.B) {
	if _, err := exec.LookPath("runc"); err != nil {
		b.Skip("needs runc (apt-get install runc) for the baseline")
	}
	const samples = 15
	a := startAgent(b)
	a.mustCLI("deploy", "pw-exec", "--image", built.busybox, "--env", "SCRIPT=cat", "--idle", "1s")
	a.mustCLI("deploy", "pw-http", "--image", built.testfn, "--idle", "1s")
	execRoot, httpRoot := a.imageRoot(b, "run.sh"), a.imageRoot(b, "fn")
	runcDir := b.TempDir()
	execBundle := runcBundle(b, runcDir, "exec", execRoot, []string{"/bin/sh", "/run.sh"}, "SCRIPT=cat")
	httpBundle := runcBundle(b, runcDir, "http", httpRoot, []string{"/fn"}, "PORT=8080")
	// prewarmed waits until fn has no instance and one parked sandbox.
	prewarmed := func(fn string) {
		waitFor(b, 30*time.Second, fn+" scaled to zero with a prewarmed sandbox", func() bool {
			return a.instances(fn) == 0 && len(a.sandboxPids(fn)) == 1
		})
	}
	a.call(http.MethodPost, "/function/pw-exec", "hi").want(b, 200, "ok")
	a.call(http.MethodPost, "/function/pw-http/echo", "hi").want(b, 200, "ok")
	var ours, base [2][]time.Duration
	for i := range samples {
		prewarmed("pw-exec")
		start := time.Now()
		ans := a.call(http.MethodPost, "/function/pw-exec", "hi").want(b, 200, "ok")
		ours[0] = append(ours[0], time.Since(start))
		if ans.header.Get("X-Faas-Cold-Start") != "true" {
			b.Fatal("not a cold start")
		}
		base[0] = append(base[0], runcExec(b, runcDir, execBundle, fmt.Sprint("e", i)))

		prewarmed("pw-http")
		start = time.Now()
		a.call(http.MethodPost, "/function/pw-http/echo", "hi").want(b, 200, "ok")
		ours[1] = append(ours[1], time.Since(start))
		base[1] = append(base[1], runcHTTP(b, runcDir, httpBundle, fmt.Sprint("h", i)))
	}
	fmt.Printf("\ncold start from a prewarmed sandbox, %d runs each\n", samples)
	printRatios(b, ours, base, "prewarmed-")
}

func printRatios(b *testing.B, ours, base [2][]time.Duration, prefix string) {
	fmt.Printf("%-34s %18s %18s %8s\n", "what (p50 / p90)", "edgefaas", "runc run", "ratio")
	for i, name := range []string{"exec mode (busybox sh, cat)", "http mode (Go server, 1 request)"} {
		o50, o90 := pct(ours[i], 50), pct(ours[i], 90)
		r50, r90 := pct(base[i], 50), pct(base[i], 90)
		fmt.Printf("%-34s %8s / %7s %8s / %7s %7.2fx\n", name, ms(o50), ms(o90), ms(r50), ms(r90), float64(o50)/float64(r50))
		key := prefix + []string{"exec", "http"}[i]
		b.ReportMetric(float64(o50)/1e6, key+"-p50-ms")
		b.ReportMetric(float64(r50)/1e6, key+"-runc-p50-ms")
		b.ReportMetric(float64(o50)/float64(r50), key+"-ratio")
	}
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/1e6) }

// imageRoot finds the agent's unpacked root that holds file.
func (a *agentProc) imageRoot(t testing.TB, file string) string {
	m, _ := filepath.Glob(filepath.Join(a.state, "images/roots/*", file))
	if len(m) != 1 {
		t.Fatalf("want one unpacked root with %s, found %v", file, m)
	}
	return filepath.Dir(m[0])
}

// runcBundle writes an OCI bundle (from `runc spec`) that runs args in root
// read-only, with the same limits as the agent's defaults.
func runcBundle(t testing.TB, dir, name, root string, args []string, env string) string {
	bundle := filepath.Join(dir, "bundle-"+name)
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("runc", "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v %s", err, out)
	}
	path := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	spec["root"] = map[string]any{"path": root, "readonly": true}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = args
	proc["env"] = []string{"PATH=/bin", env}
	linux := spec["linux"].(map[string]any)
	linux["resources"] = map[string]any{
		"memory": map[string]any{"limit": 128 << 20},
		"cpu":    map[string]any{"quota": 50000, "period": 100000},
		"pids":   map[string]any{"limit": 64},
	}
	out, _ := json.Marshal(spec)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle
}

func runcCmd(dir string, args ...string) *exec.Cmd {
	return exec.Command("runc", append([]string{"--root", filepath.Join(dir, "state")}, args...)...)
}

// runcExec times `runc run` of the exec-mode program with a body on stdin.
func runcExec(t testing.TB, dir, bundle, id string) time.Duration {
	cmd := runcCmd(dir, "run", "--bundle", bundle, id)
	cmd.Stdin = strings.NewReader("hi")
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil || string(out) != "hi" {
		t.Fatalf("runc run: %q %v", out, err)
	}
	_ = runcCmd(dir, "delete", "-f", id).Run()
	return d
}

// runcHTTP times `runc run -d` of the server until it answered one request,
// dialing into its network namespace as the agent does.
func runcHTTP(t testing.TB, dir, bundle, id string) time.Duration {
	// The detached container inherits runc's stdio: give it a file, not a
	// pipe that would never reach EOF while the server runs.
	errFile, err := os.CreateTemp(dir, "runc-stderr-")
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	start := time.Now()
	cmd := runcCmd(dir, "run", "-d", "--bundle", bundle, id)
	cmd.Stderr = errFile
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(errFile.Name())
		t.Fatalf("runc run -d: %v %s", err, out)
	}
	defer func() {
		_ = runcCmd(dir, "kill", id, "KILL").Run()
		_ = runcCmd(dir, "delete", "-f", id).Run()
	}()
	out, err := runcCmd(dir, "state", id).Output()
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	ns, err := os.Open("/proc/" + strconv.Itoa(st.Pid) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	// Wait for the port as the agent does: poll the socket table, dial once.
	for {
		if up, err := sandbox.ListeningIn(st.Pid, 8080); err == nil && up {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("runc server never listened")
		}
		time.Sleep(100 * time.Microsecond)
	}
	conn, err := dialIn(ns, "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /echo HTTP/1.1\r\nHost: f\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("runc server answered %v %v", resp, err)
	}
	resp.Body.Close()
	return time.Since(start)
}

// dialIn dials from a thread moved into the namespace (see sandbox.Dial).
func dialIn(ns *os.File, addr string) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{nil, err}
			return
		}
		c, err := net.Dial("tcp", addr)
		ch <- res{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
