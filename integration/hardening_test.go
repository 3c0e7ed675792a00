package integration

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/systemd"
)

// unitSettings reads key=value settings of a unit's [Service] section.
func unitSettings(t *testing.T, name string) map[string][]string {
	t.Helper()
	data, err := fs.ReadFile(systemd.Units(), name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '[':
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			out[k] = append(out[k], v)
		}
	}
	return out
}

// hardeningWrapper is a command line that applies what edgefaasd.service
// asks of systemd and can be reproduced without it, then execs the agent:
// ProtectSystem=full (/usr, /boot, /efi, /etc read-only in a mount
// namespace of its own), ProtectHome=yes (empty /home, /root, /run/user),
// NoNewPrivileges=yes and the CapabilityBoundingSet=~ list. The seccomp
// based options (RestrictAddressFamilies, RestrictSUIDSGID,
// RestrictRealtime, ProtectKernelModules' syscall filter) need systemd
// and are not reproduced.
func hardeningWrapper(t *testing.T) []string {
	t.Helper()
	for _, tool := range []string{"unshare", "setpriv", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (util-linux) to reproduce the unit's hardening", tool)
		}
	}
	svc := unitSettings(t, systemd.AgentService)
	want := map[string]string{"ProtectSystem": "full", "ProtectHome": "yes", "NoNewPrivileges": "yes"}
	for k, v := range want {
		if got := strings.Join(svc[k], " "); got != v {
			t.Fatalf("%s=%q in the unit; this test reproduces %s=%s: update it with the unit", k, got, k, v)
		}
	}
	bounding := strings.Join(svc["CapabilityBoundingSet"], " ")
	drop, ok := strings.CutPrefix(bounding, "~")
	if !ok {
		t.Fatalf("CapabilityBoundingSet=%q: this test reproduces a ~ (drop) list only", bounding)
	}
	var caps []string
	for _, c := range strings.Fields(drop) {
		caps = append(caps, "-"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	script := `set -e
for d in /usr /boot /efi /etc; do
	[ -d "$d" ] || continue
	mount --bind "$d" "$d"
	mount -o remount,bind,ro "$d"
done
for d in /home /root /run/user; do
	[ -d "$d" ] && mount -t tmpfs -o mode=0755,size=1m tmpfs "$d"
done
exec setpriv --no-new-privs --bounding-set ` + strings.Join(caps, ",") + ` "$0" "$@"`
	return []string{"unshare", "--mount", "--propagation", "slave", "--", "/bin/sh", "-c", script}
}

// startWrapped starts edgefaasd through wrapper, otherwise as startAgent.
func startWrapped(t *testing.T, wrapper []string) *agentProc {
	t.Helper()
	agentSeq++
	a := &agentProc{t: t, state: t.TempDir(), cgroupParent: fmt.Sprintf("edgefaas-it-%d-%d", os.Getpid(), agentSeq)}
	a.sock = filepath.Join(a.state, "api.sock")
	a.logs = &syncBuffer{}
	args := append(append([]string(nil), wrapper[1:]...), built.edgefaasd, "--state-dir", a.state, "--api-socket", a.sock,
		"--listen", "127.0.0.1:0", "--cgroup-parent", a.cgroupParent,
		"--mqtt-broker", "none")
	a.cmd = exec.Command(wrapper[0], args...)
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.stop()
		a.assertNoCgroups()
	})
	cl := a.client()
	waitFor(t, 15*time.Second, "the hardened agent to serve", func() bool {
		info, err := cl.Info(context.Background())
		if err != nil {
			return false
		}
		a.gw = "http://" + info.Listen
		return true
	})
	return a
}

// TestUnitHardeningKeepsSandboxesWorking runs the agent under the parts of
// edgefaasd.service's hardening that can be reproduced without systemd and
// runs a function of each mode in a real sandbox: the kept options must not
// break what the agent exists for.
func TestUnitHardeningKeepsSandboxesWorking(t *testing.T) {
	a := startWrapped(t, hardeningWrapper(t))
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "NoNewPrivs:\t1") {
		t.Fatalf("the wrapper did not apply: /proc/PID/status\n%s", status)
	}
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", a.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	usrRO := false
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/usr" && strings.HasPrefix(f[5], "ro") {
			usrRO = true
		}
	}
	if !usrRO {
		t.Fatalf("/usr is not read-only for the agent: the wrapper did not apply\n%s", mounts)
	}
	a.mustCLI("deploy", "web", "--image", built.testfn)
	a.mustCLI("deploy", "sh", "--image", built.busybox, "--env", "SCRIPT=cat")
	if ans := a.call(http.MethodPost, "/function/web/echo", "hardened").want(t, 200, "ok"); !strings.Contains(ans.body, "hardened") {
		t.Errorf("http-mode function answered %q", ans.body)
	}
	if ans := a.call(http.MethodPost, "/function/sh", "hardened").want(t, 200, "ok"); ans.body != "hardened" {
		t.Errorf("exec-mode function answered %q, want %q", ans.body, "hardened")
	}
}
