package integration

import (
	"bufio"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogsFollowLive(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "talker", "--image", built.testfn)
	a.call(http.MethodGet, "/function/talker/log", "").want(t, 200, "ok")

	cmd := exec.Command(built.edgefaas, "logs", "talker", "-f")
	cmd.Env = append(os.Environ(), "EDGEFAAS_AGENT=unix://"+a.sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var mu sync.Mutex
	var seen []string
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			seen = append(seen, sc.Text())
			mu.Unlock()
		}
	}()
	has := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range seen {
			if strings.Contains(l, s) {
				return true
			}
		}
		return false
	}
	waitFor(t, 5*time.Second, "the earlier line", func() bool { return has("to stderr") })
	// A call made while following shows up live, with its call id.
	ans := a.call(http.MethodGet, "/function/talker/log", "").want(t, 200, "ok")
	id := ans.header.Get("X-Call-Id")
	waitFor(t, 5*time.Second, "the live line", func() bool { return has("log line for " + id) })

	// Exec mode: stderr of one call carries its call id, and --call selects it.
	a.mustCLI("deploy", "sh", "--image", built.busybox, "--env", `SCRIPT=echo "exec stderr" >&2`)
	id = a.call(http.MethodPost, "/function/sh", "").want(t, 200, "ok").header.Get("X-Call-Id")
	if out := a.mustCLI("logs", "sh", "--call", id); !strings.Contains(out, "["+id+"] exec stderr") {
		t.Fatalf("logs --call: %q", out)
	}
}

func TestLogBudgetHoldsAgainstA100MBSpew(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "spew", "--image", built.testfn, "--timeout", "60s")
	a.mustCLI("deploy", "quiet", "--image", built.testfn)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.call(http.MethodGet, "/function/spew/spew?mb=100", "").want(t, 200, "ok")
	}()
	// While the noisy one spews, the quiet one's lines are all kept.
	var ids []string
	for range 20 {
		ids = append(ids, a.call(http.MethodGet, "/function/quiet/log", "").want(t, 200, "ok").header.Get("X-Call-Id"))
	}
	<-done
	out := a.mustCLI("logs", "quiet")
	for _, id := range ids {
		if !strings.Contains(out, "log line for "+id) {
			t.Fatalf("quiet function lost its line for call %s", id)
		}
	}
	var size int64
	_ = filepath.WalkDir(filepath.Join(a.state, "logs", "spew"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
		}
		return nil
	})
	if size == 0 || size > 4<<20+64<<10 {
		t.Fatalf("spew's logs take %d bytes on disk, want within the 4 MiB budget", size)
	}
	if out := a.mustCLI("logs", "spew"); !strings.Contains(out, "dropped") {
		t.Fatalf("no notice of dropped output in %d bytes of logs", len(out))
	}
}
