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
	"os"
	"path/filepath"
	"strings"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportOptions select what Import takes from a source.
type ImportOptions struct {
	// Name picks one image, by a NAME:TAG it carries, when the source holds
	// several for this platform (a docker-archive of several images).
	Name string
	// SourceName is the file name that bare tags in the source are
	// qualified with ("hello.tar" with tag "1.0" is "hello:1.0"); the
	// path's base when empty. The agent spools uploads to files of its own
	// and passes the client's file name here.
	SourceName string
}

// ImportArchive imports the image for this host from path, as Import does
// with no options.
func (s *Store) ImportArchive(ctx context.Context, path string) (api.Image, error) {
	return s.Import(ctx, path, ImportOptions{})
}

// Import imports an image from path: an OCI image layout directory, an
// oci-archive tar (an OCI layout in a tar, as skopeo, buildah and umoci
// plus tar write it) or a docker-archive tar (docker save), gzipped or not.
// Any of them may hold an index or several images: the one for this host's
// platform is taken. Every blob is verified, the root is unpacked (so a bad
// layer is refused here, not at the first start) and only then is the
// image made visible.
func (s *Store) Import(ctx context.Context, path string, opts ImportOptions) (api.Image, error) {
	work, err := os.MkdirTemp(s.tmpDir(), "import-")
	if err != nil {
		return api.Image{}, err
	}
	defer os.RemoveAll(work)
	staged := blobDir(filepath.Join(work, "blobs"))
	if opts.SourceName == "" {
		opts.SourceName = path
	}
	img, refs, err := s.resolveSource(ctx, path, staged, opts)
	if err != nil {
		return api.Image{}, fmt.Errorf("import %q: %w", opts.SourceName, err)
	}
	if err := s.install(ctx, staged, img, work); err != nil {
		return api.Image{}, fmt.Errorf("import %q: %w", opts.SourceName, err)
	}
	return img.describe(importNames(refs, opts.SourceName), s.now()), nil
}

// importNames are the names of an imported image: those the source gives,
// or, when it gives none, one made from its file name ("hello.tar" is
// "hello:latest"). Every image comes in with a name, so an image without
// one is an image whose name went to a newer one, and collection may take
// it once no function uses it.
func importNames(refs []string, source string) []string {
	if names := imageNames(refs, source); len(names) > 0 {
		return names
	}
	return []string{nameFromFile(source) + ":latest"}
}

// resolveSource stages the source and picks its image for this host.
func (s *Store) resolveSource(ctx context.Context, path string, staged blobDir, opts ImportOptions) (*image, []string, error) {
	st, err := stageSource(ctx, path, staged)
	if err != nil {
		return nil, nil, err
	}
	cands, err := st.candidates()
	if err != nil {
		return nil, nil, err
	}
	return choose(staged, cands, s.platform, opts.Name, opts.SourceName)
}

// install checks the quota, unpacks the image's root unless the store has
// it, and commits blobs, record and root. Blobs come from src, which may
// be the store itself (a pull) or a staging dir (an import); work is a
// private dir in tmp/.
func (s *Store) install(ctx context.Context, src blobDir, img *image, work string) error {
	budget, err := s.reserve(img, src)
	if err != nil {
		return err
	}
	rootfs := ""
	if _, err := os.Stat(s.rootPath(img.desc.Digest)); err != nil {
		rootfs = filepath.Join(work, "rootfs")
		lim := s.limits
		lim.budget = budget
		if err := unpack(ctx, src, img, rootfs, lim); err != nil {
			return err
		}
	}
	return s.commit(src, img, rootfs)
}

// stageEntry stages blobs/<alg>/<hex>. Blobs of other algorithms are left
// out; a descriptor naming one is refused when it is read.
func stageEntry(e sourceEntry, staged blobDir) error {
	alg, enc, ok := strings.Cut(strings.TrimPrefix(e.name, "blobs/"), "/")
	if !ok || alg != string(digest.SHA256) {
		return nil
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, enc)
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: archive entry %q is not a blob name", errdefs.ErrInvalid, e.name)
	}
	if e.typ != tar.TypeReg {
		return fmt.Errorf("%w: blob %s is not a regular file in the archive", errdefs.ErrInvalid, d)
	}
	return staged.stage(d, e.r)
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
