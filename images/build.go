package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/edgefaas/edgefaas/api"
)

// ModeLabel is the image label that carries a function's mode (http or
// exec), so that deploy can pick it up.
const ModeLabel = "com.edgefaas.mode"

// BuildOptions describe a one-layer, one-platform image.
type BuildOptions struct {
	Dir      string          // every file below Dir lands at the same path in the image
	Name     string          // "NAME:TAG", recorded as the index's ref.name annotation
	Platform string          // "linux/amd64", "linux/arm64", "linux/arm/v7"
	Config   api.ImageConfig // entrypoint, env, working dir, user, labels
}

// WriteArchive writes an oci-archive (what skopeo's oci-archive: transport
// reads) holding one image made of Dir, and returns the manifest digest.
// The layer is reproducible: entries are sorted and times are zeroed.
func WriteArchive(w io.Writer, opts BuildOptions) (string, error) {
	plat, err := parsePlatform(opts.Platform)
	if err != nil {
		return "", err
	}
	layer, diffID, err := tarDir(opts.Dir)
	if err != nil {
		return "", err
	}
	cfg := v1.Image{
		Platform: plat,
		Config: v1.ImageConfig{
			Entrypoint: opts.Config.Entrypoint, Cmd: opts.Config.Cmd, Env: opts.Config.Env,
			WorkingDir: opts.Config.WorkingDir, User: opts.Config.User, Labels: opts.Config.Labels,
		},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
	cfgBlob, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	man := v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    descriptor(v1.MediaTypeImageConfig, cfgBlob),
		Layers:    []v1.Descriptor{descriptor(v1.MediaTypeImageLayerGzip, layer)},
	}
	manBlob, err := json.Marshal(man)
	if err != nil {
		return "", err
	}
	manDesc := descriptor(v1.MediaTypeImageManifest, manBlob)
	manDesc.Platform = &plat
	if opts.Name != "" {
		manDesc.Annotations = map[string]string{v1.AnnotationRefName: opts.Name}
	}
	index, err := json.Marshal(v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{manDesc},
	})
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(w)
	files := []struct {
		name string
		data []byte
	}{
		{v1.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blobPath(manBlob), manBlob},
		{blobPath(cfgBlob), cfgBlob},
		{blobPath(layer), layer},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	return string(manDesc.Digest), tw.Close()
}

func descriptor(mediaType string, blob []byte) v1.Descriptor {
	return v1.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
}

func blobPath(blob []byte) string {
	sum := sha256.Sum256(blob)
	return "blobs/sha256/" + hex.EncodeToString(sum[:])
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
		return nil, "", err
	}
	sort.Strings(paths)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	diff := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, diff))
	for _, p := range paths {
		if err := addEntry(tw, dir, p); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), digest.NewDigestFromBytes(digest.SHA256, diff.Sum(nil)), nil
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
