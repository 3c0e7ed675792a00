package integration

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The footprint bars. The issue sets the agent's for arm64, the smallest
// gateways' architecture; the same bar is applied to every binary and
// architecture here so that a regression shows wherever it lands first.
const (
	footprintSizeBar = 20 << 20 // bytes, stripped binary
	footprintRSSBar  = 15 << 20 // bytes, agent VmRSS when idle with 10 functions
	footprintFuncs   = 10
)

// BenchmarkFootprint prints the size of the stripped binaries per
// architecture, built as `make cross` builds them (packaging/cross.sh: cgo,
// -s -w, -trimpath), and the agent's resident memory when idle with ten
// functions deployed (five http mode, five exec mode): first with none
// invoked, then after each was invoked once (every function then has its
// instance running) and the agent went idle again. The agent measured is
// the stripped amd64 build, the one the package ships. VmRSS is split into
// anon (the agent's heap and stacks) and file (mapped pages of the binary
// and libc: clean page cache, which on this kernel is mapped in whole large
// folios, so nearly all of a binary already in the page cache counts).
// Architectures whose cross compiler is missing are skipped with the reason.
func BenchmarkFootprint(b *testing.B) {
	dist := b.TempDir()
	var archs []string
	var skipped []string
	for _, arch := range []struct{ name, cc string }{
		{"amd64", "gcc"}, {"arm64", "aarch64-linux-gnu-gcc"}, {"armv7", "arm-linux-gnueabihf-gcc"},
	} {
		if _, err := exec.LookPath(arch.cc); err != nil {
			skipped = append(skipped, fmt.Sprintf("linux/%s skipped: no %s (make cross installs it)", arch.name, arch.cc))
			continue
		}
		archs = append(archs, arch.name)
	}
	cmd := exec.Command(filepath.Join(built.moduleRoot, "packaging/cross.sh"), archs...)
	cmd.Dir = built.moduleRoot
	cmd.Env = append(os.Environ(), "DIST="+dist)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("packaging/cross.sh %s: %v\n%s", strings.Join(archs, " "), err, out)
	}

	fmt.Printf("\nfootprint: stripped binaries (cgo, -s -w, -trimpath), as make cross builds them\n")
	fmt.Printf("%-26s %12s %12s %8s\n", "binary", "size", "bar", "ratio")
	for _, arch := range archs {
		for _, name := range []string{"edgefaasd", "edgefaas"} {
			fi, err := os.Stat(filepath.Join(dist, name+"_linux_"+arch))
			if err != nil {
				b.Fatal(err)
			}
			footprintRow(26, fmt.Sprintf("%s linux/%s", name, arch), fi.Size(), footprintSizeBar)
			b.ReportMetric(footprintMiB(fi.Size()), fmt.Sprintf("%s-%s-MiB", name, arch))
		}
	}
	for _, s := range skipped {
		fmt.Println(s)
	}

	// The agent under test is the shipped (stripped) amd64 binary.
	orig := built.edgefaasd
	b.Cleanup(func() { built.edgefaasd = orig })
	built.edgefaasd = filepath.Join(dist, "edgefaasd_linux_amd64")
	a := startAgent(b)
	pid := a.cmd.Process.Pid
	start := footprintSettledRSS(b, pid)
	for i := range footprintFuncs {
		name := fmt.Sprintf("fp-%d", i)
		if i%2 == 0 {
			a.mustCLI("deploy", name, "--image", built.testfn)
		} else {
			a.mustCLI("deploy", name, "--image", built.busybox, "--env", "SCRIPT=cat")
		}
	}
	deployed := footprintSettledRSS(b, pid)
	for i := range footprintFuncs {
		path := fmt.Sprintf("/function/fp-%d", i)
		if i%2 == 0 {
			path += "/echo"
		}
		a.call(http.MethodPost, path, "hi").want(b, 200, "ok")
	}
	warm := footprintSettledRSS(b, pid)

	fmt.Printf("\nfootprint: edgefaasd VmRSS (linux/amd64, stripped), settled; anon + file = VmRSS\n")
	fmt.Printf("%-40s %12s %12s %12s %12s %8s\n", "when", "anon", "file", "VmRSS", "bar", "ratio")
	for _, row := range []struct {
		what, key string
		r         rss
	}{
		{"started, no function", "start", start},
		{fmt.Sprintf("idle, %d deployed, none invoked", footprintFuncs), "idle-deployed", deployed},
		{fmt.Sprintf("idle, %d deployed, each invoked once", footprintFuncs), "idle-invoked", warm},
	} {
		fmt.Printf("%-40s %8.2f MiB %8.2f MiB ", row.what, footprintMiB(row.r.anon), footprintMiB(row.r.file))
		footprintRow(0, "", row.r.total, footprintRSSBar)
		b.ReportMetric(footprintMiB(row.r.total), "rss-"+row.key+"-MiB")
		b.ReportMetric(footprintMiB(row.r.anon), "rss-anon-"+row.key+"-MiB")
	}
	b.ReportMetric(float64(deployed.total)/footprintRSSBar, "rss-idle-deployed-ratio")
}

// footprintRow prints one figure next to its bar and their ratio.
func footprintRow(width int, what string, v, bar int64) {
	flag := ""
	if v > bar {
		flag = "  OVER THE BAR"
	}
	if width > 0 {
		fmt.Printf("%-*s ", width, what)
	}
	fmt.Printf("%8.2f MiB %8.0f MiB %7.2fx%s\n", footprintMiB(v), footprintMiB(bar), float64(v)/float64(bar), flag)
}

func footprintMiB(v int64) float64 { return float64(v) / (1 << 20) }

// footprintSettledRSS polls the process's VmRSS every 250 ms until it has
// moved by at most 64 KiB over the last 2 s (the Go runtime's background
// scavenger and the agent's periodic work have settled), for at most 60 s,
// and returns the last reading.
func footprintSettledRSS(b *testing.B, pid int) rss {
	b.Helper()
	const (
		every  = 250 * time.Millisecond
		window = 8 // readings: 2 s
		slack  = 64 << 10
	)
	var last []int64
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := procRSS(pid)
		if err != nil {
			b.Fatal(err)
		}
		last = append(last, r.total)
		if len(last) > window {
			last = last[1:]
		}
		if len(last) == window {
			lo, hi := last[0], last[0]
			for _, v := range last {
				lo, hi = min(lo, v), max(hi, v)
			}
			if hi-lo <= slack {
				return r
			}
		}
		if time.Now().After(deadline) {
			b.Logf("VmRSS of %d did not settle within 60s (last readings %v): reporting the last", pid, last)
			return r
		}
		time.Sleep(every)
	}
}

// rss is a process's resident memory, in bytes, from /proc/PID/status:
// VmRSS is the sum of RssAnon (heap, stacks: the process's own), RssFile
// (mapped file pages: mostly the binary's text and rodata, clean page cache
// the kernel can drop and read back) and RssShmem.
type rss struct{ total, anon, file int64 }

func procRSS(pid int) (rss, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return rss{}, err
	}
	defer f.Close()
	var r rss
	fields := map[string]*int64{"VmRSS:": &r.total, "RssAnon:": &r.anon, "RssFile:": &r.file}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, v, _ := strings.Cut(sc.Text(), "\t")
		dst, ok := fields[key]
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return rss{}, fmt.Errorf("/proc/%d/status: %s %q: %w", pid, key, v, err)
		}
		*dst = kb << 10
		delete(fields, key)
	}
	if err := sc.Err(); err != nil {
		return rss{}, err
	}
	if len(fields) > 0 {
		return rss{}, fmt.Errorf("/proc/%d/status: no %v", pid, fields)
	}
	return r, nil
}
