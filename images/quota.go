package images

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/edgefaas/edgefaas/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// budget is what an unpack may still write before the store passes its
// quota. A nil budget is unlimited.
type budget struct {
	left  int64
	quota int64
}

func (b *budget) take(n int64) error {
	if b == nil {
		return nil
	}
	if b.left -= n; b.left < 0 {
		return fmt.Errorf("%w: unpacking the image would pass the image store quota of %s",
			errdefs.ErrTooLarge, FormatBytes(b.quota))
	}
	return nil
}

// Usage is the store's size on disk as the quota counts it: the bytes of
// every blob plus the file bytes of every unpacked root.
func (s *Store) Usage() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usageLocked()
}

func (s *Store) usageLocked() (int64, error) {
	var total int64
	blobs, err := os.ReadDir(s.blobDir().path())
	if err != nil {
		return 0, err
	}
	for _, e := range blobs {
		if fi, err := e.Info(); err == nil {
			total += fi.Size()
		}
	}
	roots, err := os.ReadDir(s.rootDir())
	if err != nil {
		return 0, err
	}
	for _, e := range roots {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		n, err := s.rootSizeLocked(d)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// rootSizeLocked is the file bytes of a root, measured once per process.
func (s *Store) rootSizeLocked(d digest.Digest) (int64, error) {
	if n, ok := s.rootSizes[d]; ok {
		return n, nil
	}
	n, err := treeSize(s.rootPath(d))
	if err != nil {
		return 0, err
	}
	s.rootSizes[d] = n
	return n, nil
}

// treeSize adds up the sizes of the regular files below dir.
func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// reserve checks that the blobs of img that the store lacks fit in the
// quota, and returns the budget left for unpacking its root.
func (s *Store) reserve(img *image, src blobDir) (*budget, error) {
	if s.quota <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	used, err := s.usageLocked()
	if err != nil {
		return nil, err
	}
	// An image whose blobs the store holds (a reimport) needs nothing new.
	need := s.missingBytes(img.blobs())
	if need > 0 && used+need > s.quota {
		return nil, quotaError(need, used, s.quota)
	}
	return &budget{left: max(0, s.quota-used-need), quota: s.quota}, nil
}

// checkQuota refuses need more bytes of blobs when they would not fit.
func (s *Store) checkQuota(need int64) error {
	if s.quota <= 0 {
		return nil
	}
	used, err := s.Usage()
	if err != nil {
		return err
	}
	if need > 0 && used+need > s.quota {
		return quotaError(need, used, s.quota)
	}
	return nil
}

func quotaError(need, used, quota int64) error {
	return fmt.Errorf("%w: the image needs %s more, the image store holds %s of its %s quota: "+
		"remove unused images (edgefaas image prune) or raise --image-quota",
		errdefs.ErrTooLarge, FormatBytes(need), FormatBytes(used), FormatBytes(quota))
}

// FormatBytes writes a byte count for people: "1.5 MiB".
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
