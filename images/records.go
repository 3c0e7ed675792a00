package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// record marks an image as imported. It holds the manifest descriptor (so
// reads verify the manifest's size as well as its digest) and the import
// time, which the blobs cannot tell.
type record struct {
	Manifest   ocispec.Descriptor `json:"manifest"`
	ImportedAt time.Time          `json:"imported_at"`
}

func (s *Store) recordPath(d digest.Digest) string {
	return filepath.Join(s.recordDir(), d.Encoded()+".json")
}

func (s *Store) readRecord(d digest.Digest) (record, error) {
	var rec record
	b, err := os.ReadFile(s.recordPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return rec, fmt.Errorf("image %s: %w", d, errdefs.ErrNotFound)
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("image %s: corrupt record: %w", d, err)
	}
	if rec.Manifest.Digest != d {
		return rec, fmt.Errorf("image %s: record names %s", d, rec.Manifest.Digest)
	}
	return rec, nil
}

func (s *Store) writeRecord(rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.tmpDir(), s.recordPath(rec.Manifest.Digest), b)
}

// records lists the manifest descriptors of every imported image.
func (s *Store) records() ([]ocispec.Descriptor, error) {
	entries, err := os.ReadDir(s.recordDir())
	if err != nil {
		return nil, err
	}
	var out []ocispec.Descriptor
	for _, e := range entries {
		hex, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		rec, err := s.readRecord(digest.NewDigestFromEncoded(digest.SHA256, hex))
		if err != nil {
			return nil, err
		}
		out = append(out, rec.Manifest)
	}
	return out, nil
}

// commit makes an imported image visible: blobs first, then the record,
// then the root (if one was unpacked). Each step is a rename of a complete
// file or tree, and each later step needs only the earlier ones.
func (s *Store) commit(staged blobDir, img *image, rootfs string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dst := s.blobDir()
	for _, desc := range img.blobs() {
		if _, err := os.Stat(dst.pathOf(desc.Digest)); err == nil {
			continue // content-addressed: the stored copy is the same bytes
		}
		if err := os.Rename(staged.pathOf(desc.Digest), dst.pathOf(desc.Digest)); err != nil {
			return fmt.Errorf("storing blob %s: %w", desc.Digest, err)
		}
	}
	if err := syncDir(dst.path()); err != nil {
		return err
	}
	rec := record{Manifest: img.desc, ImportedAt: s.now()}
	if err := s.writeRecord(rec); err != nil {
		return fmt.Errorf("image %s: writing record: %w", img.desc.Digest, err)
	}
	if rootfs == "" {
		return nil
	}
	return placeRoot(rootfs, s.rootPath(img.desc.Digest))
}

// removeUnusedBlobs deletes the blobs of manifest m that no remaining
// image references. When some image cannot be read, nothing is deleted:
// leaking a blob is better than deleting one in use.
func (s *Store) removeUnusedBlobs(m ocispec.Descriptor) error {
	img, err := loadImage(s.blobDir(), m)
	if err != nil {
		return nil
	}
	others, err := s.records()
	if err != nil {
		return err
	}
	used := map[digest.Digest]bool{}
	for _, o := range others {
		other, err := loadImage(s.blobDir(), o)
		if err != nil {
			return nil
		}
		for _, b := range other.blobs() {
			used[b.Digest] = true
		}
	}
	for _, b := range img.blobs() {
		if used[b.Digest] || s.pins[b.Digest] > 0 {
			continue
		}
		err := os.Remove(s.blobDir().pathOf(b.Digest))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing blob %s: %w", b.Digest, err)
		}
	}
	return nil
}
