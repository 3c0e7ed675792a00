package images

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/edgefaas/edgefaas/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// maxSourceEntries bounds the files of an archive or layout directory: the
// staging keeps a small record per file.
const maxSourceEntries = 100000

// staging is what reading an import source (an OCI layout, as a directory
// or a tar, or a docker-archive tar) left: the blobs, copied and verified
// into dir, and the files that say how they form images.
type staging struct {
	dir    blobDir
	layout bool   // an oci-layout file was seen
	index  []byte // index.json
	docker []byte // manifest.json (docker save)
	// files are the docker-archive's other regular files (configs and
	// layer tars), stored in dir by the digest of their content.
	files map[string]stagedFile
	// links are symlinks among them: docker save links a layer.tar it
	// already wrote instead of writing it again.
	links map[string]string
	n     int
}

type stagedFile struct {
	digest digest.Digest
	size   int64
}

// sourceEntry is one file of an import source.
type sourceEntry struct {
	name     string // cleaned, relative
	typ      byte   // tar.TypeReg, tar.TypeSymlink, ...
	linkname string
	r        io.Reader
}

// stageSource reads an import source at p, a directory or a tar file
// (gzipped or not), into a staging in dir.
func stageSource(ctx context.Context, p string, dir blobDir) (*staging, error) {
	st := &staging{dir: dir, files: map[string]stagedFile{}, links: map[string]string{}}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		err = walkDir(ctx, p, st.add)
	} else {
		err = walkTar(ctx, p, st.add)
	}
	if err != nil {
		return nil, err
	}
	return st, st.check()
}

// check says what is wrong when the source is neither format.
func (st *staging) check() error {
	switch {
	case st.layout && st.index == nil:
		return fmt.Errorf("%w: not an OCI image layout: no index.json", errdefs.ErrInvalid)
	case !st.layout && st.docker == nil:
		return fmt.Errorf("%w: neither an OCI image layout (no oci-layout file) "+
			"nor a docker-archive (no manifest.json)", errdefs.ErrInvalid)
	}
	return nil
}

// candidates lists the images the source holds: what an OCI layout's
// index leads to, or the images of a docker-archive's manifest.json.
func (st *staging) candidates() ([]candidate, error) {
	if st.layout {
		return indexCandidates(st.dir, st.index)
	}
	return st.dockerCandidates()
}

func (st *staging) add(e sourceEntry) error {
	if st.n++; st.n > maxSourceEntries {
		return fmt.Errorf("%w: over %d files", errdefs.ErrTooLarge, maxSourceEntries)
	}
	switch {
	case e.typ == tar.TypeDir:
		return nil
	case e.name == "oci-layout":
		st.layout = true
		return checkLayout(e.r)
	case e.name == "index.json":
		return readOnce(&st.index, e)
	case e.name == "manifest.json":
		return readOnce(&st.docker, e)
	case strings.HasPrefix(e.name, "blobs/"):
		return stageEntry(e, st.dir)
	case e.typ == tar.TypeSymlink:
		st.links[e.name] = path.Join(path.Dir(e.name), e.linkname)
		return nil
	case e.typ == tar.TypeReg:
		d, n, err := st.dir.stageAny(e.r)
		if err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		st.files[e.name] = stagedFile{digest: d, size: n}
	}
	return nil
}

func readOnce(dst *[]byte, e sourceEntry) error {
	if *dst != nil {
		return fmt.Errorf("%w: %s appears twice", errdefs.ErrInvalid, e.name)
	}
	b, err := readSmall(e.r, e.name)
	*dst = b
	return err
}

// file finds a docker-archive file by the name manifest.json gives,
// following one level of symlink.
func (st *staging) file(name string) (stagedFile, error) {
	n := strings.TrimPrefix(path.Clean("/"+name), "/")
	if t, ok := st.links[n]; ok {
		n = strings.TrimPrefix(path.Clean("/"+t), "/")
	}
	f, ok := st.files[n]
	if !ok {
		return f, fmt.Errorf("%w: manifest.json names %q, which the archive lacks", errdefs.ErrInvalid, name)
	}
	return f, nil
}

// walkTar calls fn for every entry of the tar file p.
func walkTar(ctx context.Context, p string, fn func(sourceEntry) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := maybeGunzip(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(ctxReader{ctx: ctx, r: r})
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return tarError(err)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		// archive/tar reports the old '\x00' type of regular files as TypeReg.
		e := sourceEntry{name: name, typ: hdr.Typeflag, linkname: hdr.Linkname, r: tr}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// walkDir calls fn for every regular file below dir. Symlinks are skipped:
// an OCI layout has none.
func walkDir(ctx context.Context, dir string, fn func(sourceEntry) error) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return fn(sourceEntry{name: filepath.ToSlash(rel), typ: tar.TypeReg, r: ctxReader{ctx: ctx, r: f}})
	})
}
