// Package testroot builds the root filesystems and binaries that tests run in
// real sandboxes: a busybox root from Debian's busybox-static and static Go
// programs. It is for tests only.
package testroot

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BusyboxApplets are linked into every busybox root.
var BusyboxApplets = []string{
	"sh", "cat", "echo", "sleep", "ls", "touch", "head", "tr", "wc", "id",
	"grep", "env", "httpd", "nc", "dd", "mkdir", "rm", "yes", "true", "false",
}

// RequireRoot skips the test unless it runs as root (sandboxes and cgroups
// need it; CI runs as root).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates sandboxes and cgroups (CI runs as root)")
	}
}

// Busybox returns the path of a new root filesystem holding Debian's static
// busybox with BusyboxApplets, plus the mount points a read-only root needs.
func Busybox(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("needs busybox-static (apt-get install busybox-static)")
	}
	root := t.TempDir()
	if err := WriteBusybox(root); err != nil {
		t.Fatal(err)
	}
	return root
}

// WriteBusybox lays out a busybox root in dir: bin/busybox, a link per
// applet, and the mount points (/proc, /sys, /dev, /tmp, /etc).
func WriteBusybox(dir string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("needs busybox-static (apt-get install busybox-static): %w", err)
	}
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	for _, a := range BusyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			return err
		}
	}
	return nil
}

// GoBinary builds the main package in dir (relative to the module, e.g.
// "examples/hello-http") as a static binary and returns its path.
func GoBinary(t testing.TB, moduleDir, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./"+pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
