package images

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/edgefaas/edgefaas/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// limits bound what one layer may unpack to.
type limits struct {
	bytes   int64   // uncompressed tar stream, and file contents, per layer
	entries int     // tar entries per layer
	chown   bool    // apply the entries' owners (needs root)
	budget  *budget // what the store's quota leaves for the whole root; nil: no quota
}

type compression int

const (
	uncompressed compression = iota
	gzipped
)

// layerCompression says how a layer is compressed, refusing media types
// the store cannot unpack.
func layerCompression(desc ocispec.Descriptor) (compression, error) {
	switch desc.MediaType {
	case ocispec.MediaTypeImageLayer, mediaTypeDockerLayer:
		return uncompressed, nil
	case ocispec.MediaTypeImageLayerGzip, mediaTypeDockerLayerGzip:
		return gzipped, nil
	case ocispec.MediaTypeImageLayerZstd, "application/vnd.docker.image.rootfs.diff.tar.zstd":
		return 0, fmt.Errorf("%w: layer %s is zstd-compressed, which is not supported: "+
			"re-export the image with gzip layers", errdefs.ErrInvalid, desc.Digest)
	}
	return 0, fmt.Errorf("%w: layer %s has unsupported media type %q",
		errdefs.ErrInvalid, desc.Digest, desc.MediaType)
}

// unpack applies the image's layers in order into a new directory dst,
// then makes sure the sandbox's mount points exist.
func unpack(ctx context.Context, src blobDir, img *image, dst string, lim limits) error {
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dst, 0o755); err != nil { // whatever the umask
		return err
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return err
	}
	defer root.Close()
	for i, l := range img.manifest.Layers {
		diffID := img.config.RootFS.DiffIDs[i]
		if err := applyLayer(ctx, root, src, l, diffID, lim); err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
		}
	}
	return ensureMountpoints(root, dst)
}

// applyLayer unpacks one layer blob, verifying the blob's digest and the
// uncompressed stream's diff ID on the way.
func applyLayer(ctx context.Context, root *os.Root, src blobDir, desc ocispec.Descriptor, diffID digest.Digest, lim limits) error {
	comp, err := layerCompression(desc)
	if err != nil {
		return err
	}
	blob, err := src.open(desc)
	if err != nil {
		return err
	}
	defer blob.Close()
	var r io.Reader = blob
	if comp == gzipped {
		gz, err := gzip.NewReader(blob)
		if err != nil {
			return tarError(err)
		}
		defer gz.Close()
		r = gz
	}
	h := sha256.New()
	if err := applyTar(ctx, root, io.TeeReader(r, h), lim); err != nil {
		return err
	}
	// Drain what gzip left, so the blob's digest is checked at its EOF.
	if _, err := io.Copy(io.Discard, blob); err != nil {
		return tarError(err)
	}
	if got := digest.NewDigest(digest.SHA256, h); got != diffID {
		return fmt.Errorf("%w: uncompressed layer has digest %s, config says %s",
			errdefs.ErrInvalid, got, diffID)
	}
	return nil
}

// capReader fails with ErrTooLarge once more than left bytes are read.
type capReader struct {
	r    io.Reader
	left int64
	max  int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// Allow one probing read to find a clean EOF at the cap.
		var one [1]byte
		if _, err := io.ReadFull(c.r, one[:]); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("layer is over %d uncompressed bytes: %w", c.max, errdefs.ErrTooLarge)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// hostFault reports whether err is the host's trouble rather than the
// archive's: such errors are not ErrInvalid.
func hostFault(err error) bool {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
