// Package images is the content-addressed image store of edgefaasd. It
// imports OCI image layouts (directories and oci-archive tars) and
// docker-archives, pulls from OCI registries (with go-containerregistry),
// verifies every blob against its descriptor, and unpacks root filesystems
// that the sandbox later mounts read-only. Unpacking treats images as
// hostile: every write goes through an os.Root, so the kernel refuses paths
// that escape. It also builds images (Build, for edgefaas build) and
// collects what nothing references (Collect).
//
// It does not mount or snapshot anything (a root is a plain directory
// tree), and it keeps no names and knows no functions: naming images and
// counting their users is the caller's business (the agent, with store).
package images

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxLayerBytes   = 2 << 30
	DefaultMaxLayerEntries = 200000
)

// Config bounds what a layer may unpack to and what the store may hold.
type Config struct {
	MaxLayerBytes   int64 // cap on uncompressed bytes per layer; 0 = 2 GiB
	MaxLayerEntries int   // cap on tar entries per layer; 0 = 200000
	// Quota caps the store's size (blobs plus unpacked roots, as Usage
	// counts); an import or pull that would pass it fails with
	// ErrTooLarge. 0 means no quota.
	Quota int64
	// Remote is how pulls reach registries; the zero value uses the
	// docker-style credentials of the keychain (~/.docker/config.json,
	// $DOCKER_CONFIG) and a transport with timeouts.
	Remote Remote
}

// Store is an image store rooted at one directory:
//
//	blobs/sha256/<hex>     verified blobs (manifests, configs, layers)
//	records/<hex>.json     one per imported image, keyed by manifest digest
//	roots/<hex>/           unpacked root filesystems
//	tmp/                   work in progress, wiped by Open
//	partial/<hex>          blobs being fetched, kept to resume (fetch.go)
//
// An image exists once its record does; the record is written only after
// its blobs are in place, and a root is renamed into roots/ only when it is
// complete, so a crash at any point leaves either nothing or a usable image.
type Store struct {
	dir      string
	limits   limits
	platform platform // the platform imports and pulls select
	quota    int64
	remote   Remote
	now      func() time.Time

	// mu serialises the steps that make an image appear or disappear
	// (moving blobs, records and roots), so Remove never deletes a blob an
	// import is committing. Unpacking runs outside it.
	mu        sync.Mutex
	pins      map[digest.Digest]int   // blobs a pull in progress holds
	rootSizes map[digest.Digest]int64 // file bytes of each root, once measured
}

// Open creates or opens a store rooted at dir, wiping dir/tmp: whatever an
// interrupted import or unpack left there is never used.
func Open(dir string, cfg Config) (*Store, error) {
	s := &Store{
		dir:       dir,
		limits:    limits{bytes: cfg.MaxLayerBytes, entries: cfg.MaxLayerEntries},
		platform:  hostPlatform(),
		quota:     cfg.Quota,
		remote:    cfg.Remote.withDefaults(),
		now:       time.Now,
		pins:      map[digest.Digest]int{},
		rootSizes: map[digest.Digest]int64{},
	}
	if s.limits.bytes <= 0 {
		s.limits.bytes = DefaultMaxLayerBytes
	}
	if s.limits.entries <= 0 {
		s.limits.entries = DefaultMaxLayerEntries
	}
	s.limits.chown = os.Geteuid() == 0
	for _, d := range []string{s.blobDir().path(), s.recordDir(), s.rootDir(), s.tmpDir(), s.partialDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	if err := wipe(s.tmpDir()); err != nil {
		return nil, fmt.Errorf("image store: wiping tmp: %w", err)
	}
	return s, nil
}

// Get reads an imported image's metadata back from its blobs. Names are
// not stored, so they are empty.
func (s *Store) Get(ctx context.Context, dgst string) (api.Image, error) {
	d, err := parseDigest(dgst)
	if err != nil {
		return api.Image{}, err
	}
	rec, err := s.readRecord(d)
	if err != nil {
		return api.Image{}, err
	}
	img, err := loadImage(s.blobDir(), rec.Manifest)
	if err != nil {
		return api.Image{}, fmt.Errorf("image %s: %w", d, err)
	}
	return img.describe(nil, rec.ImportedAt), nil
}

// RootFS returns the path of the unpacked root of the image, unpacking it
// first if it is missing. The unpack happens in tmp/ and is renamed into
// place, so a half-made root is never returned.
func (s *Store) RootFS(ctx context.Context, dgst string) (string, error) {
	d, err := parseDigest(dgst)
	if err != nil {
		return "", err
	}
	rec, err := s.readRecord(d)
	if err != nil {
		return "", err
	}
	dst := s.rootPath(d)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	img, err := loadImage(s.blobDir(), rec.Manifest)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", d, err)
	}
	work, err := os.MkdirTemp(s.tmpDir(), "unpack-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	rootfs := filepath.Join(work, "rootfs")
	if err := unpack(ctx, s.blobDir(), img, rootfs, s.limits); err != nil {
		return "", fmt.Errorf("image %s: %w", d, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Removed while we unpacked: do not leave a root without a record.
	if _, err := s.readRecord(d); err != nil {
		return "", err
	}
	if err := placeRoot(rootfs, dst); err != nil {
		return "", err
	}
	return dst, nil
}

// Remove deletes an image's record and root, and the blobs of the image no
// other imported image uses.
func (s *Store) Remove(ctx context.Context, dgst string) error {
	d, err := parseDigest(dgst)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.readRecord(d)
	if err != nil {
		return err
	}
	// Move the root aside first: a rename is atomic, a RemoveAll is not.
	if err := s.discardRoot(d); err != nil {
		return err
	}
	if err := os.Remove(s.recordPath(d)); err != nil {
		return fmt.Errorf("image %s: %w", d, err)
	}
	return s.removeUnusedBlobs(rec.Manifest)
}

// discardRoot renames the root of d into tmp/ and deletes it there.
func (s *Store) discardRoot(d digest.Digest) error {
	work, err := os.MkdirTemp(s.tmpDir(), "remove-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	delete(s.rootSizes, d)
	err = os.Rename(s.rootPath(d), filepath.Join(work, "rootfs"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("image %s: removing root: %w", d, err)
	}
	return nil
}

func (s *Store) blobDir() blobDir  { return blobDir(filepath.Join(s.dir, "blobs")) }
func (s *Store) recordDir() string { return filepath.Join(s.dir, "records") }
func (s *Store) rootDir() string   { return filepath.Join(s.dir, "roots") }
func (s *Store) tmpDir() string    { return filepath.Join(s.dir, "tmp") }
func (s *Store) rootPath(d digest.Digest) string {
	return filepath.Join(s.rootDir(), d.Encoded())
}

// parseDigest validates a manifest digest given by a caller.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("image digest %q: %w: %v", s, errdefs.ErrInvalid, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("image digest %q: %w: only sha256 is supported", s, errdefs.ErrInvalid)
	}
	return d, nil
}

// placeRoot renames a complete root into place. If another unpack won the
// race, its root is as good as ours.
func placeRoot(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("placing root: %w", err)
	}
	return syncDir(filepath.Dir(dst))
}

// wipe deletes everything inside dir.
func wipe(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
