package images

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/edgefaas/edgefaas/errdefs"
)

// openBase opens the base image of a build: the path of an archive or a
// layout directory, or else a registry reference. It returns a function
// that gives the base's image for a platform, reading blobs from the
// returned blobDir (below workDir).
func openBase(ctx context.Context, from, workDir string, remote Remote) (func(platform) (*image, error), blobDir, error) {
	if workDir == "" {
		return nil, "", fmt.Errorf("%w: a work directory is needed for a base image", errdefs.ErrInvalid)
	}
	if _, err := os.Stat(from); err == nil {
		return archiveBase(ctx, from, blobDir(filepath.Join(workDir, "base")))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", err
	}
	ref, err := remote.withDefaults().parse(from)
	if err != nil {
		return nil, "", fmt.Errorf("%w: neither a file nor an image reference: %v", errdefs.ErrInvalid, err)
	}
	s, err := Open(filepath.Join(workDir, "store"), Config{Remote: remote})
	if err != nil {
		return nil, "", err
	}
	pick := func(p platform) (*image, error) {
		s.platform = p
		pl := &puller{s: s, ref: ref, opts: s.remote.options(ctx), unpin: func() {}}
		defer func() { pl.unpin() }()
		return pl.pull(ctx)
	}
	return pick, s.blobDir(), nil
}

// archiveBase stages a base image archive or layout directory once and
// picks from it per platform.
func archiveBase(ctx context.Context, from string, dir blobDir) (func(platform) (*image, error), blobDir, error) {
	st, err := stageSource(ctx, from, dir)
	if err != nil {
		return nil, "", err
	}
	cands, err := st.candidates()
	if err != nil {
		return nil, "", err
	}
	pick := func(p platform) (*image, error) {
		img, _, err := choose(dir, cands, p, "", from)
		return img, err
	}
	return pick, dir, nil
}
