package integration

import (
	"archive/tar"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// startRegistry runs go-containerregistry's registry (a real
// implementation of the distribution protocol) on loopback and returns
// its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushArchive pushes the one image of an oci-archive to ref.
func pushArchive(t *testing.T, archive, ref string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	untar(t, archive, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestImagePull pulls from a registry with `image pull` and by deploying a
// registry reference, runs what it pulled, and checks that each way a pull
// fails says so.
func TestImagePull(t *testing.T) {
	host := startRegistry(t)
	pushArchive(t, built.busybox, host+"/tools/bb:1")
	pushArchive(t, built.busybox, host+"/tools/bb:2")
	a := startAgent(t)
	out := a.mustCLI("image", "pull", host+"/tools/bb:1")
	if !strings.HasPrefix(out, "pulled sha256:") || !strings.Contains(out, host+"/tools/bb:1") {
		t.Fatalf("pull: %q", out)
	}
	// Not pulled yet: deploy pulls it (same digest, a second name).
	a.mustCLI("deploy", "pulled", "--image", host+"/tools/bb:2", "--env", "SCRIPT=echo pulled; cat")
	if got := a.mustCLI("invoke", "pulled", "-d", "ok"); got != "pulled\nok" {
		t.Fatalf("invoke: %q", got)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, tc := range []struct{ ref, says string }{
		{host + "/tools/none:1", "has no"},
		{strings.TrimPrefix(closed.URL, "http://") + "/x:1", "cannot reach registry"},
		{"nohost:1", "import it first"},
	} {
		_, err := a.cli("", "deploy", "bad", "--image", tc.ref)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("deploy --image %s: got %v, want an error saying %q", tc.ref, err, tc.says)
		}
	}
}

// TestImageWrongPlatform imports and pulls an image built only for
// another platform (arm64 on an x86-64 host): refused, and the error names
// the platform the image has.
func TestImageWrongPlatform(t *testing.T) {
	foreign := "linux/arm64"
	if runtime.GOARCH == "arm64" {
		foreign = "linux/amd64"
	}
	archive := filepath.Join(t.TempDir(), "foreign.tar")
	if out, err := exec.Command(built.edgefaas, "build", filepath.Join(built.moduleRoot, "integration/testdata/testfn"),
		"-t", "foreign:1", "--platform", foreign, "-o", archive).CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	host := startRegistry(t)
	pushArchive(t, archive, host+"/foreign:1")
	a := startAgent(t)
	for _, args := range [][]string{{"image", "import", archive}, {"image", "pull", host + "/foreign:1"}} {
		_, err := a.cli("", args...)
		if err == nil || !strings.Contains(err.Error(), foreign) {
			t.Errorf("%s: got %v, want an error naming %s", strings.Join(args, " "), err, foreign)
		}
		t.Logf("%s: %v", strings.Join(args, " "), err)
	}
	if out := a.mustCLI("image", "ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("image ls after refusals: %s", out)
	}
}
