// Package testbrowser drives a real headless Chromium (Debian's package)
// from tests, with chromedp: the dashboard's tests in package controller
// and the integration tests share it. It is for tests only.
package testbrowser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path finds the browser. CI installs it (.ci/run), so a missing one fails
// there rather than skipping quietly; EDGEFAAS_SKIP_BROWSER=1 lets a
// machine without it skip.
func Path(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("EDGEFAAS_SKIP_BROWSER") == "1" {
		t.Skip("no chromium, and EDGEFAAS_SKIP_BROWSER=1")
	}
	t.Fatal("the dashboard's browser tests need chromium (apt-get install chromium, as .ci/run does); " +
		"set EDGEFAAS_SKIP_BROWSER=1 to skip them")
	return ""
}

// Browser is one headless Chromium with one tab, closed (and waited for)
// when the test ends.
type Browser struct {
	t   testing.TB
	Ctx context.Context
}

// Start starts the browser at path.
func Start(t testing.TB, path string) *Browser {
	t.Helper()
	// Our own profile directory: when the test ends, no process may still
	// name it (a leftover renderer or zygote).
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.UserDataDir(profile),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU) // NoSandbox: tests run as root
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		_ = chromedp.Cancel(cctx) // closes the browser gracefully
		ccancel()
		cancelTimeout()
		cancel()
		cancelAlloc() // waits for the browser process
		deadline := time.Now().Add(10 * time.Second)
		for len(ProcessesNaming(profile)) > 0 {
			if time.Now().After(deadline) {
				t.Errorf("chromium processes left: %v", ProcessesNaming(profile))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return &Browser{t: t, Ctx: ctx}
}

// ProcessesNaming lists the pids whose command line holds s.
func ProcessesNaming(s string) []string {
	var out []string
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), s) {
			out = append(out, filepath.Base(filepath.Dir(f)))
		}
	}
	return out
}

// Do runs steps, failing the test on an error.
func (b *Browser) Do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.Ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

// Eval evaluates js in the page.
func Eval[T any](b *Browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// TextOf is a script giving the text of the first element sel matches,
// "" when none.
func TextOf(sel string) string {
	q, _ := json.Marshal(sel)
	return fmt.Sprintf(`(document.querySelector(%s) || {}).textContent || ""`, q)
}

// WaitText polls the page until the text of sel holds every want, across
// page loads (a click's, or the page refreshing itself), and returns it
// with its runs of white space made single spaces.
func (b *Browser) WaitText(sel string, want ...string) string {
	b.t.Helper()
	return b.WaitTextFor(15*time.Second, sel, want...)
}

// WaitTextFor is WaitText with its own timeout.
func (b *Browser) WaitTextFor(timeout time.Duration, sel string, want ...string) string {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	var got string
	for {
		ctx, cancel := context.WithTimeout(b.Ctx, 2*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](TextOf(sel)))
		cancel()
		if err == nil { // a navigation in progress fails the call: try again
			got = strings.Join(strings.Fields(v), " ")
			if containsAll(got, want) {
				return got
			}
		}
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(b.Ctx, chromedp.Location())
			b.t.Fatalf("%s on %s: %q, want %q", sel, loc, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containsAll(s string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}
