package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkWarmInvoke times a warm http-mode call through the gateway (and
// so with its activation record committed) against the same function server
// called directly inside its network namespace, in one run.
func BenchmarkWarmInvoke(b *testing.B) {
	const samples = 2000
	a := startAgent(b)
	a.mustCLI("deploy", "warm", "--image", built.testfn)
	a.call(http.MethodPost, "/function/warm/echo", "hi").want(b, 200, "ok")

	direct := a.directConn(b, "warm")
	defer direct.Close()
	br := bufio.NewReader(direct)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	var viaGateway, viaDirect []time.Duration
	for range samples {
		start := time.Now()
		resp, err := client.Post(a.gw+"/function/warm/echo", "text/plain", strings.NewReader("hi"))
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(err, resp)
		}
		_, _ = resp.Body.Read(make([]byte, 64))
		resp.Body.Close()
		viaGateway = append(viaGateway, time.Since(start))

		start = time.Now()
		fmt.Fprintf(direct, "POST /echo HTTP/1.1\r\nHost: f\r\nContent-Length: 2\r\n\r\nhi")
		dr, err := http.ReadResponse(br, nil)
		if err != nil || dr.StatusCode != 200 {
			b.Fatal(err)
		}
		_, _ = dr.Body.Read(make([]byte, 64))
		dr.Body.Close()
		viaDirect = append(viaDirect, time.Since(start))
	}
	g50, d50 := pct(viaGateway, 50), pct(viaDirect, 50)
	fmt.Printf("\nwarm http invoke, %d calls each, one connection each\n", samples)
	fmt.Printf("%-34s %10s %10s %10s\n", "p50", "gateway", "direct", "added")
	fmt.Printf("%-34s %10s %10s %8.0fus\n", "echo (Go server), with metering", us(g50), us(d50), float64(g50-d50)/1e3)
	fmt.Printf("%-34s %10s %10s\n", "p90", us(pct(viaGateway, 90)), us(pct(viaDirect, 90)))
	b.ReportMetric(float64(g50)/1e3, "gateway-p50-us")
	b.ReportMetric(float64(d50)/1e3, "direct-p50-us")
	b.ReportMetric(float64(g50-d50)/1e3, "added-p50-us")
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fus", float64(d)/1e3) }

// directConn dials the function's port inside its sandbox's network
// namespace, as the agent itself does.
func (a *agentProc) directConn(t testing.TB, fn string) net.Conn {
	pids := a.programPids(fn) // not a prewarmed sandbox's parked init
	if len(pids) == 0 {
		t.Fatalf("no running process of %s", fn)
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pids[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := dialIn(ns, "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// BenchmarkWarmThroughput drives a trivial http-mode function with 16
// concurrent keep-alive callers for 2 s through the gateway and 2 s
// directly inside its network namespace (twice each, interleaved), and
// prints calls per second and the ratio. The load generator shares the
// machine's cores with both, equally.
func BenchmarkWarmThroughput(b *testing.B) {
	const callers, span = 16, 2 * time.Second
	a := startAgent(b)
	a.mustCLI("deploy", "tput", "--image", built.testfn, "--concurrency", "16", "--max", "1")
	a.call(http.MethodPost, "/function/tput", "hi").want(b, 200, "ok")
	gateway := func() int64 {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: callers}}
		return drive(callers, span, func() error {
			resp, err := client.Post(a.gw+"/function/tput", "text/plain", strings.NewReader("hi"))
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	}
	direct := func() int64 {
		conns := make(chan *bufio.ReadWriter, callers)
		for range callers {
			c := a.directConn(b, "tput")
			defer c.Close()
			conns <- bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c))
		}
		return drive(callers, span, func() error {
			rw := <-conns
			defer func() { conns <- rw }()
			fmt.Fprintf(rw, "POST / HTTP/1.1\r\nHost: f\r\nContent-Length: 2\r\n\r\nhi")
			if err := rw.Flush(); err != nil {
				return err
			}
			resp, err := http.ReadResponse(rw.Reader, nil)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		})
	}
	var g, d int64
	for range 2 {
		d += direct()
		g += gateway()
	}
	secs := 2 * span.Seconds()
	fmt.Printf("\nwarm throughput, trivial function, %d concurrent callers, %d CPUs\n", callers, runtime.NumCPU())
	fmt.Printf("%-20s %12s %12s %8s\n", "", "gateway", "direct", "ratio")
	fmt.Printf("%-20s %10.0f/s %10.0f/s %7.2fx\n", "calls per second", float64(g)/secs, float64(d)/secs, float64(g)/float64(d))
	b.ReportMetric(float64(g)/secs, "gateway-calls/s")
	b.ReportMetric(float64(d)/secs, "direct-calls/s")
	b.ReportMetric(float64(g)/float64(d), "ratio")
}

// drive runs call from n goroutines for span and counts the calls that
// succeeded; any failure ends the benchmark.
func drive(n int, span time.Duration, call func() error) int64 {
	var total atomic.Int64
	var failed atomic.Value
	end := time.Now().Add(span)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if err := call(); err != nil {
					failed.Store(err)
					return
				}
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		panic(fmt.Sprintf("load failed: %v", err))
	}
	return total.Load()
}
