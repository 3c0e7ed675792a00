package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/edgefaas/edgefaas/api"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ModeLabel is the image label that carries a function's mode (http or
// exec), so that deploy can pick it up.
const ModeLabel = "com.edgefaas.mode"

// BuildOptions describe an image for one platform or several.
type BuildOptions struct {
	Name      string   // "NAME:TAG", recorded as the index's ref.name annotation
	Platforms []string // "linux/amd64", "linux/arm64", "linux/arm/v7"; at least one
	// Files gives, per platform, the directory whose files form the top
	// layer (every file below it lands at the same path in the image).
	Files func(platform string) (string, error)
	// Config is the function's entrypoint, env, working dir, user and
	// labels. Over a base, what is set here wins; env and labels merge.
	Config api.ImageConfig
	// From is the base image: the path of an archive or layout directory,
	// or a registry reference. Its layers come first, its config is the
	// starting point. "" builds on an empty base.
	From string
	// Remote reaches the registry of From; the zero value as in Config.
	Remote Remote
	// WorkDir holds the base's blobs while building; required with From.
	WorkDir string
}

// Build writes an oci-archive holding the image, and returns the digest of
// what its index.json lists: the manifest for one platform, or an image
// index of one manifest per platform. Layers it makes are reproducible:
// entries sorted, times zeroed, owners root.
func Build(ctx context.Context, w io.Writer, opts BuildOptions) (string, error) {
	if len(opts.Platforms) == 0 {
		return "", fmt.Errorf("build: no platform given")
	}
	b := &builder{blobs: map[digest.Digest]blobSource{}}
	var base func(platform) (*image, error)
	if opts.From != "" {
		var err error
		if base, b.baseDir, err = openBase(ctx, opts.From, opts.WorkDir, opts.Remote); err != nil {
			return "", fmt.Errorf("base image %s: %w", opts.From, err)
		}
	}
	var manifests []v1.Descriptor
	for _, p := range opts.Platforms {
		desc, err := b.platformImage(p, base, opts)
		if err != nil {
			return "", fmt.Errorf("build for %s: %w", p, err)
		}
		manifests = append(manifests, desc)
	}
	top := manifests[0]
	if len(manifests) > 1 {
		top = b.json(v1.MediaTypeImageIndex, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: v1.MediaTypeImageIndex, Manifests: manifests})
	}
	if opts.Name != "" {
		top.Annotations = map[string]string{v1.AnnotationRefName: opts.Name}
	}
	index, err := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{top}})
	if err != nil {
		return "", err
	}
	return top.Digest.String(), b.write(w, index)
}

// blobSource is a blob of the archive being built: bytes made here, or a
// file of the base image's blobs.
type blobSource struct {
	data []byte
	path string
}

type builder struct {
	blobs   map[digest.Digest]blobSource
	order   []digest.Digest
	baseDir blobDir
}

func (b *builder) add(d digest.Digest, src blobSource) {
	if _, ok := b.blobs[d]; !ok {
		b.blobs[d] = src
		b.order = append(b.order, d)
	}
}

func (b *builder) bytes(mediaType string, data []byte) v1.Descriptor {
	desc := v1.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	b.add(desc.Digest, blobSource{data: data})
	return desc
}

func (b *builder) json(mediaType string, v any) v1.Descriptor {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // image-spec types always marshal
	}
	return b.bytes(mediaType, data)
}

// platformImage adds the blobs of the image for one platform and returns
// its manifest's descriptor.
func (b *builder) platformImage(p string, base func(platform) (*image, error), opts BuildOptions) (v1.Descriptor, error) {
	plat, err := parsePlatform(p)
	if err != nil {
		return v1.Descriptor{}, err
	}
	cfg := v1.Image{RootFS: v1.RootFS{Type: "layers"}}
	var layers []v1.Descriptor
	if base != nil {
		img, err := base(fromOCI(plat))
		if err != nil {
			return v1.Descriptor{}, err
		}
		cfg.Config, cfg.RootFS.DiffIDs = img.config.Config, img.config.RootFS.DiffIDs
		for _, l := range img.manifest.Layers {
			b.add(l.Digest, blobSource{path: b.baseDir.pathOf(l.Digest)})
			layers = append(layers, v1.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
		}
	}
	dir, err := opts.Files(p)
	if err != nil {
		return v1.Descriptor{}, err
	}
	layer, diffID, err := tarDir(dir)
	if err != nil {
		return v1.Descriptor{}, err
	}
	layers = append(layers, b.bytes(v1.MediaTypeImageLayerGzip, layer))
	cfg.RootFS.DiffIDs = append(slices.Clip(cfg.RootFS.DiffIDs), diffID)
	cfg.Platform = plat
	cfg.Config = mergeConfig(cfg.Config, opts.Config)
	man := v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    b.json(v1.MediaTypeImageConfig, cfg),
		Layers:    layers,
	}
	desc := b.json(v1.MediaTypeImageManifest, man)
	desc.Platform = &plat
	return desc, nil
}

// mergeConfig lays the function's settings over a base image's.
func mergeConfig(c v1.ImageConfig, over api.ImageConfig) v1.ImageConfig {
	if len(over.Entrypoint) > 0 {
		c.Entrypoint, c.Cmd = over.Entrypoint, nil
	}
	if len(over.Cmd) > 0 {
		c.Cmd = over.Cmd
	}
	if over.WorkingDir != "" {
		c.WorkingDir = over.WorkingDir
	}
	if over.User != "" {
		c.User = over.User
	}
	for _, kv := range over.Env {
		k, _, _ := strings.Cut(kv, "=")
		c.Env = slices.DeleteFunc(slices.Clone(c.Env), func(e string) bool { return strings.HasPrefix(e, k+"=") })
		c.Env = append(c.Env, kv)
	}
	labels := maps.Clone(c.Labels)
	if labels == nil && len(over.Labels) > 0 {
		labels = map[string]string{}
	}
	maps.Copy(labels, over.Labels)
	c.Labels = labels
	return c
}

// write writes the OCI layout as a tar: oci-layout, the blobs, index.json.
func (b *builder) write(w io.Writer, index []byte) error {
	tw := tar.NewWriter(w)
	put := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	layout := []byte(`{"imageLayoutVersion":"1.0.0"}`)
	if err := put(v1.ImageLayoutFile, int64(len(layout)), bytes.NewReader(layout)); err != nil {
		return err
	}
	for _, d := range b.order {
		if err := b.putBlob(put, d); err != nil {
			return err
		}
	}
	if err := put("index.json", int64(len(index)), bytes.NewReader(index)); err != nil {
		return err
	}
	return tw.Close()
}

func (b *builder) putBlob(put func(string, int64, io.Reader) error, d digest.Digest) error {
	name := "blobs/sha256/" + d.Encoded()
	src := b.blobs[d]
	if src.path == "" {
		return put(name, int64(len(src.data)), bytes.NewReader(src.data))
	}
	f, err := os.Open(src.path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return put(name, fi.Size(), f)
}

func parsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// tarDir makes a gzip layer of dir; it returns the compressed bytes and the
// digest of the uncompressed tar (the diff id).
func tarDir(dir string) ([]byte, digest.Digest, error) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	diff := sha256.New()
	if err := WriteTree(io.MultiWriter(zw, diff), dir); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), digest.NewDigestFromBytes(digest.SHA256, diff.Sum(nil)), nil
}

// WriteTree writes the tree below dir as a reproducible tar: entries
// sorted, times zeroed, owners root. The CLI sends an OCI layout directory
// to the agent this way.
func WriteTree(w io.Writer, dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		if err := addEntry(tw, dir, p); err != nil {
			return err
		}
	}
	return tw.Close()
}

func addEntry(tw *tar.Writer, dir, p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&os.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(dir, p)
	hdr.Name = filepath.ToSlash(rel)
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
	hdr.Format = tar.FormatPAX
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
