package images

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/edgefaas/edgefaas/errdefs"
)

// OCI whiteouts (image-spec layer.md): ".wh.NAME" deletes NAME from the
// layers below; ".wh..wh..opq" in a directory hides everything the layers
// below put in it. Other ".wh..wh." names are AUFS bookkeeping.
const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

func (a *applier) whiteout(dir, base string) error {
	if base == opaqueWhiteout {
		return a.removeLowerIn(dir)
	}
	if strings.HasPrefix(base, whiteoutPrefix+whiteoutPrefix) {
		return nil
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." {
		return fmt.Errorf("%w: whiteout names nothing", errdefs.ErrInvalid)
	}
	return a.removeLower(path.Join(dir, victim))
}

// removeLower removes what lower layers put at p. Whiteouts apply only to
// lower layers, so what this layer wrote stays, whatever the entry order.
func (a *applier) removeLower(p string) error {
	if !a.written[p] {
		err := a.root.RemoveAll(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	fi, err := a.root.Lstat(p)
	if err != nil || !fi.IsDir() {
		return err
	}
	return a.removeLowerIn(p)
}

// removeLowerIn removes what lower layers put inside dir.
func (a *applier) removeLowerIn(dir string) error {
	f, err := a.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := a.removeLower(path.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// mountpoints are the directories the sandbox mounts over. The root is
// mounted read-only, so they must exist before it is used.
var mountpoints = []struct {
	name string
	mode fs.FileMode
}{
	{"proc", 0o555},
	{"sys", 0o555},
	{"dev", 0o755},
	{"tmp", 0o777 | fs.ModeSticky},
	{"etc", 0o755},
}

// ensureMountpoints creates the mount points the image lacks. A mount
// point that is a symlink ("tmp -> /var/tmp") is resolved as the container
// will resolve it, with dir as "/", so what gets created is always inside
// the root.
func ensureMountpoints(root *os.Root, dir string) error {
	for _, m := range mountpoints {
		full, err := securejoin.SecureJoin(dir, m.name)
		if err != nil {
			return fmt.Errorf("%w: mount point /%s: %w", errdefs.ErrInvalid, m.name, err)
		}
		rel, err := filepath.Rel(dir, full)
		if err != nil {
			return err
		}
		fi, err := root.Lstat(rel)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%w: mount point /%s is not a directory", errdefs.ErrInvalid, m.name)
			}
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: mount point /%s: %w", errdefs.ErrInvalid, m.name, err)
		}
		if err := mkdirAll(root, rel, m.mode); err != nil {
			return fmt.Errorf("mount point /%s: %w", m.name, err)
		}
	}
	return nil
}
