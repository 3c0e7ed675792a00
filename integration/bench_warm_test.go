package integration

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
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
	pids := a.sandboxPids(fn)
	if len(pids) == 0 {
		t.Fatalf("no sandbox process of %s", fn)
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
