package integration

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageFromSkopeoAndUmoci imports an image that tools we did not write
// made from a busybox root, and runs it.
func TestImageFromSkopeoAndUmoci(t *testing.T) {
	for _, tool := range []string{"umoci", "skopeo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install umoci skopeo)", tool)
		}
	}
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	archive := filepath.Join(dir, "bb.tar")
	root := filepath.Join(built.dir, "bbroot")
	steps := [][]string{
		{"umoci", "init", "--layout", layout},
		{"umoci", "new", "--image", layout + ":bb"},
		{"umoci", "insert", "--image", layout + ":bb", root, "/"},
		{"umoci", "config", "--image", layout + ":bb", "--config.entrypoint", "/bin/sh",
			"--config.entrypoint", "-c", "--config.cmd", "echo made by umoci; cat"},
		{"skopeo", "copy", "oci:" + layout + ":bb", "oci-archive:" + archive + ":tools/bb:1"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	a := startAgent(t)
	out := a.mustCLI("image", "import", archive)
	if !strings.Contains(out, "imported sha256:") {
		t.Fatalf("import: %q", out)
	}
	a.mustCLI("deploy", "tools", "--image", "tools/bb:1", "--mode", "exec")
	if out := a.mustCLI("invoke", "tools", "-d", "ok"); out != "made by umoci\nok" {
		t.Fatalf("invoke: %q", out)
	}
}

// TestCorruptArchiveRefused flips one byte of a layer: the import fails with
// a clear error and nothing is recorded.
func TestCorruptArchiveRefused(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.tar")
	corruptLargestBlob(t, built.testfn, bad)
	a := startAgent(t)
	_, err := a.cli("", "image", "import", bad)
	if err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("import of a corrupt archive: %v", err)
	}
	if out := a.mustCLI("image", "ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("image ls after a refused import: %s", out)
	}
	if _, err := a.cli("", "deploy", "x", "--image", bad); err == nil {
		t.Fatal("deploy from a corrupt archive succeeded")
	}
}

// corruptLargestBlob copies an oci-archive, flipping a byte in its largest
// blob (the layer) so that its digest no longer matches.
func corruptLargestBlob(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	type entry struct {
		hdr  *tar.Header
		data []byte
	}
	var entries []entry
	largest := -1
	tr := tar.NewReader(in)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, entry{hdr, data})
		if strings.HasPrefix(hdr.Name, "blobs/") && (largest < 0 || len(data) > len(entries[largest].data)) {
			largest = len(entries) - 1
		}
	}
	entries[largest].data[len(entries[largest].data)/2] ^= 0xff
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(e.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
