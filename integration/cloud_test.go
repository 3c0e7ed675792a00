package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/controller"
)

// cloudProc is a running edgecloud on a loopback port that stays the same
// across restarts (agents keep its URL).
type cloudProc struct {
	t      testing.TB
	dir    string
	addr   string
	url    string
	ca     string // with TLS: the PEM of its self-signed certificate
	cmd    *exec.Cmd
	logs   *syncBuffer
	client *controller.Client
	tls    *tls.Config // with TLS: trusts ca
}

func startCloud(t testing.TB) *cloudProc { return startCloudWith(t, false) }

// startCloudWith starts edgecloud, serving HTTPS with a self-signed
// certificate for 127.0.0.1 when withTLS.
func startCloudWith(t testing.TB, withTLS bool) *cloudProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &cloudProc{t: t, dir: t.TempDir(), addr: addr, url: "http://" + addr}
	if withTLS {
		c.url = "https://" + addr
		c.ca = selfSigned(t, c.dir)
		pool := x509.NewCertPool()
		pem, _ := os.ReadFile(c.ca)
		pool.AppendCertsFromPEM(pem)
		c.tls = &tls.Config{RootCAs: pool}
	}
	c.start()
	t.Cleanup(c.stop)
	return c
}

// selfSigned writes cert.pem and key.pem for 127.0.0.1 into dir and
// returns the certificate's path.
func selfSigned(t testing.TB, dir string) string {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edgecloud test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath
}

func (c *cloudProc) start() {
	t := c.t
	t.Helper()
	c.logs = &syncBuffer{}
	args := []string{"serve", "--listen", c.addr, "--data-dir", c.dir, "--ping", "2s", "--health", "1s"}
	if c.ca != "" {
		args = append(args, "--tls-cert", c.ca, "--tls-key", filepath.Join(c.dir, "key.pem"))
	}
	c.cmd = exec.Command(built.edgecloud, args...)
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: c.tls}}
	waitFor(t, 10*time.Second, "edgecloud to serve", func() bool {
		resp, err := hc.Get(c.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	token, err := os.ReadFile(filepath.Join(c.dir, controller.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if c.client, err = controller.NewClient(c.url, strings.TrimSpace(string(token))); err != nil {
		t.Fatal(err)
	}
	if c.tls != nil {
		c.client.WithTLS(c.tls)
	}
}

func (c *cloudProc) stop() { terminate(c.t, c.cmd, c.logs) }

// cli runs the edgecloud binary against this controller.
func (c *cloudProc) cli(args ...string) (string, error) {
	args = append(args, "--controller", c.url, "--data-dir", c.dir)
	if c.ca != "" {
		args = append(args, "--ca", c.ca)
	}
	out, err := exec.Command(built.edgecloud, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("edgecloud %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (c *cloudProc) token(labels string) string {
	c.t.Helper()
	out, err := c.cli("token", "create", "--labels", labels)
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// invocations is what the controller holds for a device, summed.
func (c *cloudProc) invocations(device string) int64 {
	c.t.Helper()
	rows, err := c.client.Usage(context.Background(), controller.UsageQuery{Device: device})
	if err != nil {
		return -1
	}
	var n int64
	for _, r := range rows {
		n += r.Invocations
	}
	return n
}

// checkStored stops the controller and counts in its database: records,
// distinct call ids and the highest seq of the device must all be want.
func (c *cloudProc) checkStored(device string, want int64) {
	t := c.t
	t.Helper()
	c.stop()
	s, err := controller.OpenStore(context.Background(), c.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, ids, maxSeq, err := s.UsageRecords(context.Background(), device)
	if err != nil {
		t.Fatal(err)
	}
	if recs != want || ids != want || maxSeq != want {
		t.Fatalf("controller holds %d records, %d distinct call ids, highest seq %d; want %d of each", recs, ids, maxSeq, want)
	}
}

// startCloudAgent starts an agent enrolled at c with a fresh token.
func startCloudAgent(t testing.TB, c *cloudProc, flags ...string) (*agentProc, string) {
	t.Helper()
	cloudFlags := []string{"--cloud", c.url, "--enroll", c.token("site=test,tier=edge"), "--cloud-max-backoff", "1s"}
	if c.ca != "" {
		cloudFlags = append(cloudFlags, "--cloud-ca", c.ca)
	}
	a := startAgent(t, append(cloudFlags, flags...)...)
	var device string
	waitFor(t, 20*time.Second, "the agent's cloud link", func() bool {
		st := a.cloud()
		device = st.DeviceID
		return st.Connected
	})
	return a, device
}

func (a *agentProc) cloud() api.CloudStatus {
	info, err := a.client().Info(context.Background())
	if err != nil || info.Cloud == nil {
		return api.CloudStatus{}
	}
	return *info.Cloud
}

// hammer makes n calls to the function over w workers and returns the
// call ids answered.
func (a *agentProc) hammer(t testing.TB, fn string, n, w int) map[string]bool {
	t.Helper()
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	next := make(chan struct{})
	errs := make(chan error, w)
	for range w {
		wg.Go(func() {
			for range next {
				resp, err := http.Post(a.gw+"/function/"+fn+"/echo", "text/plain", strings.NewReader("x"))
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d %s", resp.StatusCode, resp.Header.Get("X-Faas-Status"))
					return
				}
				mu.Lock()
				ids[resp.Header.Get("X-Call-Id")] = true
				mu.Unlock()
			}
		})
	}
	func() {
		defer close(next)
		for range n {
			select {
			case next <- struct{}{}:
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("call failed: %v", err)
	default:
	}
	if len(ids) != n {
		t.Fatalf("%d distinct call ids for %d calls", len(ids), n)
	}
	return ids
}

// TestCloudEnrolInvokeUsage: an agent enrolled with a token shows at the
// controller with its labels and inventory, and its invocations arrive.
func TestCloudEnrolInvokeUsage(t *testing.T) {
	c := startCloud(t)
	a, device := startCloudAgent(t, c)
	a.mustCLI("deploy", "hello", "--image", built.testfn, "--memory", "64Mi")
	for range 20 {
		a.call(http.MethodPost, "/function/hello/echo", "x").want(t, 200, "ok")
	}
	waitFor(t, 30*time.Second, "20 invocations at the controller", func() bool { return c.invocations(device) == 20 })
	out, err := c.cli("usage", "--device", device)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "hello") || !strings.Contains(out, " 20 ") {
		t.Fatalf("edgecloud usage:\n%s", out)
	}
	// The inventory follows the deploy (sent again with the next health
	// report once it changed), with labels and state.
	var d controller.DeviceStatus
	waitFor(t, 20*time.Second, "the inventory to list hello", func() bool {
		var err error
		d, err = c.client.Device(context.Background(), device)
		return err == nil && d.Inventory != nil && len(d.Inventory.Functions) == 1 &&
			d.Inventory.Functions[0].Name == "hello" && d.Inventory.Functions[0].Version == 1
	})
	if !d.Online || d.Labels["site"] != "test" || d.Inventory.Version == "" || d.Inventory.CgroupMode == "" ||
		d.Inventory.Resources == nil || d.Inventory.Resources.CPUs < 1 {
		t.Fatalf("device %+v", d)
	}
	waitFor(t, 20*time.Second, "a health report", func() bool {
		d, err := c.client.Device(context.Background(), device)
		return err == nil && d.Health != nil && d.Health.Instances == 1 && d.Health.ResidentBytes > 0
	})
	out, err = c.cli("devices")
	if err != nil || !strings.Contains(out, device) || !strings.Contains(out, "online") || !strings.Contains(out, "site=test,tier=edge") {
		t.Fatalf("edgecloud devices: %v\n%s", err, out)
	}
	if st := a.mustCLI("status"); !strings.Contains(st, "connected (device "+device) {
		t.Fatalf("edgefaas status shows no cloud link:\n%s", st)
	}
	t.Logf("edgecloud devices:\n%s\nedgecloud usage:\n%s\nedgefaas status:\n%s", out, mustOut(c.cli("usage")), a.mustCLI("status"))
}

func mustOut(s string, err error) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// TestCloudTLS: edgecloud serving HTTPS with a private certificate; the
// agent enrols and uploads over https and wss trusting it by --cloud-ca,
// and the CLI by --ca.
func TestCloudTLS(t *testing.T) {
	c := startCloudWith(t, true)
	a, device := startCloudAgent(t, c)
	a.mustCLI("deploy", "hello", "--image", built.testfn, "--memory", "64Mi")
	for range 5 {
		a.call(http.MethodPost, "/function/hello/echo", "x").want(t, 200, "ok")
	}
	waitFor(t, 30*time.Second, "5 invocations at the controller", func() bool { return c.invocations(device) == 5 })
	if out, err := c.cli("devices"); err != nil || !strings.Contains(out, device) {
		t.Fatalf("edgecloud devices --ca: %v\n%s", err, out)
	}
}

// TestCloudOutageExactlyOnce: the controller is down while 5,000 calls
// happen; once it is back the agent uploads them, and the controller holds
// each exactly once.
func TestCloudOutageExactlyOnce(t *testing.T) {
	c := startCloud(t)
	a, device := startCloudAgent(t, c)
	a.mustCLI("deploy", "f", "--image", built.testfn, "--memory", "64Mi", "--concurrency", "16")
	a.call(http.MethodPost, "/function/f/echo", "x").want(t, 200, "ok")
	waitFor(t, 30*time.Second, "the first record uploaded", func() bool { return c.invocations(device) == 1 })

	c.stop()
	waitFor(t, 20*time.Second, "the agent to see the controller gone", func() bool { return !a.cloud().Connected })
	const n = 5000
	start := time.Now()
	a.hammer(t, "f", n, 32)
	t.Logf("%d calls with the controller down in %s", n, time.Since(start).Round(time.Millisecond))

	c.start()
	start = time.Now()
	waitFor(t, 60*time.Second, "every record at the controller", func() bool { return a.cloud().AckedSeq == n+1 })
	t.Logf("uploaded and acknowledged %d records in %s after the controller came back", n, time.Since(start).Round(time.Millisecond))
	if got := c.invocations(device); got != n+1 {
		t.Fatalf("controller sums %d invocations, want %d", got, n+1)
	}
	c.checkStored(device, n+1)
}

// TestCloudKill9DuringUpload: the agent is killed while it uploads a
// backlog; after its restart the controller holds every record once.
func TestCloudKill9DuringUpload(t *testing.T) {
	c := startCloud(t)
	// Small batches: the upload takes many round trips, one of which the
	// kill lands in.
	a, device := startCloudAgent(t, c, "--cloud-batch", "20")
	a.mustCLI("deploy", "f", "--image", built.testfn, "--memory", "64Mi", "--concurrency", "16")
	c.stop()
	const n = 5000
	a.hammer(t, "f", n, 32)

	c.start()
	// A tight poll (not waitFor's growing one): the kill must land while
	// the backlog is still going up.
	var atKill int64
	for deadline := time.Now().Add(60 * time.Second); atKill <= 0; atKill = c.invocations(device) {
		if time.Now().After(deadline) {
			t.Fatal("the upload did not start")
		}
		time.Sleep(2 * time.Millisecond)
	}
	a.kill9()
	t.Logf("agent killed with %d of %d records at the controller", atKill, n)
	if atKill >= n {
		t.Fatalf("the upload finished before the kill (%d records): nothing was tested", atKill)
	}
	a.start()
	waitFor(t, 60*time.Second, "every record at the controller", func() bool { return c.invocations(device) == n })
	stats, err := c.client.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("controller stats after the restart: %+v", stats)
	waitFor(t, 30*time.Second, "the agent's ack", func() bool { return a.cloud().AckedSeq == n })
	c.checkStored(device, n)
}

// TestCloudRefusals: a replayed enrolment token stops the second agent;
// a revoked device loses its link and is refused when it comes back.
func TestCloudRefusals(t *testing.T) {
	c := startCloud(t)
	token := c.token("site=a")
	a := startAgent(t, "--cloud", c.url, "--enroll", token, "--cloud-max-backoff", "1s")
	var device string
	waitFor(t, 20*time.Second, "link up", func() bool { st := a.cloud(); device = st.DeviceID; return st.Connected })

	// The same token on another gateway.
	state := t.TempDir()
	cmd := exec.Command(built.edgefaasd, "--state-dir", state, "--api-socket", filepath.Join(state, "api.sock"),
		"--listen", "127.0.0.1:0", "--cgroup-parent", fmt.Sprintf("edgefaas-it-%d-replay", os.Getpid()),
		"--cloud", c.url, "--enroll", token)
	done := make(chan struct{})
	var out []byte
	var runErr error
	go func() { out, runErr = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		t.Fatalf("the agent with a replayed token kept running:\n%s", out)
	}
	if runErr == nil || !strings.Contains(string(out), "refused the token") {
		t.Fatalf("replayed token: %v\n%s", runErr, out)
	}

	if _, err := c.cli("devices", "revoke", device); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the agent to be refused", func() bool {
		st := a.cloud()
		return !st.Connected && strings.Contains(st.LastError, "revoked")
	})
	out2, err := c.cli("devices")
	if err != nil || !strings.Contains(out2, "revoked") {
		t.Fatalf("edgecloud devices: %v\n%s", err, out2)
	}
	if st := a.cloud(); st.Links != 1 {
		t.Fatalf("the revoked agent got %d links, want only its first", st.Links)
	}
}
