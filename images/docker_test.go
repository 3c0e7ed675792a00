package images

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// dockerArchive writes tars in the format of docker save (before docker
// 25): manifest.json, <id>.json configs, <id>/layer.tar layers.
type dockerArchive struct {
	t        testing.TB
	files    map[string][]byte
	links    map[string]string
	manifest []dockerImage
}

func newDockerArchive(t testing.TB) *dockerArchive {
	return &dockerArchive{t: t, files: map[string][]byte{}, links: map[string]string{}}
}

// image adds an image of the given layers (each gzipped when gz is set)
// for plat, tagged with tags. A layer equal to one written before is a
// symlink to it, as docker save writes it.
func (d *dockerArchive) image(plat string, tags []string, gz bool, layers ...[]tarEntry) {
	parts := strings.Split(plat, "/")
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: parts[0], Architecture: parts[1]},
		Config: ocispec.ImageConfig{Entrypoint: []string{"/bin/fn"}}, RootFS: ocispec.RootFS{Type: "layers"}}
	if len(parts) > 2 {
		cfg.Variant = parts[2]
	}
	e := dockerImage{RepoTags: tags}
	for _, l := range layers {
		raw := tarLayer(d.t, l...)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(raw))
		id := digest.FromBytes(raw).Encoded()
		name := id + "/layer.tar"
		if _, ok := d.files[name]; ok {
			d.links[id+"-again/layer.tar"] = "../" + name
			name = id + "-again/layer.tar"
		} else if gz {
			d.files[name] = gzipBytes(d.t, raw)
		} else {
			d.files[name] = raw
		}
		e.Layers = append(e.Layers, name)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	e.Config = digest.FromBytes(b).Encoded() + ".json"
	d.files[e.Config] = b
	d.manifest = append(d.manifest, e)
}

func (d *dockerArchive) write() string {
	d.t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(d.files))
	for n := range d.files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(d.files[n])), ModTime: testTime}
		if err := tw.WriteHeader(hdr); err != nil {
			d.t.Fatal(err)
		}
		if _, err := tw.Write(d.files[n]); err != nil {
			d.t.Fatal(err)
		}
	}
	for n, target := range d.links {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: n, Linkname: target, ModTime: testTime}); err != nil {
			d.t.Fatal(err)
		}
	}
	m, err := json.Marshal(d.manifest)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "manifest.json", Mode: 0o644, Size: int64(len(m))}); err != nil {
		d.t.Fatal(err)
	}
	if _, err := tw.Write(m); err != nil {
		d.t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		d.t.Fatal(err)
	}
	p := filepath.Join(d.t.TempDir(), "docker.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		d.t.Fatal(err)
	}
	return p
}

// TestDockerArchive imports docker save archives: plain and gzipped
// layers, a layer shared by symlink, several images and several tags.
func TestDockerArchive(t *testing.T) {
	requireRoot(t)
	host := hostPlatform().String()
	base := []tarEntry{dir("bin/", 0o755), file("bin/fn", "#!/bin/sh\n", 0o755)}
	tests := []struct {
		name      string
		build     func(d *dockerArchive)
		pick      string
		wantNames []string
		wantFile  string // content of /which in the root
		wantErr   error
		errHas    []string
	}{
		{name: "one image, plain layers, two tags", build: func(d *dockerArchive) {
			d.image(host, []string{"fn:1", "example.com/fn:latest"}, false, base, []tarEntry{file("which", "one", 0o644)})
		}, wantNames: []string{"fn:1", "example.com/fn:latest"}, wantFile: "one"},
		{name: "gzipped layers", build: func(d *dockerArchive) {
			d.image(host, []string{"gz:1"}, true, base, []tarEntry{file("which", "gz", 0o644)})
		}, wantNames: []string{"gz:1"}, wantFile: "gz"},
		{name: "shared layer as a symlink", build: func(d *dockerArchive) {
			d.image("linux/s390x", []string{"other:1"}, false, base, []tarEntry{file("which", "s390x", 0o644)})
			d.image(host, []string{"mine:1"}, false, base, []tarEntry{file("which", "mine", 0o644)})
		}, wantNames: []string{"mine:1"}, wantFile: "mine"},
		{name: "two images for this host: ambiguous", build: func(d *dockerArchive) {
			d.image(host, []string{"a:1"}, false, []tarEntry{file("which", "a", 0o644)})
			d.image(host, []string{"b:1"}, false, []tarEntry{file("which", "b", 0o644)})
		}, wantErr: errdefs.ErrInvalid, errHas: []string{"a:1", "b:1"}},
		{name: "two images, one picked by name", build: func(d *dockerArchive) {
			d.image(host, []string{"a:1"}, false, []tarEntry{file("which", "a", 0o644)})
			d.image(host, []string{"b:1"}, false, []tarEntry{file("which", "b", 0o644)})
		}, pick: "b:1", wantNames: []string{"b:1"}, wantFile: "b"},
		{name: "only foreign platforms", build: func(d *dockerArchive) {
			d.image("linux/s390x", []string{"a:1"}, false, base)
			d.image("linux/riscv64", []string{"a:2"}, false, base)
		}, wantErr: errdefs.ErrInvalid, errHas: []string{"linux/s390x", "linux/riscv64", host}},
		{name: "layer missing from the archive", build: func(d *dockerArchive) {
			d.image(host, []string{"a:1"}, false, base)
			d.manifest[0].Layers[0] = "nope/layer.tar"
		}, wantErr: errdefs.ErrInvalid, errHas: []string{"nope/layer.tar"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDockerArchive(t)
			tt.build(d)
			s := newStore(t, Config{})
			img, err := s.Import(context.Background(), d.write(), ImportOptions{Name: tt.pick})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("import: got %v, want %v", err, tt.wantErr)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %s", err, s)
					}
				}
				assertEmptyStore(t, s)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(img.Names, tt.wantNames) || img.Platform != host || img.Config.Entrypoint[0] != "/bin/fn" {
				t.Errorf("image: got names %q platform %s config %+v; want %q %s", img.Names, img.Platform, img.Config, tt.wantNames, host)
			}
			assertRootFile(t, s, img.Digest, "which", tt.wantFile)
		})
	}
}

// TestLayoutDirectory imports an OCI layout directory, unpacked from an
// archive, and gets the same image as from the archive.
func TestLayoutDirectory(t *testing.T) {
	requireRoot(t)
	a := newArchive(t)
	multiArch(a, true, "linux/s390x", hostPlatform().String())
	archive := a.write()
	dir := filepath.Join(t.TempDir(), "layout")
	extract(t, archive, dir)
	s := newStore(t, Config{})
	fromDir, err := s.ImportArchive(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	fromTar, err := newStore(t, Config{}).ImportArchive(context.Background(), archive)
	if err != nil {
		t.Fatal(err)
	}
	if fromDir.Digest != fromTar.Digest || !slices.Equal(fromDir.Names, []string{"multi:1"}) {
		t.Errorf("from the directory: %s %q; from the archive: %s %q", fromDir.Digest, fromDir.Names, fromTar.Digest, fromTar.Names)
	}
}

// extract unpacks a plain tar of regular files into dir.
func extract(t *testing.T, archive, dir string) {
	t.Helper()
	err := walkTar(context.Background(), archive, func(e sourceEntry) error {
		p := filepath.Join(dir, filepath.FromSlash(e.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		b := new(bytes.Buffer)
		if _, err := b.ReadFrom(e.r); err != nil {
			return err
		}
		return os.WriteFile(p, b.Bytes(), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDockerSaveOCI imports what docker save writes since docker 25: an
// OCI layout (with the full name in containerd's annotation and the bare
// tag as ref.name) plus a manifest.json. The layout wins; the name is the
// full one.
func TestDockerSaveOCI(t *testing.T) {
	requireRoot(t)
	a := newArchive(t)
	desc := a.manifest(nil, ocispec.ImageConfig{Entrypoint: []string{"/bin/fn"}}, a.layer(file("bin/fn", "x", 0o755)))
	desc.Annotations = map[string]string{ocispec.AnnotationRefName: "latest", containerdNameAnnotation: "docker.io/library/fn:latest"}
	a.index.Manifests = append(a.index.Manifests, desc)
	p := a.write()
	m, err := json.Marshal([]dockerImage{{Config: "blobs/sha256/nothing", RepoTags: []string{"fn:latest"}}})
	if err != nil {
		t.Fatal(err)
	}
	appendEntry(t, p, "manifest.json", m)
	img, err := newStore(t, Config{}).ImportArchive(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(img.Names, []string{"docker.io/library/fn:latest"}) || img.Digest != desc.Digest.String() {
		t.Errorf("image: %s %q, want %s [docker.io/library/fn:latest]", img.Digest, img.Names, desc.Digest)
	}
}
