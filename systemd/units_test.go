package systemd

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/api"
)

// unitFile is a parsed unit: section -> key -> values, in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, name string) unitFile {
	t.Helper()
	data, err := fs.ReadFile(Units(), name)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: line %q is not key=value", name, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unitFile) get(section, key string) string {
	return strings.Join(u[section][key], " ")
}

// verifyRoot lays out a root in which systemd-analyze verify can check the
// units: the units in /etc/systemd/system, the system's own units (the
// targets ours refer to) in /usr/lib/systemd/system, and stub executables
// for the binaries, which need not exist on the machine running the test
// (edgecloud does not exist yet at all). verify then checks ExecStart=
// against the stub: it must be an absolute path to an executable.
func verifyRoot(t *testing.T, units map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	sysUnits := filepath.Join(root, "usr/lib/systemd/system")
	if err := os.MkdirAll(filepath.Dir(sysUnits), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(sysUnits, os.DirFS("/usr/lib/systemd/system")); err != nil {
		t.Fatalf("copying the system's units: %v", err)
	}
	for name, data := range units {
		writeFile(t, filepath.Join(root, unitDir, name), string(data), 0o644)
	}
	for _, bin := range []string{agentBin, "/usr/bin/edgecloud"} {
		writeFile(t, filepath.Join(root, bin), "#!/bin/sh\nexit 0\n", 0o755)
	}
	return root
}

func writeFile(t *testing.T, path, data string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// verify runs systemd-analyze verify on the units in root and returns what
// it printed. systemd-analyze only warns about unknown keys and bad values
// (exit status 0), so anything printed counts as a finding.
func verify(t *testing.T, root string, names ...string) (string, error) {
	t.Helper()
	args := []string{"verify", "--root=" + root, "--man=no", "--no-pager"}
	for _, n := range names {
		args = append(args, filepath.Join(root, unitDir, n))
	}
	out, err := exec.Command("systemd-analyze", args...).CombinedOutput()
	return string(out), err
}

func allUnits(t *testing.T) map[string][]byte {
	t.Helper()
	units := map[string][]byte{}
	for _, name := range []string{AgentService, APISocket, GatewaySocket, CloudService} {
		data, err := fs.ReadFile(Units(), name)
		if err != nil {
			t.Fatal(err)
		}
		units[name] = data
	}
	return units
}

func TestUnitsVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("needs systemd-analyze (apt-get install systemd); it works without systemd running")
	}
	units := allUnits(t)
	root := verifyRoot(t, units)
	for name := range units {
		t.Run(name, func(t *testing.T) {
			out, err := verify(t, root, name)
			if err != nil || out != "" {
				t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
			}
		})
	}

	// The same check notices a broken unit: it is not silenced by the
	// stubs or the options above.
	broken := []struct {
		name   string
		unit   string
		change func(string) string
		want   string
	}{
		{name: "unknown key", unit: AgentService, want: "Unknown key",
			change: func(s string) string {
				return strings.Replace(s, "\n[Service]\n", "\n[Service]\nProtectEverything=yes\n", 1)
			}},
		{name: "bad kill mode", unit: AgentService, want: "kill mode",
			change: func(s string) string { return strings.Replace(s, "\nKillMode=mixed\n", "\nKillMode=gently\n", 1) }},
		{name: "missing binary", unit: CloudService, want: "not executable",
			change: func(s string) string {
				return strings.ReplaceAll(s, "/usr/bin/edgecloud", "/usr/bin/edgecloud-missing")
			}},
		{name: "bad socket mode", unit: APISocket, want: "parse mode",
			change: func(s string) string { return strings.Replace(s, "SocketMode=0660", "SocketMode=rw-rw----", 1) }},
	}
	for _, tt := range broken {
		t.Run("catches "+tt.name, func(t *testing.T) {
			bad := map[string][]byte{tt.unit: []byte(tt.change(string(units[tt.unit])))}
			out, err := verify(t, verifyRoot(t, bad), tt.unit)
			if (err == nil && out == "") || !strings.Contains(out, tt.want) {
				t.Errorf("verify of a unit with %s: %v, output %q; want a finding mentioning %q", tt.name, err, out, tt.want)
			}
		})
	}
}

// TestAgentUnitSettings pins what the agent relies on, and keeps out the
// hardening options that would break its sandboxes (the unit's comments say
// why each one is refused).
func TestAgentUnitSettings(t *testing.T) {
	svc := parseUnit(t, AgentService)
	apiSock := parseUnit(t, APISocket)
	gwSock := parseUnit(t, GatewaySocket)
	tests := []struct {
		name string
		got  string
		want string
	}{
		{name: "Type", got: svc.get("Service", "Type"), want: "notify"},
		{name: "NotifyAccess", got: svc.get("Service", "NotifyAccess"), want: "main"},
		{name: "WatchdogSec", got: svc.get("Service", "WatchdogSec"), want: "30s"},
		{name: "Restart", got: svc.get("Service", "Restart"), want: "always"},
		{name: "RestartSec", got: svc.get("Service", "RestartSec"), want: "2s"},
		{name: "Delegate", got: svc.get("Service", "Delegate"), want: "yes"},
		{name: "KillMode", got: svc.get("Service", "KillMode"), want: "mixed"},
		{name: "StateDirectory", got: svc.get("Service", "StateDirectory"), want: "edgefaas"},
		{name: "RuntimeDirectory", got: svc.get("Service", "RuntimeDirectory"), want: "edgefaas"},
		{name: "RuntimeDirectoryPreserve", got: svc.get("Service", "RuntimeDirectoryPreserve"), want: "yes"},
		{name: "ExecStart", got: svc.get("Service", "ExecStart"), want: agentBin + " --config " + ConfigPath},
		{name: "Sockets", got: svc.get("Service", "Sockets"), want: APISocket + " " + GatewaySocket},
		{name: "Also", got: svc.get("Install", "Also"), want: APISocket + " " + GatewaySocket},
		{name: "api socket path", got: apiSock.get("Socket", "ListenStream"), want: api.DefaultSocket},
		{name: "api socket name", got: apiSock.get("Socket", "FileDescriptorName"), want: APIListener},
		{name: "api socket mode", got: apiSock.get("Socket", "SocketMode"), want: "0660"},
		{name: "api socket service", got: apiSock.get("Socket", "Service"), want: AgentService},
		{name: "gateway port", got: gwSock.get("Socket", "ListenStream"), want: "8080"},
		{name: "gateway name", got: gwSock.get("Socket", "FileDescriptorName"), want: GatewayListener},
		{name: "gateway service", got: gwSock.get("Socket", "Service"), want: AgentService},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	for _, key := range []string{"ProtectControlGroups", "ProtectKernelTunables", "PrivateDevices", "ProtectClock",
		"DevicePolicy", "DeviceAllow", "ProtectHostname", "RestrictNamespaces", "PrivateUsers", "PrivateNetwork",
		"SystemCallFilter", "SystemCallArchitectures", "LockPersonality", "MemoryDenyWriteExecute", "UMask",
		"ProcSubset", "ProtectProc", "DynamicUser", "User"} {
		if v, ok := svc["Service"][key]; ok {
			t.Errorf("%s sets %s=%s, which breaks sandboxes (see the unit's comments)", AgentService, key, strings.Join(v, " "))
		}
	}
}

func TestCloudUnitSandboxing(t *testing.T) {
	svc := parseUnit(t, CloudService)
	want := map[string]string{
		"ExecStart":               "/usr/bin/edgecloud serve --listen :8443 --data-dir /var/lib/edgecloud",
		"DynamicUser":             "yes",
		"StateDirectory":          "edgecloud",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"NoNewPrivileges":         "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"CapabilityBoundingSet":   "",
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if got := svc.get("Service", k); got != want[k] {
			t.Errorf("%s=%q, want %q", k, got, want[k])
		}
	}
	if got := svc["Service"]["SystemCallFilter"]; len(got) == 0 || got[0] != "@system-service" {
		t.Errorf("SystemCallFilter=%q, want @system-service first", got)
	}
}
