package images

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Keep is what the store's users still reference, by image digest. The
// store keeps no names and knows no functions: the agent says.
type Keep struct {
	Images map[string]bool // images whose record and blobs stay
	Roots  map[string]bool // images whose unpacked root stays (those deployed)
}

// Collected is what Collect removed.
type Collected struct {
	Images []string // digests of the images removed
	Roots  int      // unpacked roots removed
	Blobs  int      // blobs removed
	Bytes  int64    // bytes freed, blobs and roots
}

// Collect removes every image not in keep.Images, every root not in
// keep.Roots, and every blob that no remaining image uses and no pull in
// progress holds. When a remaining image cannot be read, no blob is
// removed: leaking a blob is better than deleting one in use.
func (s *Store) Collect(ctx context.Context, keep Keep) (Collected, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out Collected
	recs, err := s.records()
	if err != nil {
		return out, err
	}
	var kept []ocispec.Descriptor
	for _, r := range recs {
		if keep.Images[r.Digest.String()] {
			kept = append(kept, r)
			continue
		}
		if err := os.Remove(s.recordPath(r.Digest)); err != nil {
			return out, fmt.Errorf("image %s: %w", r.Digest, err)
		}
		out.Images = append(out.Images, r.Digest.String())
	}
	if err := s.collectRoots(keep, &out); err != nil {
		return out, err
	}
	if err := s.collectPartials(); err != nil {
		return out, err
	}
	used, ok := s.usedBlobs(kept)
	if !ok {
		return out, nil
	}
	return out, s.collectBlobs(used, &out)
}

func (s *Store) collectRoots(keep Keep, out *Collected) error {
	entries, err := os.ReadDir(s.rootDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if keep.Roots[d.String()] && keep.Images[d.String()] {
			continue
		}
		size, _ := s.rootSizeLocked(d)
		if err := s.discardRoot(d); err != nil {
			return err
		}
		out.Roots++
		out.Bytes += size
	}
	return nil
}

// usedBlobs is every blob the images in recs need; ok is false when one of
// them cannot be read.
func (s *Store) usedBlobs(recs []ocispec.Descriptor) (map[digest.Digest]bool, bool) {
	used := map[digest.Digest]bool{}
	for _, r := range recs {
		img, err := loadImage(s.blobDir(), r)
		if err != nil {
			return nil, false
		}
		for _, b := range img.blobs() {
			used[b.Digest] = true
		}
	}
	return used, true
}

func (s *Store) collectBlobs(used map[digest.Digest]bool, out *Collected) error {
	entries, err := os.ReadDir(s.blobDir().path())
	if err != nil {
		return err
	}
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if used[d] || s.pins[d] > 0 {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		err = os.Remove(s.blobDir().pathOf(d))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing blob %s: %w", d, err)
		}
		out.Blobs++
		out.Bytes += fi.Size()
	}
	return syncDir(s.blobDir().path())
}

// pin keeps blobs from Collect while a pull writes or uses them; the
// returned func releases them.
func (s *Store) pin(ds ...digest.Digest) (unpin func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		s.pins[d]++
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, d := range ds {
			if s.pins[d]--; s.pins[d] <= 0 {
				delete(s.pins, d)
			}
		}
	}
}

// missingBytes adds up the sizes of the blobs the store does not hold.
func (s *Store) missingBytes(descs []ocispec.Descriptor) int64 {
	var n int64
	for _, d := range descs {
		if !s.hasBlob(d) {
			n += d.Size
		}
	}
	return n
}

// hasBlob reports whether the store holds a blob of d's digest and size;
// its content is checked again whenever it is read.
func (s *Store) hasBlob(d ocispec.Descriptor) bool {
	fi, err := os.Stat(s.blobDir().pathOf(d.Digest))
	return err == nil && fi.Size() == d.Size
}

// Images lists the digests of every image in the store.
func (s *Store) Images() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Digest.String())
	}
	return out, nil
}
