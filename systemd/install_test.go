package systemd

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// snapshot describes every file, directory and symlink below root, with
// contents, modes and modification times: two equal snapshots mean nothing
// was written in between.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %s %d", rel, fi.Mode(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %q", data)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func installOpts(t *testing.T, root string) InstallOptions {
	t.Helper()
	if _, err := exec.LookPath("systemctl"); err != nil {
		t.Skip("needs systemctl (apt-get install systemd) for the offline enable")
	}
	return InstallOptions{Root: root, Logger: discard()}
}

func TestInstallIntoRoot(t *testing.T) {
	root := t.TempDir()
	opts := installOpts(t, root)
	writeFile(t, filepath.Join(root, agentBin), "#!/bin/sh\n", 0o755)
	if err := Install(t.Context(), opts); err != nil {
		t.Fatal(err)
	}

	// The units, as embedded, where systemd reads them.
	for _, name := range agentUnits() {
		want, _ := fs.ReadFile(Units(), name)
		got, err := os.ReadFile(filepath.Join(root, unitDir, name))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: %v; content differs from the embedded unit: %v", name, err, string(got) != string(want))
		}
	}
	// The configuration the unit's ExecStart names.
	execStart := parseUnit(t, AgentService).get("Service", "ExecStart")
	_, conf, ok := strings.Cut(execStart, "--config ")
	if !ok {
		t.Fatalf("ExecStart %q has no --config", execStart)
	}
	fi, err := os.Stat(filepath.Join(root, conf))
	if err != nil {
		t.Fatalf("the unit reads %s, which Install did not write: %v", conf, err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %s, want 0600", conf, fi.Mode().Perm())
	}
	if data, _ := os.ReadFile(filepath.Join(root, conf)); string(data) != DefaultConfig() {
		t.Errorf("%s is not the default configuration:\n%s", conf, data)
	}
	// Enabled: the service for multi-user.target, its sockets (Also=) for
	// sockets.target, each link pointing at the installed unit.
	links := map[string]string{
		"multi-user.target.wants/" + AgentService: AgentService,
		"sockets.target.wants/" + APISocket:       APISocket,
		"sockets.target.wants/" + GatewaySocket:   GatewaySocket,
	}
	for link, unit := range links {
		target, err := os.Readlink(filepath.Join(root, unitDir, link))
		if err != nil || target != filepath.Join(unitDir, unit) {
			t.Errorf("%s -> %q, %v; want -> %s", link, target, err, filepath.Join(unitDir, unit))
		}
	}

	t.Run("again changes nothing", func(t *testing.T) {
		before := snapshot(t, root)
		if err := Install(t.Context(), opts); err != nil {
			t.Fatal(err)
		}
		if after := snapshot(t, root); after != before {
			t.Errorf("a second Install changed the tree:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("repairs a changed unit", func(t *testing.T) {
		path := filepath.Join(root, unitDir, AgentService)
		writeFile(t, path, "[Service]\nExecStart=/bin/false\n", 0o600)
		if err := Install(t.Context(), opts); err != nil {
			t.Fatal(err)
		}
		want, _ := fs.ReadFile(Units(), AgentService)
		got, _ := os.ReadFile(path)
		fi, _ := os.Stat(path)
		if string(got) != string(want) || fi.Mode().Perm() != 0o644 {
			t.Errorf("after Install the unit is %d bytes, mode %s; want the embedded one, 0644", len(got), fi.Mode().Perm())
		}
	})

	t.Run("uninstall keeps the configuration and the state", func(t *testing.T) {
		confPath := filepath.Join(root, ConfigPath)
		writeFile(t, confPath, "debug = true\n", 0o600)
		state := filepath.Join(root, "var/lib/edgefaas/edgefaas.db")
		writeFile(t, state, "db", 0o600)
		for i := range 2 { // a second run finds nothing to do
			if err := Uninstall(t.Context(), opts); err != nil {
				t.Fatalf("uninstall %d: %v", i+1, err)
			}
		}
		for _, name := range agentUnits() {
			if _, err := os.Lstat(filepath.Join(root, unitDir, name)); !os.IsNotExist(err) {
				t.Errorf("%s still there after uninstall: %v", name, err)
			}
		}
		for link := range links {
			if _, err := os.Lstat(filepath.Join(root, unitDir, link)); !os.IsNotExist(err) {
				t.Errorf("enable link %s still there after uninstall: %v", link, err)
			}
		}
		if data, err := os.ReadFile(confPath); err != nil || string(data) != "debug = true\n" {
			t.Errorf("configuration after uninstall: %q, %v; want it kept", data, err)
		}
		if _, err := os.Stat(state); err != nil {
			t.Errorf("state after uninstall: %v; want it kept", err)
		}
	})
}

func TestInstallKeepsExistingConfig(t *testing.T) {
	root := t.TempDir()
	opts := installOpts(t, root)
	confPath := filepath.Join(root, ConfigPath)
	writeFile(t, confPath, "state-dir = /data/edgefaas\n", 0o640)
	if err := Install(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(confPath)
	fi, _ := os.Stat(confPath)
	if err != nil || string(data) != "state-dir = /data/edgefaas\n" || fi.Mode().Perm() != 0o640 {
		t.Errorf("configuration after Install: %q mode %s, %v; want the existing file untouched", data, fi.Mode().Perm(), err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(confPath), ".*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestInstallNeverTouchesTheRunningSystemUnderARoot(t *testing.T) {
	tests := []struct {
		root string
		want bool
	}{
		{root: "/", want: true},
		{root: "", want: true},
		{root: "/./", want: true},
		{root: "/tmp/image", want: false},
	}
	_, err := os.Stat("/run/systemd/system")
	booted := err == nil
	for _, tt := range tests {
		t.Run(fmt.Sprintf("root %q", tt.root), func(t *testing.T) {
			o := InstallOptions{Root: tt.root}
			o.setDefaults()
			if got := o.online(); got != (tt.want && booted) {
				t.Errorf("online() = %v, want %v (systemd running here: %v)", got, tt.want && booted, booted)
			}
		})
	}
}
