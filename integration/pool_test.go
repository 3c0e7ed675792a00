package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// instances is the number of running instances the agent reports.
func (a *agentProc) instances(fn string) int {
	a.t.Helper()
	f, err := a.client().Function(context.Background(), fn)
	if err != nil {
		a.t.Fatal(err)
	}
	return f.Instances
}

func TestScaleToZeroAndMinInstances(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "lazy", "--image", built.testfn, "--idle", "1s")
	a.mustCLI("deploy", "pinned", "--image", built.testfn, "--idle", "1s", "--min", "1")

	// --min instances start without a call and survive idleness.
	waitFor(t, 10*time.Second, "the pinned instance to start", func() bool { return a.instances("pinned") == 1 })
	if n := a.instances("lazy"); n != 0 {
		t.Fatalf("lazy has %d instances before any call", n)
	}
	ans := a.call(http.MethodPost, "/function/lazy", "x").want(t, 200, "ok")
	if ans.header.Get("X-Faas-Cold-Start") != "true" {
		t.Fatal("first call of a scaled-to-zero function not marked cold")
	}
	if ans := a.call(http.MethodPost, "/function/pinned", "x").want(t, 200, "ok"); ans.header.Get("X-Faas-Cold-Start") != "false" {
		t.Fatal("call to a pinned instance marked cold")
	}
	waitFor(t, 10*time.Second, "lazy to scale to zero", func() bool { return a.instances("lazy") == 0 })
	if pids := a.programPids("lazy"); len(pids) != 0 {
		t.Fatalf("lazy scaled to zero but its program still runs: %v", pids)
	}
	// What may remain is one prewarmed sandbox (a parked init, no program).
	if pids := a.sandboxPids("lazy"); len(pids) > 1 {
		t.Fatalf("lazy scaled to zero but %d sandbox processes remain: %v", len(pids), pids)
	}
	if n := a.instances("pinned"); n != 1 {
		t.Fatalf("pinned has %d instances after idling, want 1", n)
	}

	// A crashed pinned instance is replaced.
	before := a.sandboxPids("pinned")
	if len(before) == 0 {
		t.Fatal("no process for the pinned instance")
	}
	for _, pid := range before {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	waitFor(t, 10*time.Second, "the pinned instance to be replaced", func() bool {
		for _, pid := range before {
			if alive(pid) {
				return false
			}
		}
		return len(a.programPids("pinned")) == 1 && a.instances("pinned") == 1
	})
	a.call(http.MethodPost, "/function/pinned", "x").want(t, 200, "ok")
}

func TestBurstAgainstMaxAndQueue(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "slow", "--image", built.testfn, "--max", "4", "--concurrency", "1",
		"--queue", "50", "--timeout", "5s", "--idle", "1s")
	const callers = 200
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		codes    = map[int]int{}
		slowest  time.Duration
		peakSeen int
	)
	stop := make(chan struct{})
	go func() { // the instance count never passes --max
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			pids := a.programPids("slow")
			mu.Lock()
			if len(pids) > peakSeen && len(pids) > 4 {
				for _, pid := range pids {
					b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
					st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
					t.Logf("pid %d cmdline %q stat %.60s", pid, b, st)
				}
			}
			peakSeen = max(peakSeen, len(pids))
			mu.Unlock()
		}
	}()
	client := &http.Client{Timeout: 30 * time.Second}
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			resp, err := client.Post(a.gw+"/function/slow/sleep?for=100ms", "text/plain", nil)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			slowest = max(slowest, d)
			if err != nil {
				codes[-1]++
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[resp.StatusCode]++
			if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
				codes[-2]++
			}
		}()
	}
	wg.Wait()
	close(stop)
	t.Logf("answers %v, slowest %s, most sandbox processes seen %d", codes, slowest, peakSeen)
	if codes[200]+codes[429] != callers {
		t.Fatalf("every call must succeed or be throttled: %v", codes)
	}
	if codes[200] < 4 || codes[429] == 0 {
		t.Fatalf("want some of each with 4 instances and a queue of 50: %v", codes)
	}
	if codes[-2] != 0 {
		t.Fatalf("%d answers 429 without Retry-After", codes[-2])
	}
	if slowest > 5*time.Second+2*time.Second { // the function timeout bounds queueing
		t.Fatalf("a call took %s, past its deadline", slowest)
	}
	if peakSeen > 4 {
		t.Fatalf("saw %d function processes, --max is 4", peakSeen)
	}
	waitFor(t, 15*time.Second, "the burst's instances to stop", func() bool {
		return a.instances("slow") == 0 && len(a.programPids("slow")) == 0
	})
}

// agentResources counts what a leak would grow.
type agentResources struct{ goroutines, fds, sandboxes, cgroups int }

func (a *agentProc) resources() agentResources {
	a.t.Helper()
	var r agentResources
	resp := a.adminGet("/debug/pprof/goroutine?debug=1")
	if _, err := fmt.Sscanf(resp, "goroutine profile: total %d", &r.goroutines); err != nil {
		a.t.Fatalf("goroutine profile %q: %v", resp[:min(len(resp), 80)], err)
	}
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(a.cmd.Process.Pid) + "/fd")
	r.fds = len(fds)
	sbs, _ := os.ReadDir(a.state + "/sandboxes")
	r.sandboxes = len(sbs)
	cgs, _ := os.ReadDir("/sys/fs/cgroup/memory/" + a.cgroupParent)
	for _, e := range cgs {
		if e.IsDir() {
			r.cgroups++
		}
	}
	return r
}

func TestTenThousandCallsLeakNothing(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "echo", "--image", built.testfn, "--max", "2", "--concurrency", "4")
	a.mustCLI("deploy", "sh", "--image", built.busybox, "--env", "SCRIPT=cat", "--max", "2", "--concurrency", "4")
	warm := func(n int) {
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 4 {
					fn := "echo"
					if i%10 == 0 {
						fn = "sh" // exec mode: a process per call
					}
					resp, err := http.Post(a.gw+"/function/"+fn, "text/plain", strings.NewReader("x"))
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("call %d: %d", i, resp.StatusCode)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	warm(200)
	before := a.resources()
	warm(10_000)
	var after agentResources
	// Background destroys and idle connections settle within a moment.
	waitFor(t, 10*time.Second, "resources to settle", func() bool {
		after = a.resources()
		return after.goroutines <= before.goroutines+5 && after.fds <= before.fds+5 &&
			after.sandboxes <= before.sandboxes && after.cgroups <= before.cgroups
	})
	t.Logf("before %+v after %+v", before, after)
}

func TestUpdateUnderLoadFailsNothing(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "svc", "--image", built.testfn, "--env", "V=1", "--concurrency", "4")
	a.call(http.MethodGet, "/function/svc/env?k=V", "").want(t, 200, "ok")
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		seen     = map[string]int{}
	)
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(a.gw + "/function/svc/env?k=V")
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, b))
					} else {
						seen[string(b)]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	for v := 2; v <= 4; v++ {
		a.mustCLI("deploy", "svc", "--image", built.testfn, "--env", fmt.Sprintf("V=%d", v), "--concurrency", "4")
		want := strconv.Itoa(v)
		waitFor(t, 10*time.Second, "version "+want+" to answer", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return seen[want] > 20
		})
	}
	close(stop)
	wg.Wait()
	t.Logf("answers per version: %v", seen)
	if len(failures) > 0 {
		t.Fatalf("%d failed calls during updates, first: %s", len(failures), failures[0])
	}
	waitFor(t, 10*time.Second, "old versions to drain", func() bool { return len(a.programPids("svc")) == 1 })
}

func TestGracefulStopFinishesCallsInFlight(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "slow", "--image", built.testfn)
	a.call(http.MethodPost, "/function/slow", "").want(t, 200, "ok") // warm
	done := make(chan answer)
	go func() {
		resp, err := http.Post(a.gw+"/function/slow/sleep?for=1500ms", "text/plain", nil)
		if err != nil {
			done <- answer{code: -1, body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- answer{code: resp.StatusCode, body: string(b)}
	}()
	waitFor(t, 5*time.Second, "the call to be in flight", func() bool {
		return strings.Contains(a.metricsText(), `edgefaas_invocations_in_flight{function="slow"} 1`)
	})
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ans := <-done
	if ans.code != 200 || ans.body != "slept 1.5s" {
		t.Fatalf("call in flight during stop: %d %q", ans.code, ans.body)
	}
	if err := a.cmd.Wait(); err != nil {
		t.Fatalf("agent exit: %v\n%s", err, a.logs.String())
	}
	if pids := a.sandboxPids("slow"); len(pids) != 0 {
		t.Fatalf("sandbox processes after a clean stop: %v", pids)
	}
}

// adminGet fetches a path from the admin socket.
func (a *agentProc) adminGet(path string) string {
	a.t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", a.sock)
	}}}
	resp, err := hc.Get("http://agent" + path)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		a.t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return string(b)
}

// metricsText is the gateway's /metrics page.
func (a *agentProc) metricsText() string {
	a.t.Helper()
	resp, err := http.Get(a.gw + "/metrics")
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestPrewarmedSandboxServesTheNextColdStart(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "pw", "--image", built.testfn, "--idle", "1s")
	a.call(http.MethodPost, "/function/pw", "x").want(t, 200, "ok")
	waitFor(t, 10*time.Second, "scale to zero", func() bool { return a.instances("pw") == 0 })
	var held []int
	waitFor(t, 10*time.Second, "one prewarmed sandbox", func() bool {
		held = a.sandboxPids("pw")
		return len(held) == 1 && len(a.programPids("pw")) == 0
	})
	ans := a.call(http.MethodPost, "/function/pw", "y").want(t, 200, "ok")
	if ans.header.Get("X-Faas-Cold-Start") != "true" {
		t.Fatal("a call with no instance running not marked cold")
	}
	// The parked init became the function: same pid, now the program.
	if got := a.programPids("pw"); len(got) != 1 || got[0] != held[0] {
		t.Fatalf("function runs as %v, the prewarmed init was %v", got, held)
	}
	// And it is replaced by a new prewarmed one.
	waitFor(t, 10*time.Second, "a new prewarmed sandbox", func() bool { return len(a.sandboxPids("pw")) == 2 })

	// With --prewarm -1 nothing is left once idle.
	b := startAgent(t, "--prewarm", "-1")
	b.mustCLI("deploy", "pw", "--image", built.testfn, "--idle", "1s")
	b.call(http.MethodPost, "/function/pw", "x").want(t, 200, "ok")
	waitFor(t, 10*time.Second, "scale to zero without prewarming", func() bool {
		return b.instances("pw") == 0 && len(b.sandboxPids("pw")) == 0
	})
}

func TestRecycleAfterNCalls(t *testing.T) {
	a := startAgent(t, "--prewarm", "-1")
	a.mustCLI("deploy", "rec", "--image", built.testfn, "--recycle-after", "3", "--max", "1")
	var ids []string // the instance (its start time) that served each call
	for range 7 {
		ids = append(ids, a.call(http.MethodGet, "/function/rec/id", "").want(t, 200, "ok").body)
	}
	for i, id := range ids {
		if same := i%3 != 0; same != (i > 0 && id == ids[i-1]) {
			t.Fatalf("instances per call %v: want a new one every 3 calls", ids)
		}
	}
}
