package images

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/edgefaas/edgefaas/errdefs"
)

// TestWhiteouts applies two or three layers and compares the whole tree
// with what the OCI image spec says the result is.
func TestWhiteouts(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name   string
		layers [][]tarEntry
		want   []string
	}{
		{
			name: "whiteout removes a lower file",
			layers: [][]tarEntry{
				{file("a/keep", "k", 0o644), file("a/gone", "g", 0o644)},
				{file("a/.wh.gone", "", 0o644)},
			},
			want: []string{"a/", "a/keep"},
		},
		{
			name: "whiteout removes a lower directory tree",
			layers: [][]tarEntry{
				{file("d/x/y", "y", 0o644), file("e", "e", 0o644)},
				{file(".wh.d", "", 0o644)},
			},
			want: []string{"e"},
		},
		{
			name: "opaque directory hides lower content and keeps its own",
			layers: [][]tarEntry{
				{file("b/old", "o", 0o644), file("b/sub/old2", "o", 0o644)},
				{dir("b/", 0o755), file("b/.wh..wh..opq", "", 0o644), file("b/new", "n", 0o644)},
			},
			want: []string{"b/", "b/new"},
		},
		{
			name: "opaque marker after same-layer entries keeps them",
			layers: [][]tarEntry{
				{file("b/old", "o", 0o644), file("b/sub/old", "o", 0o644)},
				{file("b/new", "n", 0o644), file("b/sub/new", "n", 0o644), file("b/.wh..wh..opq", "", 0o644)},
			},
			want: []string{"b/", "b/new", "b/sub/", "b/sub/new"},
		},
		{
			name: "whiteout then re-create in the same layer",
			layers: [][]tarEntry{
				{file("f", "old", 0o644)},
				{file(".wh.f", "", 0o644), dir("f/", 0o755), file("f/inside", "i", 0o644)},
			},
			want: []string{"f/", "f/inside"},
		},
		{
			name: "whiteout only hides lower layers",
			layers: [][]tarEntry{
				{file("x/lower", "l", 0o644)},
				{file("x/upper", "u", 0o644), file(".wh.x", "", 0o644)},
			},
			want: []string{"x/", "x/upper"},
		},
		{
			name: "whiteout of something missing is a no-op",
			layers: [][]tarEntry{
				{file("a", "a", 0o644)},
				{file(".wh.zzz", "", 0o644), file("q/.wh.zzz", "", 0o644)},
			},
			want: []string{"a"},
		},
		{
			name: "whiteout in a third layer removes a file of the second",
			layers: [][]tarEntry{
				{file("a", "a", 0o644)},
				{file("b", "b", 0o644)},
				{file(".wh.b", "", 0o644), file(".wh.a", "", 0o644)},
			},
			want: nil,
		},
		{
			name: "file replaces a lower directory",
			layers: [][]tarEntry{
				{file("x/y", "y", 0o644)},
				{file("x", "now a file", 0o644)},
			},
			want: []string{"x"},
		},
		{
			name: "directory entry merges with the lower directory",
			layers: [][]tarEntry{
				{file("d/a", "a", 0o644)},
				{dir("d/", 0o700), file("d/b", "b", 0o644)},
			},
			want: []string{"d/", "d/a", "d/b"},
		},
		{
			name: "AUFS metadata is not unpacked",
			layers: [][]tarEntry{
				{file("a", "a", 0o644)},
				{dir(".wh..wh.plnk/", 0o700), file(".wh..wh.aufs", "", 0o644)},
			},
			want: []string{"a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Config{})
			_, root := importLayers(t, s, tt.layers...)
			if got := tree(t, root); !slices.Equal(got, tt.want) {
				t.Errorf("tree:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// tree lists root's paths, directories with a trailing "/", leaving out
// the mount points the store adds.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if slices.Contains([]string{"proc", "sys", "dev", "tmp", "etc"}, rel) {
			return filepath.SkipDir
		}
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetadata checks that modes, owners and times survive unpacking and
// that setuid and setgid do not.
func TestMetadata(t *testing.T) {
	requireRoot(t)
	owned := file("data", "d", 0o640)
	owned.hdr.Uid, owned.hdr.Gid = 1234, 5678
	link := symlink("link", "data")
	link.hdr.Uid, link.hdr.Gid = 42, 43
	s := newStore(t, Config{})
	_, root := importLayers(t, s, []tarEntry{
		file("bin/su", "su", 0o4755),
		file("bin/sg", "sg", 0o2755),
		owned, link,
		dir("sticky/", 0o1777),
		dir("ro/", 0o555), file("ro/inside", "i", 0o444),
	})
	tests := []struct {
		name     string
		mode     fs.FileMode
		uid, gid uint32
		lstat    bool
	}{
		{name: "bin/su", mode: 0o755},
		{name: "bin/sg", mode: 0o755},
		{name: "data", mode: 0o640, uid: 1234, gid: 5678},
		{name: "link", mode: fs.ModeSymlink | 0o777, uid: 42, gid: 43, lstat: true},
		{name: "sticky", mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{name: "ro", mode: fs.ModeDir | 0o555},
		{name: "ro/inside", mode: 0o444},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := os.Lstat(filepath.Join(root, tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tt.mode {
				t.Errorf("mode: got %v, want %v", fi.Mode(), tt.mode)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != tt.uid || st.Gid != tt.gid {
				t.Errorf("owner: got %d:%d, want %d:%d", st.Uid, st.Gid, tt.uid, tt.gid)
			}
			if !tt.lstat && !fi.ModTime().Equal(testTime) {
				t.Errorf("mtime: got %v, want %v", fi.ModTime(), testTime)
			}
		})
	}
}

// TestLimits checks the per-layer caps on entries and bytes.
func TestLimits(t *testing.T) {
	requireRoot(t)
	zeros := strings.Repeat("\x00", 8<<20)
	tests := []struct {
		name    string
		cfg     Config
		entries []tarEntry
		want    error
	}{
		{"entries at the cap", Config{MaxLayerEntries: 3},
			[]tarEntry{file("a", "", 0o644), file("b", "", 0o644), file("c", "", 0o644)}, nil},
		{"entries over the cap", Config{MaxLayerEntries: 3},
			[]tarEntry{file("a", "", 0o644), file("b", "", 0o644), file("c", "", 0o644), file("d", "", 0o644)},
			errdefs.ErrTooLarge},
		{"bytes over the cap", Config{MaxLayerBytes: 64 << 10},
			[]tarEntry{file("big", strings.Repeat("x", 100<<10), 0o644)}, errdefs.ErrTooLarge},
		{"gzip bomb", Config{MaxLayerBytes: 1 << 20},
			[]tarEntry{file("zeros", zeros, 0o644)}, errdefs.ErrTooLarge},
		{"under the caps", Config{MaxLayerBytes: 1 << 20, MaxLayerEntries: 10},
			[]tarEntry{file("small", "x", 0o644)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, tt.cfg)
			a := newArchive(t)
			a.image(a.layer(tt.entries...))
			_, err := s.ImportArchive(context.Background(), a.write())
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("import: got %v, want %v", err, tt.want)
			}
			if err != nil {
				assertEmptyStore(t, s)
			}
		})
	}
}

// TestMountpoints checks that the directories the sandbox mounts over are
// made when missing and kept when present.
func TestMountpoints(t *testing.T) {
	requireRoot(t)
	type want struct {
		name string
		mode fs.FileMode
	}
	tests := []struct {
		name    string
		entries []tarEntry
		want    []want
	}{
		{"missing ones are made", []tarEntry{file("a", "a", 0o644)}, []want{
			{"proc", fs.ModeDir | 0o555}, {"sys", fs.ModeDir | 0o555}, {"dev", fs.ModeDir | 0o755},
			{"tmp", fs.ModeDir | fs.ModeSticky | 0o777}, {"etc", fs.ModeDir | 0o755},
		}},
		{"present ones are kept", []tarEntry{dir("etc/", 0o700), dir("tmp/", 0o755)}, []want{
			{"etc", fs.ModeDir | 0o700}, {"tmp", fs.ModeDir | 0o755}, {"dev", fs.ModeDir | 0o755},
		}},
		{"a symlinked one is made where the link leads", []tarEntry{symlink("tmp", "/var/tmp")}, []want{
			{"tmp", fs.ModeSymlink | 0o777}, {"var/tmp", fs.ModeDir | fs.ModeSticky | 0o777},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Config{})
			_, root := importLayers(t, s, tt.entries)
			for _, w := range tt.want {
				fi, err := os.Lstat(filepath.Join(root, w.name))
				if err != nil {
					t.Error(err)
					continue
				}
				if fi.Mode() != w.mode {
					t.Errorf("%s: got %v, want %v", w.name, fi.Mode(), w.mode)
				}
			}
		})
	}
}

// TestMountpointSymlinksStayInside gives the image mount points that are
// symlinks out of the root: the directories are made inside the root, as
// the container will resolve the links, and the host is untouched.
func TestMountpointSymlinksStayInside(t *testing.T) {
	requireRoot(t)
	host := t.TempDir()
	s := newStore(t, Config{})
	_, root := importLayers(t, s, []tarEntry{symlink("proc", host), symlink("sys", climb+host+"/sys")})
	if got := listDir(t, host); len(got) != 0 {
		t.Errorf("host dir holds %v, want nothing", got)
	}
	for _, p := range []string{host, host + "/sys"} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil || !fi.IsDir() {
			t.Errorf("%s in the root: got %v, %v; want a directory", p, fi, err)
		}
	}
}

// TestMountpointNotADirectory refuses an image whose /etc is a file: the
// sandbox could not mount over it.
func TestMountpointNotADirectory(t *testing.T) {
	requireRoot(t)
	s := newStore(t, Config{})
	a := newArchive(t)
	a.image(a.layer(file("etc", "not a dir", 0o644)))
	_, err := s.ImportArchive(context.Background(), a.write())
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("import: got %v, want ErrInvalid", err)
	}
}
