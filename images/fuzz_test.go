package images

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// fuzzCanary is an absolute path seeds aim symlinks at; it must never
// appear.
var fuzzCanary = filepath.Join(os.TempDir(), "edgefaas-images-fuzz-canary")

// FuzzApplyTar feeds arbitrary bytes to the layer unpacker as a tar stream
// and checks that nothing was written outside the root: the root's parent
// holds only the root and an untouched sentinel file, and the canary path
// the seeds aim absolute symlinks at does not exist.
//
// Run it with a minimization budget: inputs are tar streams of several KB,
// and the default minute spent minimizing each new one looks like a hang:
//
//	go test -run XXX -fuzz FuzzApplyTar -fuzzminimizetime 200x ./images/
func FuzzApplyTar(f *testing.F) {
	seeds := [][]tarEntry{
		{dir("a/", 0o755), file("a/b", "b", 0o644), symlink("a/l", "b"), hardlink("a/h", "a/b")},
		{symlink("evil", fuzzCanary), file("evil/pwned", "x", 0o644)},
		{symlink("evil", "../outside"), file("evil", "x", 0o644), hardlink("h", "../outside")},
		{symlink("up", ".."), file("up/pwned", "x", 0o644), dir("up/d/", 0o755)},
		{file("../pwned", "x", 0o644), file("/abs", "x", 0o4755)},
		{symlink("evil", fuzzCanary), file("evil/.wh.x", "", 0o644), file("evil/.wh..wh..opq", "", 0o644)},
		{file("a/.wh..wh..opq", "", 0o644), file(".wh.a", "", 0o644), special("fifo", tar.TypeFifo)},
	}
	for _, s := range seeds {
		f.Add(tarLayer(f, s...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		sentinel := filepath.Join(parent, "outside")
		if err := os.WriteFile(sentinel, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(parent, "root")
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		root, err := os.OpenRoot(dst)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		lim := limits{bytes: 1 << 20, entries: 256, chown: os.Geteuid() == 0}
		_ = applyTar(context.Background(), root, bytes.NewReader(data), lim)

		if got := listDir(t, parent); !slices.Equal(got, []string{"outside", "root"}) {
			t.Fatalf("root's parent holds %v, want [outside root]", got)
		}
		b, err := os.ReadFile(sentinel)
		if err != nil || string(b) != "keep" {
			t.Fatalf("sentinel: got %q, %v", b, err)
		}
		fi, err := os.Stat(sentinel)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Sys().(*syscall.Stat_t).Nlink != 1 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("sentinel was linked or chmodded: %v", fi.Mode())
		}
		if _, err := os.Lstat(fuzzCanary); err == nil {
			t.Fatalf("%s was created", fuzzCanary)
		}
	})
}

// FuzzImportArchive feeds arbitrary bytes to Import as an archive file
// (oci-archive or docker-archive, gzipped or not): it must fail cleanly or
// import, never panic, never write beside the store, and a failure must
// leave the store empty.
//
//	go test -run XXX -fuzz FuzzImportArchive -fuzzminimizetime 100x ./images/
func FuzzImportArchive(f *testing.F) {
	oci := newArchive(f)
	multiArch(oci, true, "linux/s390x", hostPlatform().String())
	d := newDockerArchive(f)
	d.image(hostPlatform().String(), []string{"x:1"}, true, []tarEntry{file("a", "a", 0o644)}, []tarEntry{file(".wh.a", "", 0o644)})
	for _, p := range []string{oci.write(), d.write()} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		p := filepath.Join(parent, "in.tar")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(filepath.Join(parent, "store"), Config{MaxLayerBytes: 1 << 20, MaxLayerEntries: 256})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.ImportArchive(context.Background(), p)
		if got := listDir(t, parent); !slices.Equal(got, []string{"in.tar", "store"}) {
			t.Fatalf("the store's parent holds %v", got)
		}
		if err != nil {
			assertEmptyStore(t, s)
		}
	})
}
