package images

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/edgefaas/edgefaas/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxJSONBytes caps an index, manifest or config: they are read whole.
const maxJSONBytes = 4 << 20

// blobDir is a directory laid out as <dir>/sha256/<hex>: the store's blobs,
// or the blobs staged from an archive being imported.
type blobDir string

func (b blobDir) path() string { return filepath.Join(string(b), "sha256") }

func (b blobDir) pathOf(d digest.Digest) string {
	return filepath.Join(string(b), string(d.Algorithm()), d.Encoded())
}

// open returns a reader of the blob that fails, at the latest at EOF, unless
// the bytes have exactly the descriptor's size and digest.
func (b blobDir) open(desc ocispec.Descriptor) (io.ReadCloser, error) {
	if err := checkDescriptor(desc); err != nil {
		return nil, err
	}
	f, err := os.Open(b.pathOf(desc.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: blob %s is missing", errdefs.ErrInvalid, desc.Digest)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() != desc.Size {
		f.Close()
		return nil, fmt.Errorf("%w: blob %s: size is %d bytes, descriptor says %d",
			errdefs.ErrInvalid, desc.Digest, fi.Size(), desc.Size)
	}
	return &verifiedReader{f: f, desc: desc, h: desc.Digest.Algorithm().Hash()}, nil
}

// readJSON reads a small verified blob and decodes it into v.
func (b blobDir) readJSON(desc ocispec.Descriptor, v any) error {
	if desc.Size > maxJSONBytes {
		return fmt.Errorf("%w: blob %s: %d bytes is too big for a %s",
			errdefs.ErrInvalid, desc.Digest, desc.Size, desc.MediaType)
	}
	r, err := b.open(desc)
	if err != nil {
		return err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: blob %s: %v", errdefs.ErrInvalid, desc.Digest, err)
	}
	return nil
}

// checkDescriptor refuses descriptors the store cannot hold.
func checkDescriptor(desc ocispec.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("%w: descriptor digest %q: %v", errdefs.ErrInvalid, desc.Digest, err)
	}
	if desc.Digest.Algorithm() != digest.SHA256 {
		return fmt.Errorf("%w: blob %s: only sha256 digests are supported", errdefs.ErrInvalid, desc.Digest)
	}
	if desc.Size < 0 {
		return fmt.Errorf("%w: blob %s: negative size", errdefs.ErrInvalid, desc.Digest)
	}
	return nil
}

type verifiedReader struct {
	f    *os.File
	desc ocispec.Descriptor
	h    hash.Hash
	n    int64
}

func (v *verifiedReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.desc.Size {
		return n, fmt.Errorf("%w: blob %s: longer than the %d bytes its descriptor says",
			errdefs.ErrInvalid, v.desc.Digest, v.desc.Size)
	}
	if err == io.EOF {
		if v.n != v.desc.Size {
			return n, fmt.Errorf("%w: blob %s: %d bytes, descriptor says %d",
				errdefs.ErrInvalid, v.desc.Digest, v.n, v.desc.Size)
		}
		if got := digest.NewDigest(v.desc.Digest.Algorithm(), v.h); got != v.desc.Digest {
			return n, fmt.Errorf("%w: blob %s: content has digest %s",
				errdefs.ErrInvalid, v.desc.Digest, got)
		}
	}
	return n, err
}

func (v *verifiedReader) Close() error { return v.f.Close() }

// stage copies a blob named d out of an archive into b, refusing it unless
// its content hashes to d. The file is synced so a later rename into the
// store publishes complete bytes.
func (b blobDir) stage(d digest.Digest, r io.Reader) error {
	if err := os.MkdirAll(b.path(), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(b.pathOf(d), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: blob %s appears twice in the archive", errdefs.ErrInvalid, d)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	h := d.Algorithm().Hash()
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		return fmt.Errorf("blob %s: %w", d, tarError(err))
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		return fmt.Errorf("%w: blob %s: content has digest %s", errdefs.ErrInvalid, d, got)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// writeFileAtomic writes data to a file in tmp, syncs it, and renames it to
// path, so readers see the old content or the new, never a part.
func writeFileAtomic(tmp, path string, data []byte) error {
	f, err := os.CreateTemp(tmp, "write-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes the renames into dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// stageAny copies r into b under the digest of its content, which it
// returns with the size. Identical content is stored once.
func (b blobDir) stageAny(r io.Reader) (digest.Digest, int64, error) {
	if err := os.MkdirAll(b.path(), 0o755); err != nil {
		return "", 0, err
	}
	f, err := os.CreateTemp(string(b), "stage-")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := digest.SHA256.Hash()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		return "", 0, tarError(err)
	}
	if err := f.Sync(); err != nil {
		return "", 0, err
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	d := digest.NewDigest(digest.SHA256, h)
	return d, n, os.Rename(f.Name(), b.pathOf(d))
}

// stageBytes stores a blob made here (a manifest written for a
// docker-archive) and returns its descriptor.
func (b blobDir) stageBytes(mediaType string, data []byte) (ocispec.Descriptor, error) {
	d, n, err := b.stageAny(bytes.NewReader(data))
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: n}, err
}
