package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/controller"
)

// skopeoCopy pushes an oci-archive to the controller's registry with
// creds ("" for none).
func (c *cloudProc) skopeoCopy(archive, ref, creds string) (string, error) {
	args := []string{"--insecure-policy", "copy", "--dest-tls-verify=false"}
	if creds != "" {
		args = append(args, "--dest-creds", creds)
	}
	out, err := exec.Command("skopeo", append(args, "oci-archive:"+archive, "docker://"+c.addr+"/"+ref)...).CombinedOutput()
	return string(out), err
}

func (c *cloudProc) adminCreds() string {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, controller.AdminTokenFile))
	if err != nil {
		c.t.Fatal(err)
	}
	return "admin:" + strings.TrimSpace(string(b))
}

// TestCloudRegistry: images pushed with skopeo to edgecloud are pulled by
// an enrolled agent with its device key (image pull, and deploy by
// reference), over http and over https with a private CA; a push without
// the admin token, an anonymous read, an agent not enrolled and a revoked
// device are refused.
func TestCloudRegistry(t *testing.T) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skipf("needs skopeo: %v", err)
	}
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[withTLS], func(t *testing.T) {
			c := startCloudWith(t, withTLS)
			if out, err := c.skopeoCopy(built.busybox, "fn:1", ""); err == nil {
				t.Fatalf("push without credentials accepted:\n%s", out)
			}
			for _, tag := range []string{"fn:1", "fn:2", "fn:3"} {
				if out, err := c.skopeoCopy(built.busybox, tag, c.adminCreds()); err != nil {
					t.Fatalf("push %s: %v\n%s", tag, err, out)
				}
			}
			if out, err := exec.Command("skopeo", "inspect", "--tls-verify=false", "docker://"+c.addr+"/fn:1").CombinedOutput(); err == nil {
				t.Fatalf("anonymous skopeo inspect accepted:\n%s", out)
			}

			a, device := startCloudAgent(t, c)
			out := a.mustCLI("image", "pull", c.addr+"/fn:1")
			if !strings.HasPrefix(out, "pulled sha256:") {
				t.Fatalf("pull: %q", out)
			}
			a.mustCLI("deploy", "fromcloud", "--image", c.addr+"/fn:2", "--env", "SCRIPT=echo from the cloud; cat")
			if got := a.mustCLI("invoke", "fromcloud", "-d", "ok"); got != "from the cloud\nok" {
				t.Fatalf("invoke: %q", got)
			}

			// A standalone agent has no device key: the registry refuses
			// it. Over https it does not even trust the private CA, which
			// only --cloud-ca gives.
			stranger := startAgent(t)
			want := map[bool]string{false: "refused access", true: "unknown authority"}[withTLS]
			if _, err := stranger.cli("", "image", "pull", c.addr+"/fn:1"); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("pull by an agent not enrolled: %v, want an error saying %q", err, want)
			}
			if _, err := c.client.Revoke(context.Background(), device); err != nil {
				t.Fatal(err)
			}
			if _, err := a.cli("", "image", "pull", c.addr+"/fn:3"); err == nil || !strings.Contains(err.Error(), "refused access") {
				t.Fatalf("pull by a revoked device: %v", err)
			}
		})
	}
}
