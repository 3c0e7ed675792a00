package images

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportArchive imports an oci-archive tar file: an OCI image layout
// (oci-layout, index.json, blobs/sha256/...) in a tar, as skopeo, buildah
// and umoci plus tar write it. It picks the manifest for this host's
// platform, verifies every blob, unpacks the root (so a bad layer is refused
// here, not at the first start) and only then makes the image visible.
func (s *Store) ImportArchive(ctx context.Context, path string) (api.Image, error) {
	work, err := os.MkdirTemp(s.tmpDir(), "import-")
	if err != nil {
		return api.Image{}, err
	}
	defer os.RemoveAll(work)
	staged := blobDir(filepath.Join(work, "blobs"))
	indexJSON, err := stageArchive(ctx, path, staged)
	if err != nil {
		return api.Image{}, fmt.Errorf("archive %q: %w", path, err)
	}
	img, refs, err := resolve(staged, indexJSON, s.platform)
	if err != nil {
		return api.Image{}, fmt.Errorf("archive %q: %w", path, err)
	}
	rootfs := ""
	if _, err := os.Stat(s.rootPath(img.desc.Digest)); err != nil {
		rootfs = filepath.Join(work, "rootfs")
		if err := unpack(ctx, staged, img, rootfs, s.limits); err != nil {
			return api.Image{}, fmt.Errorf("archive %q: %w", path, err)
		}
	}
	if err := s.commit(staged, img, rootfs); err != nil {
		return api.Image{}, err
	}
	return img.describe(imageNames(refs, path), s.now()), nil
}

// stageArchive streams the archive once, copying every blob into staged
// (each checked against the digest it is named by), and returns index.json.
func stageArchive(ctx context.Context, file string, staged blobDir) ([]byte, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := maybeGunzip(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(ctxReader{ctx: ctx, r: r})
	var index []byte
	var sawLayout, sawDocker bool
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, tarError(err)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		switch {
		case hdr.Typeflag == tar.TypeDir:
		case name == "oci-layout":
			err = checkLayout(tr)
			sawLayout = true
		case name == "index.json":
			index, err = readSmall(tr, name)
		case name == "manifest.json":
			sawDocker = true
		case strings.HasPrefix(name, "blobs/"):
			err = stageEntry(hdr, name, tr, staged)
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case !sawLayout && sawDocker:
		return nil, fmt.Errorf("%w: this is a docker-archive, not an oci-archive; convert it with "+
			"skopeo copy docker-archive:IN oci-archive:OUT", errdefs.ErrInvalid)
	case !sawLayout:
		return nil, fmt.Errorf("%w: not an OCI image layout: no oci-layout file", errdefs.ErrInvalid)
	case index == nil:
		return nil, fmt.Errorf("%w: not an OCI image layout: no index.json", errdefs.ErrInvalid)
	}
	return index, nil
}

// stageEntry stages blobs/<alg>/<hex>. Blobs of other algorithms are left
// out; a descriptor naming one is refused when it is read.
func stageEntry(hdr *tar.Header, name string, r io.Reader, staged blobDir) error {
	alg, enc, ok := strings.Cut(strings.TrimPrefix(name, "blobs/"), "/")
	if !ok || alg != string(digest.SHA256) {
		return nil
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, enc)
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: archive entry %q is not a blob name", errdefs.ErrInvalid, hdr.Name)
	}
	if hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("%w: blob %s is not a regular file in the archive", errdefs.ErrInvalid, d)
	}
	return staged.stage(d, r)
}

func checkLayout(r io.Reader) error {
	b, err := readSmall(r, "oci-layout")
	if err != nil {
		return err
	}
	var l ocispec.ImageLayout
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("%w: oci-layout: %v", errdefs.ErrInvalid, err)
	}
	if l.Version != ocispec.ImageLayoutVersion {
		return fmt.Errorf("%w: oci-layout version %q, want %q",
			errdefs.ErrInvalid, l.Version, ocispec.ImageLayoutVersion)
	}
	return nil
}

func readSmall(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxJSONBytes+1))
	if err != nil {
		return nil, tarError(err)
	}
	if len(b) > maxJSONBytes {
		return nil, fmt.Errorf("%w: %s is over %d bytes", errdefs.ErrInvalid, name, maxJSONBytes)
	}
	return b, nil
}

// maybeGunzip accepts a gzipped archive as well as a plain one.
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(2)
	if len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		return br, nil
	}
	gz, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errdefs.ErrInvalid, err)
	}
	return gz, nil
}

// tarError classes an error from reading a tar stream: a damaged stream is
// the archive's fault; a cancelled context, a cap or a full disk is not.
func tarError(err error) error {
	if classified(err) {
		return err
	}
	return fmt.Errorf("%w: reading tar: %w", errdefs.ErrInvalid, err)
}

// classified reports whether err already has its class, or is not the
// archive's fault: a cancelled context or a full disk is not ErrInvalid.
func classified(err error) bool {
	return errors.Is(err, errdefs.ErrInvalid) || errors.Is(err, errdefs.ErrTooLarge) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || hostFault(err)
}

// ctxReader stops a long copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
