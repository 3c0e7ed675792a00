package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/edgefaas/edgefaas/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// climb is enough "../" to reach "/" from any store location, so
// climb+host aims at the host directory wherever the root is.
var climb = strings.Repeat("../", 40)

// TestImportRefusesHostileArchives imports archives that try to write,
// link or delete outside the root, or that lie about their blobs. Each is
// refused with ErrInvalid, the host directory they aim at is untouched, and
// the store holds nothing afterwards.
func TestImportRefusesHostileArchives(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name  string
		build func(a *testArchive, host string)
	}{
		{"dot-dot entry", func(a *testArchive, host string) {
			a.image(a.layer(file(climb+host+"/pwned", "x", 0o644)))
		}},
		{"dot-dot inside a name", func(a *testArchive, host string) {
			a.image(a.layer(dir("a/", 0o755), file("a/../../pwned", "x", 0o644)))
		}},
		{"absolute symlink then a write through it", func(a *testArchive, host string) {
			a.image(a.layer(symlink("evil", host), file("evil/pwned", "x", 0o644)))
		}},
		{"climbing symlink then a write through it", func(a *testArchive, host string) {
			a.image(a.layer(symlink("evil", climb+host), file("evil/pwned", "x", 0o644)))
		}},
		{"symlink in a lower layer, write in an upper one", func(a *testArchive, host string) {
			a.image(a.layer(symlink("evil", host)), a.layer(file("evil/pwned", "x", 0o644)))
		}},
		{"symlink chain", func(a *testArchive, host string) {
			a.image(a.layer(symlink("a", "b"), symlink("b", host), file("a/pwned", "x", 0o644)))
		}},
		{"directory through a symlink", func(a *testArchive, host string) {
			a.image(a.layer(symlink("evil", host), dir("evil/pwned/", 0o755)))
		}},
		{"symlink created through a symlink", func(a *testArchive, host string) {
			a.image(a.layer(symlink("evil", host), symlink("evil/pwned", "/")))
		}},
		{"hardlink to a host file by absolute name", func(a *testArchive, host string) {
			a.image(a.layer(hardlink("link", host+"/secret")))
		}},
		{"hardlink climbing out", func(a *testArchive, host string) {
			a.image(a.layer(hardlink("link", climb+host+"/secret")))
		}},
		{"hardlink through a symlink", func(a *testArchive, host string) {
			a.image(a.layer(symlink("evil", host), hardlink("link", "evil/secret")))
		}},
		{"hardlink to a missing file", func(a *testArchive, host string) {
			a.image(a.layer(hardlink("link", "nothing-here")))
		}},
		{"whiteout through a symlink", func(a *testArchive, host string) {
			a.image(a.layer(symlink("evil", host)), a.layer(file("evil/.wh.secret", "", 0o644)))
		}},
		{"opaque whiteout through a symlink", func(a *testArchive, host string) {
			a.image(a.layer(symlink("evil", host)), a.layer(file("evil/.wh..wh..opq", "", 0o644)))
		}},
		{"character device", func(a *testArchive, host string) {
			a.image(a.layer(special("dev/null", tar.TypeChar)))
		}},
		{"block device", func(a *testArchive, host string) {
			a.image(a.layer(special("dev/sda", tar.TypeBlock)))
		}},
		{"fifo", func(a *testArchive, host string) {
			a.image(a.layer(special("fifo", tar.TypeFifo)))
		}},
		{"layer digest does not match its descriptor", func(a *testArchive, host string) {
			l := a.layer(file("ok", "x", 0o644))
			a.blobs[l.desc.Digest] = gzipBytes(a.t, tarLayer(a.t, file("ok", "y", 0o644)))
			a.image(l)
		}},
		{"blob size does not match its descriptor", func(a *testArchive, host string) {
			l := a.layer(file("ok", "x", 0o644))
			l.desc.Size++
			a.image(l)
		}},
		{"diff ID does not match the layer", func(a *testArchive, host string) {
			l := a.layer(file("ok", "x", 0o644))
			l.diffID = a.layer(file("other", "y", 0o644)).diffID
			a.image(l)
		}},
		{"zstd layer", func(a *testArchive, host string) {
			l := a.layer(file("ok", "x", 0o644))
			l.desc.MediaType = ocispec.MediaTypeImageLayerZstd
			a.image(l)
		}},
		{"unknown layer media type", func(a *testArchive, host string) {
			l := a.layer(file("ok", "x", 0o644))
			l.desc.MediaType = "application/x-squashfs"
			a.image(l)
		}},
		{"gzip layer that is not gzip", func(a *testArchive, host string) {
			raw := tarLayer(a.t, file("ok", "x", 0o644))
			a.image(testLayer{desc: a.blob(ocispec.MediaTypeImageLayerGzip, raw), diffID: digest.FromString("unused")})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := t.TempDir()
			if err := os.WriteFile(filepath.Join(host, "secret"), []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			a := newArchive(t)
			tt.build(a, host)
			s := newStore(t, Config{})
			_, err := s.ImportArchive(context.Background(), a.write())
			if hostileSays[tt.name] == "" {
				t.Fatalf("hostileSays lists no reason for %q", tt.name)
			}
			if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), hostileSays[tt.name]) {
				t.Fatalf("import: got %v, want ErrInvalid saying %q", err, hostileSays[tt.name])
			}
			t.Logf("refused: %v", err)
			assertHostUntouched(t, host)
			assertEmptyStore(t, s)
		})
	}
}

// hostileSays is what the refusal of each case of
// TestImportRefusesHostileArchives says: the reason, not just the class.
var hostileSays = map[string]string{
	"dot-dot entry":                                   "the name leaves the root",
	"dot-dot inside a name":                           "the name leaves the root",
	"absolute symlink then a write through it":        "path escapes from parent",
	"climbing symlink then a write through it":        "path escapes from parent",
	"symlink in a lower layer, write in an upper one": "path escapes from parent",
	"symlink chain":                                   "path escapes from parent",
	"directory through a symlink":                     "path escapes from parent",
	"symlink created through a symlink":               "path escapes from parent",
	"hardlink to a host file by absolute name":        "hardlink target",
	"hardlink climbing out":                           "the name leaves the root",
	"hardlink through a symlink":                      "path escapes from parent",
	"hardlink to a missing file":                      "does not exist",
	"whiteout through a symlink":                      "path escapes from parent",
	"opaque whiteout through a symlink":               "path escapes from parent",
	"character device":                                "device nodes",
	"block device":                                    "device nodes",
	"fifo":                                            "device nodes",
	"layer digest does not match its descriptor":      "content has digest",
	"blob size does not match its descriptor":         "size is",
	"diff ID does not match the layer":                "uncompressed layer has digest",
	"zstd layer":                                      "zstd-compressed",
	"unknown layer media type":                        "unsupported media type",
	"gzip layer that is not gzip":                     "gzip: invalid header",
}

// assertHostUntouched checks that host still holds only "secret", intact
// and with no extra hardlink.
func assertHostUntouched(t *testing.T, host string) {
	t.Helper()
	if got := listDir(t, host); !slices.Equal(got, []string{"secret"}) {
		t.Errorf("host dir holds %v, want [secret]", got)
	}
	p := filepath.Join(host, "secret")
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "secret" {
		t.Errorf("host secret: got %q, %v; want %q", b, err, "secret")
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if n := fi.Sys().(*syscall.Stat_t).Nlink; n != 1 {
		t.Errorf("host secret has %d links, want 1", n)
	}
}

// TestReplacingASymlinkDoesNotFollowIt checks that an entry landing on an
// existing symlink replaces the link instead of writing to its target.
func TestReplacingASymlinkDoesNotFollowIt(t *testing.T) {
	requireRoot(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, Config{})
	_, root := importLayers(t, s,
		[]tarEntry{symlink("evil", host+"/secret"), symlink("inner", "target"), file("target", "t", 0o644)},
		[]tarEntry{file("evil", "replaced", 0o644), file("inner", "replaced", 0o644)},
	)
	assertHostUntouched(t, host)
	for _, tc := range []struct{ name, want string }{
		{"evil", "replaced"}, {"inner", "replaced"}, {"target", "t"},
	} {
		fi, err := os.Lstat(filepath.Join(root, tc.name))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: got %v, %v; want a regular file", tc.name, fi, err)
			continue
		}
		if b, _ := os.ReadFile(filepath.Join(root, tc.name)); string(b) != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, b, tc.want)
		}
	}
}

// TestImportRefusesBrokenArchives is the rest of the hostile corpus: bombs,
// broken or lying archives, each refused with its own class and message,
// nothing written outside the store and nothing left in it.
func TestImportRefusesBrokenArchives(t *testing.T) {
	requireRoot(t)
	caps := Config{MaxLayerBytes: 1 << 20, MaxLayerEntries: 100}
	tests := []struct {
		name  string
		build func(a *testArchive, host string) string // returns the archive path
		want  error
		says  string
	}{
		{"gzip bomb", func(a *testArchive, host string) string {
			a.image(a.layer(file("zeros", strings.Repeat("\x00", 16<<20), 0o644)))
			return a.write()
		}, errdefs.ErrTooLarge, "over 1048576 bytes"},
		{"file-count bomb", func(a *testArchive, host string) string {
			var many []tarEntry
			for i := range 101 {
				many = append(many, file(fmt.Sprintf("f%d", i), "", 0o644))
			}
			a.image(a.layer(many...))
			return a.write()
		}, errdefs.ErrTooLarge, "over 100 entries"},
		{"truncated layer", func(a *testArchive, host string) string {
			raw := tarLayer(a.t, file("big", strings.Repeat("random-ish ", 20000), 0o644))
			gz := gzipBytes(a.t, raw)
			a.image(testLayer{desc: a.blob(ocispec.MediaTypeImageLayerGzip, gz[:len(gz)/2]), diffID: digest.FromBytes(raw)})
			return a.write()
		}, errdefs.ErrInvalid, "unexpected EOF"},
		{"blob twice in the archive", func(a *testArchive, host string) string {
			a.image(a.layer(file("ok", "x", 0o644)))
			p := a.write()
			appendEntry(a.t, p, "blobs/sha256/"+a.index.Manifests[0].Digest.Encoded(), a.blobs[a.index.Manifests[0].Digest])
			return p
		}, errdefs.ErrInvalid, "appears twice"},
		{"config with a layer's media type", func(a *testArchive, host string) string {
			desc := a.image(a.layer(file("ok", "x", 0o644)))
			m := mustManifest(a.t, a, desc).manifest
			m.Config.MediaType = ocispec.MediaTypeImageLayer
			a.index.Manifests = nil
			a.add(a.json(ocispec.MediaTypeImageManifest, m), "latest")
			return a.write()
		}, errdefs.ErrInvalid, "not an image config"},
		{"whiteout of the parent directory", func(a *testArchive, host string) string {
			a.image(a.layer(dir("a/", 0o755)), a.layer(file("a/.wh...", "", 0o644)))
			return a.write()
		}, errdefs.ErrInvalid, "whiteout names nothing"},
		{"hardlink to a directory", func(a *testArchive, host string) string {
			a.image(a.layer(dir("d/", 0o755), hardlink("link", "d")))
			return a.write()
		}, errdefs.ErrInvalid, "hardlink to directory"},
		{"layer blob missing from the archive", func(a *testArchive, host string) string {
			l := a.layer(file("ok", "x", 0o644))
			delete(a.blobs, l.desc.Digest)
			a.image(l)
			return a.write()
		}, errdefs.ErrInvalid, "is missing"},
		{"docker-archive naming a layer outside it", func(a *testArchive, host string) string {
			d := newDockerArchive(a.t)
			d.image(hostPlatform().String(), []string{"x:1"}, false, []tarEntry{file("ok", "x", 0o644)})
			d.manifest[0].Layers[0] = "../../../" + host + "/secret"
			return d.write()
		}, errdefs.ErrInvalid, "lacks"},
		{"docker-archive layer escaping by symlink", func(a *testArchive, host string) string {
			d := newDockerArchive(a.t)
			d.image(hostPlatform().String(), []string{"x:1"}, true, []tarEntry{symlink("evil", host), file("evil/pwned", "x", 0o644)})
			return d.write()
		}, errdefs.ErrInvalid, "evil/pwned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := t.TempDir()
			if err := os.WriteFile(filepath.Join(host, "secret"), []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			s := newStore(t, caps)
			_, err := s.ImportArchive(context.Background(), tt.build(newArchive(t), host))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("import: got %v, want %v saying %q", err, tt.want, tt.says)
			}
			t.Logf("refused: %v", err)
			assertHostUntouched(t, host)
			assertEmptyStore(t, s)
		})
	}
}

// appendEntry adds a file entry at the end of a tar archive.
func appendEntry(t testing.TB, path, name string, data []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tr := tar.NewReader(bytes.NewReader(b))
	tw := tar.NewWriter(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
