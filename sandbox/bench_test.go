package sandbox_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/cgroups"
	"github.com/edgefaas/edgefaas/internal/testroot"
	"github.com/edgefaas/edgefaas/sandbox"
)

// BenchmarkPhases prints where a cold exec-mode start spends its time: the
// held sandbox's creation, the first exec into it, and destruction.
func BenchmarkPhases(b *testing.B) {
	testroot.RequireRoot(b)
	m, err := sandbox.NewManager(sandbox.Config{StateDir: b.TempDir(), CgroupParent: "edgefaas-bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = cgroups.Cleanup(m.CgroupMode(), "edgefaas-bench") })
	root := testroot.Busybox(b)
	var create, exec, destroy []time.Duration
	for i := range 20 {
		s := spec(root, "/bin/cat")
		s.ID = fmt.Sprint("bench-", i)
		s.Hold = true
		t0 := time.Now()
		sb, err := m.Create(context.Background(), s)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		var out strings.Builder
		if _, err := sb.Exec(context.Background(), sandbox.Process{Args: []string{"/bin/cat"}, Stdin: strings.NewReader("x"), Stdout: &out}); err != nil || out.String() != "x" {
			b.Fatal(err, out.String())
		}
		t2 := time.Now()
		if err := sb.Destroy(); err != nil {
			b.Fatal(err)
		}
		create, exec, destroy = append(create, t1.Sub(t0)), append(exec, t2.Sub(t1)), append(destroy, time.Since(t2))
	}
	for _, p := range []struct {
		name string
		d    []time.Duration
	}{{"create (held)", create}, {"first exec", exec}, {"destroy", destroy}} {
		slices.Sort(p.d)
		fmt.Printf("%-14s p50 %6.1fms  p90 %6.1fms\n", p.name, float64(p.d[len(p.d)/2])/1e6, float64(p.d[len(p.d)*9/10])/1e6)
	}
}
