package sandbox_test

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/cgroups"
	"github.com/edgefaas/edgefaas/internal/testroot"
	"github.com/edgefaas/edgefaas/sandbox"
)

// BenchmarkPhases prints where a cold start spends its time, phase by
// phase, for both modes: creating the sandbox (libcontainer's Create, then
// the held init's Start: re-exec of this binary, namespaces, cgroups,
// mounts), then for an exec-mode call the exec of a process into it, for an
// http-mode one the init's run of its program until the port listens
// (busybox httpd); and destruction. `runc --version` is printed beside
// them: the cost of starting a Go binary, which runc run pays on top.
func BenchmarkPhases(b *testing.B) {
	testroot.RequireRoot(b)
	m, err := sandbox.NewManager(sandbox.Config{StateDir: b.TempDir(), CgroupParent: "edgefaas-bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = cgroups.Cleanup(m.CgroupMode(), "edgefaas-bench") })
	root := testroot.Busybox(b)
	phases := map[string][]time.Duration{}
	add := func(name string, d time.Duration) { phases[name] = append(phases[name], d) }
	for i := range 20 {
		// exec mode: held sandbox, then one process exec'd into it.
		s := spec(root, "/bin/cat")
		s.ID, s.Hold = fmt.Sprint("bench-e", i), true
		sb, err := m.Create(context.Background(), s)
		if err != nil {
			b.Fatal(err)
		}
		tm := sb.Timings()
		add("1 create: libcontainer.Create", tm.Create)
		add("2 create: start held init", tm.Start)
		add("3 create: attach (cgroups, netns fd)", tm.Attach)
		t0 := time.Now()
		var out strings.Builder
		if _, err := sb.Exec(context.Background(), sandbox.Process{Args: []string{"/bin/cat"}, Stdin: strings.NewReader("x"), Stdout: &out}); err != nil || out.String() != "x" {
			b.Fatal(err, out.String())
		}
		add("4 exec mode: exec cat, to its exit", time.Since(t0))
		t0 = time.Now()
		if err := sb.Destroy(); err != nil {
			b.Fatal(err)
		}
		add("7 destroy", time.Since(t0))

		// http mode: held sandbox whose init runs httpd, until it listens.
		s = spec(root, "/bin/busybox", "httpd", "-f", "-p", "8080")
		s.ID, s.Hold = fmt.Sprint("bench-h", i), true
		if sb, err = m.Create(context.Background(), s); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if err := sb.Run(); err != nil {
			b.Fatal(err)
		}
		add("5 http mode: run init (exec fifo)", time.Since(t0))
		for {
			if up, _ := sb.Listening(8080); up {
				break
			}
			if time.Since(t0) > 5*time.Second {
				b.Fatal("httpd never listened")
			}
			time.Sleep(50 * time.Microsecond)
		}
		add("6 http mode: run to listening", time.Since(t0))
		_ = sb.Destroy()

		if i < 10 {
			t0 = time.Now()
			if err := exec.Command("runc", "--version").Run(); err == nil {
				add("8 runc --version (a Go CLI start)", time.Since(t0))
			}
		}
	}
	names := slices.Sorted(maps.Keys(phases))
	fmt.Printf("\ncold start phases, %d runs each\n", len(phases[names[0]]))
	for _, name := range names {
		d := phases[name]
		slices.Sort(d)
		fmt.Printf("%-40s p50 %6.2fms  p90 %6.2fms\n", name[2:], float64(d[len(d)/2])/1e6, float64(d[len(d)*9/10])/1e6)
		b.ReportMetric(float64(d[len(d)/2])/1e6, strings.ReplaceAll(name[2:], " ", "_")+"-ms")
	}
}
