package images

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// applyTar applies one layer's uncompressed tar stream to root, reading r
// to its end (the padding after the last entry is part of the diff ID).
//
// Every path goes through root, so the kernel refuses anything resolving
// outside it: ".." escapes, absolute symlinks and relative ones that climb
// out, whether the entry writes through them, hardlinks to them or deletes
// through them. Names are also cleaned first, so "../x" is refused by name.
func applyTar(ctx context.Context, root *os.Root, r io.Reader, lim limits) error {
	capped := &capReader{r: ctxReader{ctx: ctx, r: r}, left: lim.bytes, max: lim.bytes}
	a := &applier{root: root, lim: lim, written: map[string]bool{}}
	tr := tar.NewReader(capped)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return tarError(err)
		}
		if n >= lim.entries {
			return fmt.Errorf("layer has over %d entries: %w", lim.entries, errdefs.ErrTooLarge)
		}
		if err := a.apply(hdr, tr); err != nil {
			return entryError(hdr.Name, err)
		}
	}
	if _, err := io.Copy(io.Discard, capped); err != nil {
		return tarError(err)
	}
	return a.finish()
}

// entryError names the entry and classes the failure: whatever the archive
// caused is ErrInvalid, a cap or a full disk keeps its own class.
func entryError(name string, err error) error {
	if classified(err) {
		return fmt.Errorf("entry %q: %w", name, err)
	}
	return fmt.Errorf("entry %q: %w: %w", name, errdefs.ErrInvalid, err)
}

// applier applies the entries of one layer.
type applier struct {
	root *os.Root
	lim  limits
	// written holds the paths this layer created: whiteouts only remove
	// what lower layers made.
	written map[string]bool
	size    int64 // file content so far
	dirs    []dirTime
}

// dirTime is a directory mtime, set once the layer is done writing into it.
type dirTime struct {
	name  string
	mtime time.Time
}

func (a *applier) apply(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if dir, base := path.Split(name); strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(path.Clean(dir), base)
	}
	if name == "." && hdr.Typeflag != tar.TypeDir {
		return fmt.Errorf("%w: the root can only be a directory", errdefs.ErrInvalid)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = a.dir(name, hdr)
	case tar.TypeReg, tar.TypeGNUSparse:
		err = a.file(name, hdr, r)
	case tar.TypeSymlink:
		err = a.symlink(name, hdr)
	case tar.TypeLink:
		err = a.hardlink(name, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return fmt.Errorf("%w: device nodes and fifos are not allowed in images", errdefs.ErrInvalid)
	default:
		return fmt.Errorf("%w: unsupported tar entry type %q", errdefs.ErrInvalid, hdr.Typeflag)
	}
	if err != nil {
		return err
	}
	a.markWritten(name)
	return nil
}

// markWritten records name, and its parents: a layer that writes a/b/c
// has a and a/b too, even when it lists no entry for them.
func (a *applier) markWritten(name string) {
	for name != "." && !a.written[name] {
		a.written[name] = true
		name = path.Dir(name)
	}
}

// cleanName makes an entry name relative to the root. A leading "/" is
// dropped (tar's convention); a name that climbs out is refused.
func cleanName(raw string) (string, error) {
	if strings.IndexByte(raw, 0) >= 0 {
		return "", fmt.Errorf("%w: name holds a NUL byte", errdefs.ErrInvalid)
	}
	// Resolving a path costs a step per component, and creating one a
	// resolution per missing parent: PATH_MAX keeps that bounded.
	if len(raw) > maxNameBytes {
		return "", fmt.Errorf("%w: name is over %d bytes", errdefs.ErrInvalid, maxNameBytes)
	}
	n := path.Clean(strings.TrimLeft(raw, "/"))
	if n == ".." || strings.HasPrefix(n, "../") {
		return "", fmt.Errorf("%w: the name leaves the root", errdefs.ErrInvalid)
	}
	return n, nil
}

// maxNameBytes is Linux's PATH_MAX.
const maxNameBytes = 4096

// mkdirAll makes the missing directories of name, with mode set
// explicitly: the daemon's umask must not decide what a container sees.
func mkdirAll(root *os.Root, name string, mode fs.FileMode) error {
	fi, err := root.Stat(name)
	if err == nil {
		if fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.ENOTDIR}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := path.Dir(name); parent != "." {
		if err := mkdirAll(root, parent, 0o755); err != nil {
			return err
		}
	}
	if err := root.Mkdir(name, mode.Perm()); err != nil {
		return err
	}
	return root.Chmod(name, mode)
}

// makeRoom prepares name for a new entry. It creates missing parents, as
// tar does, and removes whatever is at name, except a directory when a
// directory comes: a layer's directory entry updates the directory below.
// Removing first means a new entry never writes through an old symlink.
func (a *applier) makeRoom(name string, isDir bool) (exists bool, err error) {
	if parent := path.Dir(name); parent != "." {
		if err := mkdirAll(a.root, parent, 0o755); err != nil {
			return false, err
		}
	}
	fi, err := a.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if isDir && fi.IsDir() {
		return true, nil
	}
	return false, a.root.RemoveAll(name)
}

func (a *applier) dir(name string, hdr *tar.Header) error {
	exists, err := a.makeRoom(name, true)
	if err != nil {
		return err
	}
	if !exists {
		if err := a.root.Mkdir(name, 0o755); err != nil {
			return err
		}
	}
	return a.setMeta(name, hdr)
}

func (a *applier) file(name string, hdr *tar.Header, r io.Reader) error {
	// The stream cap does not bound sparse files, whose holes cost nothing
	// to send: count the sizes they unpack to as well.
	a.size += hdr.Size
	if hdr.Size < 0 || a.size > a.lim.bytes {
		return fmt.Errorf("layer files are over %d bytes: %w", a.lim.bytes, errdefs.ErrTooLarge)
	}
	if err := a.lim.budget.take(hdr.Size); err != nil {
		return err
	}
	if _, err := a.makeRoom(name, false); err != nil {
		return err
	}
	f, err := a.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return a.setMeta(name, hdr)
}

// symlink creates a symlink, whatever its target: it is only followed
// inside the container, where the root is "/", and every later write here
// resolves through a.root, which refuses to follow it out.
func (a *applier) symlink(name string, hdr *tar.Header) error {
	if _, err := a.makeRoom(name, false); err != nil {
		return err
	}
	if err := a.root.Symlink(hdr.Linkname, name); err != nil {
		return err
	}
	return a.setMeta(name, hdr)
}

func (a *applier) hardlink(name string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	if target == "." || target == name {
		return fmt.Errorf("%w: hardlink to %q", errdefs.ErrInvalid, hdr.Linkname)
	}
	fi, err := a.root.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: hardlink target %q does not exist", errdefs.ErrInvalid, hdr.Linkname)
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%w: hardlink to directory %q", errdefs.ErrInvalid, hdr.Linkname)
	}
	if _, err := a.makeRoom(name, false); err != nil {
		return err
	}
	return a.root.Link(target, name)
}

// setMeta applies owner, mode and times. Owner goes first: chown clears
// mode bits. Symlinks keep their mode and times (chmod and chtimes would
// follow them); directories get their times when the layer is done.
func (a *applier) setMeta(name string, hdr *tar.Header) error {
	if a.lim.chown {
		if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) >= math.MaxUint32 || int64(hdr.Gid) >= math.MaxUint32 {
			return fmt.Errorf("%w: owner %d:%d out of range", errdefs.ErrInvalid, hdr.Uid, hdr.Gid)
		}
		if err := a.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return nil
	}
	if err := a.root.Chmod(name, fileMode(hdr)); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		a.dirs = append(a.dirs, dirTime{name: name, mtime: hdr.ModTime})
		return nil
	}
	return a.root.Chtimes(name, accessTime(hdr), hdr.ModTime)
}

// fileMode keeps permissions and the sticky bit. Setuid and setgid are
// dropped: an image must not bring privilege-raising binaries.
func fileMode(hdr *tar.Header) fs.FileMode {
	m := fs.FileMode(hdr.Mode) & fs.ModePerm
	if hdr.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func accessTime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

// finish sets directory times, now that nothing more is written into them.
func (a *applier) finish() error {
	for _, d := range a.dirs {
		fi, err := a.root.Lstat(d.name)
		if err != nil || !fi.IsDir() {
			continue // replaced later in the layer
		}
		if err := a.root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return entryError(d.name, err)
		}
	}
	return nil
}
