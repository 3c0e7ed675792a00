package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/controller"
)

// push copies an image archive into the controller's registry with skopeo,
// as a user would, with the admin token.
func (c *cloudProc) push(t *testing.T, archive, ref string) {
	t.Helper()
	out, err := exec.Command("skopeo", "copy", "--quiet", "--dest-tls-verify=false",
		"--dest-creds", "admin:"+c.adminToken(),
		"oci-archive:"+archive, "docker://"+c.addr+"/"+ref).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy %s to %s: %v\n%s", archive, ref, err, out)
	}
}

// rolloutState waits until the device's row of the deployment's rollout is
// in state for revision, and returns the row.
func (c *cloudProc) rolloutState(t *testing.T, name string, revision int64, state string) controller.RolloutDevice {
	t.Helper()
	var ro controller.Rollout
	waitFor(t, 60*time.Second, name+" "+state, func() bool {
		var err error
		ro, err = c.client.Rollout(context.Background(), name)
		return err == nil && ro.Deployment.Revision == revision && len(ro.Devices) == 1 && ro.Devices[0].State == state
	})
	return ro.Devices[0]
}

// TestCloudDeployRollout: the whole path of a cloud deployment against the
// real binaries: an image pushed with skopeo to edgecloud's registry,
// deployed to a label, pulled by digest and run by the enrolled agent,
// invoked locally, billed at the controller; then a revision that never
// becomes ready and one whose image is corrupt in the registry both leave
// the old version serving, rolled back, with the reason at the controller;
// an undeploy removes the function from the device.
func TestCloudDeployRollout(t *testing.T) {
	c := startCloud(t)
	a, device := startCloudAgent(t, c, "--start-timeout", "3s")
	c.push(t, built.testfn, "demo/hello:1")

	out, err := c.cli("deploy", "hello", "--image", "demo/hello:1", "--selector", "site=test", "--memory", "64Mi",
		"--env", "GREETING=one", "--wait", "60s")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, device) || !strings.Contains(out, "running") || !strings.Contains(out, "1 running") {
		t.Fatalf("edgecloud deploy --wait:\n%s", out)
	}
	a.call(http.MethodPost, "/function/hello/echo", "x").want(t, 200, "ok")
	if got := a.call(http.MethodGet, "/function/hello/env?k=GREETING", "").want(t, 200, "ok").body; got != "one" {
		t.Fatalf("GREETING = %q, want the deployment's env", got)
	}
	waitFor(t, 30*time.Second, "the invocations at the controller", func() bool { return c.invocations(device) == 2 })
	fns, err := c.client.DeviceFunctions(context.Background(), device)
	if err != nil || len(fns) != 1 || fns[0].Name != "hello" || fns[0].State != proto.StateRunning || fns[0].Serving != fns[0].Revision {
		t.Fatalf("device functions %+v %v", fns, err)
	}
	rev1 := fns[0].Revision
	if ls := a.mustCLI("ls"); !strings.Contains(ls, fmt.Sprintf("cloud (revision %d)", rev1)) {
		t.Fatalf("edgefaas ls does not say the cloud placed hello:\n%s", ls)
	}
	// The cloud's function is the cloud's: a local deploy or removal of it
	// is refused, and says where to change it.
	if _, err := a.cli("", "deploy", "hello", "--image", built.testfn); err == nil || !strings.Contains(err.Error(), "placed by the cloud controller") {
		t.Fatalf("local deploy over the cloud's function: %v", err)
	}
	if _, err := a.cli("", "rm", "hello"); err == nil || !strings.Contains(err.Error(), "edgecloud deploy or undeploy") {
		t.Fatalf("local removal of the cloud's function: %v", err)
	}
	// A restart of the agent keeps the rollout done: its first status
	// (before any desired set) already says the function runs.
	a.stop()
	a.start()
	waitFor(t, 20*time.Second, "the link after the restart", func() bool { return a.cloud().Connected })
	for range 10 {
		if ro, err := c.client.Rollout(context.Background(), "hello"); err != nil || !ro.Done {
			t.Fatalf("rollout after the agent restarted: %+v %v", ro, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Revision 2 never listens: the agent's readiness check fails, the
	// first version keeps serving, and the controller says why.
	c.push(t, built.busybox, "demo/sleeper:1")
	if _, err := c.cli("deploy", "hello", "--image", "demo/sleeper:1", "--selector", "site=test", "--mode", "http",
		"--env", "SCRIPT=sleep 600"); err != nil {
		t.Fatal(err)
	}
	rev := rev1 + 1
	row := c.rolloutState(t, "hello", rev, proto.StateRolledBack)
	if row.Serving != rev1 || !strings.Contains(row.Reason, "ready") {
		t.Fatalf("rolled back row %+v: want revision 1 serving and a reason about readiness", row)
	}
	a.call(http.MethodPost, "/function/hello/echo", "x").want(t, 200, "ok")
	if got := a.call(http.MethodGet, "/function/hello/env?k=GREETING", "").want(t, 200, "ok").body; got != "one" {
		t.Fatalf("after the failed revision GREETING = %q: the old version must still serve", got)
	}
	if out, err := c.cli("rollout", "hello"); err != nil || !strings.Contains(out, "rolled_back") || !strings.Contains(out, "1 failed") {
		t.Fatalf("edgecloud rollout: %v\n%s", err, out)
	}

	// Revision 3: a new image (the busybox layers, another config) whose
	// config blob is damaged on the controller's disk after the push: the
	// pull's verification refuses it.
	variant := filepath.Join(t.TempDir(), "variant.tar")
	if out, err := exec.Command(built.edgefaas, "build", filepath.Join(built.dir, "bbroot"), "-t", "broken:1", "--mode", "exec",
		"--entrypoint", "/bin/sh /run.sh", "--env", "VARIANT=broken", "-o", variant).CombinedOutput(); err != nil {
		t.Fatalf("edgefaas build: %v\n%s", err, out)
	}
	c.push(t, variant, "demo/broken:1")
	_, config, err := resolveVia(c, "demo/broken:1")
	if err != nil {
		t.Fatal(err)
	}
	corruptConfig(t, c, config)
	if _, err := c.cli("deploy", "hello", "--image", "demo/broken:1", "--selector", "site=test", "--mode", "exec",
		"--env", "SCRIPT=echo broken"); err != nil {
		t.Fatal(err)
	}
	rev++
	row = c.rolloutState(t, "hello", rev, proto.StateRolledBack)
	if row.Serving != rev1 || row.Reason == "" {
		t.Fatalf("rolled back row %+v", row)
	}
	a.call(http.MethodPost, "/function/hello/echo", "x").want(t, 200, "ok")
	t.Logf("revision 3 refused: %s", row.Reason)

	// A good revision after the failures: applied.
	if _, err := c.cli("deploy", "hello", "--image", "demo/hello:1", "--selector", "site=test", "--memory", "64Mi",
		"--env", "GREETING=four"); err != nil {
		t.Fatal(err)
	}
	rev++
	c.rolloutState(t, "hello", rev, proto.StateRunning)
	if got := a.call(http.MethodGet, "/function/hello/env?k=GREETING", "").want(t, 200, "ok").body; got != "four" {
		t.Fatalf("GREETING = %q after revision 4", got)
	}

	// A revision deployed while the gateway is down is pending there and
	// applied when it links again; a restart redeploys nothing else.
	a.stop()
	if _, err := c.cli("deploy", "hello", "--image", "demo/hello:1", "--selector", "site=test", "--memory", "64Mi",
		"--env", "GREETING=five"); err != nil {
		t.Fatal(err)
	}
	ro, err := c.client.Rollout(context.Background(), "hello")
	if err != nil || ro.Devices[0].State != controller.StatePending || ro.Devices[0].Online || ro.Devices[0].Serving != rev {
		t.Fatalf("rollout while the device is down: %+v %v", ro, err)
	}
	a.start()
	c.rolloutState(t, "hello", rev+1, proto.StateRunning)
	if got := a.call(http.MethodGet, "/function/hello/env?k=GREETING", "").want(t, 200, "ok").body; got != "five" {
		t.Fatalf("GREETING = %q after revision 5", got)
	}

	// A function deployed on the gateway itself is not the cloud's: an
	// undeploy removes only the cloud's.
	a.mustCLI("deploy", "local", "--image", built.testfn, "--memory", "64Mi")
	if _, err := c.cli("undeploy", "hello"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "hello removed from the device", func() bool {
		return a.call(http.MethodPost, "/function/hello/echo", "x").code == http.StatusNotFound
	})
	a.call(http.MethodPost, "/function/local/echo", "x").want(t, 200, "ok")
	waitFor(t, 10*time.Second, "no cloud functions reported", func() bool {
		fns, err := c.client.DeviceFunctions(context.Background(), device)
		return err == nil && len(fns) == 0
	})
}

// resolveVia reads a manifest from the controller's registry with the
// admin token and returns its digest and its config blob's digest.
func resolveVia(c *cloudProc, ref string) (manifestDigest, configDigest string, err error) {
	repo, tag, _ := strings.Cut(ref, ":")
	req, _ := http.NewRequest(http.MethodGet, c.url+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Authorization", "Bearer "+c.adminToken())
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var m struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("GET manifest %s: %s", ref, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return "", "", err
	}
	return resp.Header.Get("Docker-Content-Digest"), m.Config.Digest, nil
}

// corruptConfig overwrites the stored blob of digest, wherever under the
// controller's data directory the registry keeps it, with as many bytes
// of garbage.
func corruptConfig(t *testing.T, c *cloudProc, digest string) {
	t.Helper()
	hex := strings.TrimPrefix(digest, "sha256:")
	var found string
	_ = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == hex {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("blob %s not found under %s", digest, c.dir)
	}
	st, err := os.Stat(found)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(found, bytes.Repeat([]byte("x"), int(st.Size())), 0o644); err != nil {
		t.Fatal(err)
	}
}

// adminToken is the controller's admin token, from its data directory.
func (c *cloudProc) adminToken() string {
	c.t.Helper()
	token, err := os.ReadFile(filepath.Join(c.dir, controller.AdminTokenFile))
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(string(token))
}
