package images

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// requireTools skips when a tool the test drives is not installed.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}

// busyboxLayout builds an OCI layout with umoci: a busybox root (with a
// file inserted, then removed by a whiteout layer) and a function config.
// It returns the work dir holding layout "L" with tag "t".
func busyboxLayout(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skipf("needs busybox: %v", err)
	}
	work := t.TempDir()
	bin := filepath.Join(work, "r", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, work, "cp", bb, filepath.Join(bin, "busybox"))
	for _, name := range []string{"sh", "echo", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(work, "motd"), []byte("gone soon"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, work, "umoci", "init", "--layout", "L")
	run(t, work, "umoci", "new", "--image", "L:t")
	run(t, work, "umoci", "config", "--image", "L:t",
		"--config.entrypoint", "/bin/echo", "--config.cmd", "hello",
		"--config.env", "GREETING=hi", "--config.workingdir", "/srv",
		"--config.user", "1000:1000", "--config.label", "fn=hello")
	run(t, work, "umoci", "insert", "--image", "L:t", "r/bin", "/bin")
	run(t, work, "umoci", "insert", "--image", "L:t", "motd", "/etc/motd")
	run(t, work, "umoci", "insert", "--image", "L:t", "--whiteout", "/etc/motd")
	return work
}

// TestRealToolArchives imports archives written by umoci plus tar and by
// skopeo, and runs the unpacked busybox.
func TestRealToolArchives(t *testing.T) {
	requireRoot(t)
	requireTools(t, "umoci", "skopeo", "tar")
	work := busyboxLayout(t)
	tests := []struct {
		name      string
		file      string
		make      [][]string
		wantNames []string
	}{
		// umoci writes the bare tag as the reference name.
		{"umoci layout in a tar", "hello-umoci.tar",
			[][]string{{"tar", "-C", "L", "-cf", "hello-umoci.tar", "."}}, []string{"hello-umoci:t"}},
		{"umoci layout directory", "L", nil, []string{"l:t"}},
		// skopeo writes the whole name:tag given after the file name.
		{"skopeo oci-archive", "hello-skopeo.tar",
			[][]string{{"skopeo", "--insecure-policy", "copy", "oci:L:t", "oci-archive:hello-skopeo.tar:example.com/hello:1.0"}},
			[]string{"example.com/hello:1.0"}},
		{"skopeo dir: to oci-archive", "from-dir.tar", [][]string{
			{"skopeo", "--insecure-policy", "copy", "oci:L:t", "dir:D"},
			{"skopeo", "--insecure-policy", "copy", "dir:D", "oci-archive:from-dir.tar:example.com/dir:1"}},
			[]string{"example.com/dir:1"}},
		// skopeo converts to docker's manifest format and writes docker
		// save's layout: manifest.json, config and layer files.
		{"skopeo docker-archive", "hello-docker.tar",
			[][]string{{"skopeo", "--insecure-policy", "copy", "oci:L:t", "docker-archive:hello-docker.tar:example.com/hello:2"}},
			[]string{"example.com/hello:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, m := range tt.make {
				run(t, work, m[0], m[1:]...)
			}
			s := newStore(t, Config{})
			img, err := s.ImportArchive(context.Background(), filepath.Join(work, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(img.Names, tt.wantNames) {
				t.Errorf("names: got %q, want %q", img.Names, tt.wantNames)
			}
			c := img.Config
			if !slices.Equal(c.Entrypoint, []string{"/bin/echo"}) || !slices.Equal(c.Cmd, []string{"hello"}) ||
				!slices.Contains(c.Env, "GREETING=hi") || c.WorkingDir != "/srv" || c.User != "1000:1000" ||
				c.Labels["fn"] != "hello" {
				t.Errorf("config: got %+v", c)
			}
			root, err := s.RootFS(context.Background(), img.Digest)
			if err != nil {
				t.Fatal(err)
			}
			assertBusyboxRoot(t, work, root)
		})
	}
}

func assertBusyboxRoot(t *testing.T, work, root string) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(work, "r", "bin", "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "bin", "busybox"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("bin/busybox: %d bytes, %v; want the %d bytes of busybox", len(got), err, len(want))
	}
	if target, err := os.Readlink(filepath.Join(root, "bin", "sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh: got %q, %v; want a link to busybox", target, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc", "motd")); !os.IsNotExist(err) {
		t.Errorf("etc/motd: got %v, want it whited out", err)
	}
	if _, err := exec.LookPath("chroot"); err != nil {
		t.Logf("not running busybox: %v", err)
		return
	}
	out, err := exec.Command("chroot", root, "/bin/sh", "-c", "echo hello from the root").CombinedOutput()
	if err != nil || string(out) != "hello from the root\n" {
		t.Errorf("running busybox in the root: %q, %v", out, err)
	}
}
