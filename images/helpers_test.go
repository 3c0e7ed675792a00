package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/api"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var specsV2 = specs.Versioned{SchemaVersion: 2}

var testTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// tarEntry is one entry of a test layer.
type tarEntry struct {
	hdr  tar.Header
	body string
}

func file(name, body string, mode int64) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode,
		Size: int64(len(body)), ModTime: testTime}, body: body}
}

func dir(name string, mode int64) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: testTime}}
}

func symlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target,
		Mode: 0o777, ModTime: testTime}}
}

func hardlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: testTime}}
}

func special(name string, typ byte) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: testTime}}
}

// tarLayer writes entries as an uncompressed tar stream.
func tarLayer(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("tar header %q: %v", hdr.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("tar body %q: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testArchive builds an oci-archive: blobs plus an index.
type testArchive struct {
	t     testing.TB
	blobs map[digest.Digest][]byte
	index ocispec.Index
}

func newArchive(t testing.TB) *testArchive {
	return &testArchive{t: t, blobs: map[digest.Digest][]byte{},
		index: ocispec.Index{Versioned: specsV2, MediaType: ocispec.MediaTypeImageIndex}}
}

func (a *testArchive) blob(mediaType string, data []byte) ocispec.Descriptor {
	d := digest.FromBytes(data)
	a.blobs[d] = data
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func (a *testArchive) json(mediaType string, v any) ocispec.Descriptor {
	b, err := json.Marshal(v)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.blob(mediaType, b)
}

// testLayer is a stored layer and the digest of its uncompressed tar.
type testLayer struct {
	desc   ocispec.Descriptor
	diffID digest.Digest
}

// layer stores a tar stream as a gzip layer.
func (a *testArchive) layer(entries ...tarEntry) testLayer {
	raw := tarLayer(a.t, entries...)
	return testLayer{desc: a.blob(ocispec.MediaTypeImageLayerGzip, gzipBytes(a.t, raw)), diffID: digest.FromBytes(raw)}
}

// manifest stores a config and manifest for layers. plat is recorded in the
// config and on the returned descriptor; nil means this host's platform in
// the config and no platform on the descriptor (what umoci writes).
func (a *testArchive) manifest(plat *ocispec.Platform, cfg ocispec.ImageConfig, layers ...testLayer) ocispec.Descriptor {
	img := ocispec.Image{Config: cfg, RootFS: ocispec.RootFS{Type: "layers"}}
	if plat != nil {
		img.Platform = *plat
	} else {
		img.Platform = ocispec.Platform{OS: hostPlatform().OS, Architecture: hostPlatform().Arch, Variant: hostPlatform().Variant}
	}
	m := ocispec.Manifest{Versioned: specsV2, MediaType: ocispec.MediaTypeImageManifest}
	for _, l := range layers {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, l.diffID)
		m.Layers = append(m.Layers, l.desc)
	}
	m.Config = a.json(ocispec.MediaTypeImageConfig, img)
	desc := a.json(ocispec.MediaTypeImageManifest, m)
	desc.Platform = plat
	return desc
}

// add lists desc in index.json, under reference name ref if not empty.
func (a *testArchive) add(desc ocispec.Descriptor, ref string) {
	if ref != "" {
		desc.Annotations = map[string]string{ocispec.AnnotationRefName: ref}
	}
	a.index.Manifests = append(a.index.Manifests, desc)
}

// image adds a one-manifest image of the given layers.
func (a *testArchive) image(layers ...testLayer) ocispec.Descriptor {
	desc := a.manifest(nil, ocispec.ImageConfig{}, layers...)
	a.add(desc, "latest")
	return desc
}

// write writes the archive as skopeo does (blobs, then index.json) and
// returns its path.
func (a *testArchive) write() string {
	a.t.Helper()
	p := filepath.Join(a.t.TempDir(), "test.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(name string, data []byte) {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: testTime}
		if err := tw.WriteHeader(hdr); err != nil {
			a.t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			a.t.Fatal(err)
		}
	}
	put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	digests := make([]digest.Digest, 0, len(a.blobs))
	for d := range a.blobs {
		digests = append(digests, d)
	}
	sort.Slice(digests, func(i, j int) bool { return digests[i] < digests[j] })
	for _, d := range digests {
		put("blobs/sha256/"+d.Encoded(), a.blobs[d])
	}
	idx, err := json.Marshal(a.index)
	if err != nil {
		a.t.Fatal(err)
	}
	put("index.json", idx)
	if err := tw.Close(); err != nil {
		a.t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		a.t.Fatal(err)
	}
	return p
}

// newStore opens a store in a fresh temp dir.
func newStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "images"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// importLayers imports a one-image archive of the given layers and returns
// the image and its root.
func importLayers(t *testing.T, s *Store, layers ...[]tarEntry) (api.Image, string) {
	t.Helper()
	a := newArchive(t)
	var ls []testLayer
	for _, l := range layers {
		ls = append(ls, a.layer(l...))
	}
	a.image(ls...)
	img, err := s.ImportArchive(context.Background(), a.write())
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	root, err := s.RootFS(context.Background(), img.Digest)
	if err != nil {
		t.Fatalf("rootfs: %v", err)
	}
	return img, root
}

// requireRoot skips tests that need to chown or to see real ownership.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: unpacking applies file owners")
	}
}

// listDir returns the names in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// assertEmptyStore checks that a failed import left nothing behind.
func assertEmptyStore(t *testing.T, s *Store) {
	t.Helper()
	for _, d := range []string{s.blobDir().path(), s.recordDir(), s.rootDir(), s.tmpDir()} {
		if names := listDir(t, d); len(names) != 0 {
			t.Errorf("%s holds %v after a failed import, want nothing", d, names)
		}
	}
}

// assertRootFile unpacks the image (when it is not yet) and checks that
// the file at name in its root holds want.
func assertRootFile(t *testing.T, s *Store, digest, name, want string) {
	t.Helper()
	root, err := s.RootFS(context.Background(), digest)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, name)); err != nil || string(b) != want {
		t.Errorf("/%s: got %q, %v; want %q", name, b, err, want)
	}
}
