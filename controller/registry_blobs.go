package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// uploadTTL is how long an upload no request touched is kept: a client
// that gave up does not fill the disk.
const uploadTTL = 24 * time.Hour

func (g *registry) blobDir() string   { return filepath.Join(g.dir, "blobs", "sha256") }
func (g *registry) uploadDir() string { return filepath.Join(g.dir, "uploads") }

// blobPath is where a blob lives; digest must match digestPattern, so it
// cannot name anything outside blobDir.
func (g *registry) blobPath(digest string) string {
	return filepath.Join(g.blobDir(), strings.TrimPrefix(digest, "sha256:"))
}

// blobSize is the size of a held blob; fs.ErrNotExist when there is none.
func (g *registry) blobSize(digest string) (int64, error) {
	fi, err := os.Stat(g.blobPath(digest))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// handleBlob serves GET and HEAD of /v2/<repo>/blobs/<digest>. Blobs are
// shared by every repository: content-addressed and readable by everyone
// who may read any repository. Deleting one is not offered: manifests of
// other repositories may need it.
func (g *registry) handleBlob(w http.ResponseWriter, r *http.Request, repo, digest string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeRegError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "blobs are only read here; push with an upload")
		return
	}
	if !digestPattern.MatchString(digest) {
		writeRegError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("digest %q: want sha256:<64 hex>", digest))
		return
	}
	f, err := os.Open(g.blobPath(digest))
	if errors.Is(err, fs.ErrNotExist) {
		writeRegError(w, http.StatusNotFound, "BLOB_UNKNOWN", fmt.Sprintf("blob %s", digest))
		return
	}
	if r.Method == http.MethodHead {
		// A pusher asking whether the blob is here skips its upload:
		// the collection's grace starts again for it.
		now := g.now()
		_ = os.Chtimes(g.blobPath(digest), now, now)
	}
	if err != nil {
		writeRegErr(w, err, "BLOB_UNKNOWN")
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", digest)
	// The digest is the strongest validator there is: with it as ETag,
	// ServeContent answers If-Range, so a client resuming a cut-off pull
	// gets the rest of this blob or, never, of another.
	h.Set("ETag", `"`+digest+`"`)
	h.Set("Cache-Control", "max-age=31536000, immutable")
	http.ServeContent(w, r, "", time.Time{}, f)
}

// handleUpload serves /v2/<repo>/blobs/uploads/[<id>]: POST starts an
// upload (or, with ?digest=, is the whole of one; with ?mount=, finds the
// blob held already), PATCH appends, PUT ?digest= appends the rest and
// commits, GET says how far it got, DELETE cancels.
func (g *registry) handleUpload(w http.ResponseWriter, r *http.Request, repo, id string) {
	if r.Method == http.MethodPost {
		if id != "" {
			writeRegError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "POST starts an upload at .../blobs/uploads/")
			return
		}
		g.startUpload(w, r, repo)
		return
	}
	if !validUploadID(id) {
		writeRegError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", fmt.Sprintf("upload %q", id))
		return
	}
	if !g.lock(id) {
		writeRegError(w, http.StatusConflict, "BLOB_UPLOAD_INVALID", "another request is writing this upload")
		return
	}
	defer g.unlock(id)
	path := filepath.Join(g.uploadDir(), id)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		writeRegError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", fmt.Sprintf("upload %q", id))
		return
	}
	if err != nil {
		writeRegErr(w, err, "BLOB_UPLOAD_UNKNOWN")
		return
	}
	switch r.Method {
	case http.MethodGet:
		g.uploadStatus(w, repo, id, fi.Size(), http.StatusNoContent)
	case http.MethodDelete:
		_ = os.Remove(path)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPatch:
		// A chunk says where it starts; it must be where the upload is.
		if cr := r.Header.Get("Content-Range"); cr != "" {
			start, _, _ := strings.Cut(strings.TrimPrefix(cr, "bytes="), "-")
			if n, err := strconv.ParseInt(start, 10, 64); err != nil || n != fi.Size() {
				g.uploadStatus(w, repo, id, fi.Size(), 0)
				writeRegError(w, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID",
					fmt.Sprintf("chunk starts at %q, the upload holds %d bytes", start, fi.Size()))
				return
			}
		}
		n, err := appendFile(path, r.Body)
		if err != nil {
			writeRegError(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", err.Error())
			return
		}
		g.uploadStatus(w, repo, id, n, http.StatusAccepted)
	case http.MethodPut:
		digest := r.URL.Query().Get("digest")
		if !digestPattern.MatchString(digest) {
			writeRegError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("digest %q: want sha256:<64 hex>", digest))
			return
		}
		if _, err := appendFile(path, r.Body); err != nil {
			writeRegError(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", err.Error())
			return
		}
		g.commit(w, repo, path, digest)
	default:
		writeRegError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed on an upload")
	}
}

func (g *registry) startUpload(w http.ResponseWriter, r *http.Request, repo string) {
	q := r.URL.Query()
	// A blob is held once for all repositories: mounting is finding it.
	if m := q.Get("mount"); digestPattern.MatchString(m) {
		if _, err := g.blobSize(m); err == nil {
			w.Header().Set("Location", "/v2/"+repo+"/blobs/"+m)
			w.Header().Set("Docker-Content-Digest", m)
			w.WriteHeader(http.StatusCreated)
			return
		}
	}
	g.sweepUploads()
	id := randomHex(16)
	path := filepath.Join(g.uploadDir(), id)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		writeRegErr(w, err, "BLOB_UPLOAD_UNKNOWN")
		return
	}
	f.Close()
	if digest := q.Get("digest"); digest != "" {
		// The whole blob in one request.
		if !digestPattern.MatchString(digest) {
			os.Remove(path)
			writeRegError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("digest %q: want sha256:<64 hex>", digest))
			return
		}
		if _, err := appendFile(path, r.Body); err != nil {
			os.Remove(path)
			writeRegError(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", err.Error())
			return
		}
		g.commit(w, repo, path, digest)
		return
	}
	g.uploadStatus(w, repo, id, 0, http.StatusAccepted)
}

// uploadStatus sets the headers that tell a client where its upload is;
// code 0 writes no status.
func (g *registry) uploadStatus(w http.ResponseWriter, repo, id string, size int64, code int) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
	h.Set("Docker-Upload-UUID", id)
	// "0-0" for an empty upload is what clients expect, though it says
	// one byte.
	h.Set("Range", fmt.Sprintf("0-%d", max(size-1, 0)))
	if code != 0 {
		w.WriteHeader(code)
	}
}

// commit checks the upload at path against digest and moves it into the
// blobs, synced first, so that a blob file is always whole and right. The
// upload is gone either way: a mismatched one cannot become right.
func (g *registry) commit(w http.ResponseWriter, repo, path, digest string) {
	defer os.Remove(path) // a no-op after the rename
	got, err := fileDigest(path)
	if err != nil {
		writeRegErr(w, err, "BLOB_UPLOAD_UNKNOWN")
		return
	}
	if got != digest {
		writeRegError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("the upload's content has digest %s, not %s", got, digest))
		return
	}
	if err := os.Rename(path, g.blobPath(digest)); err != nil {
		writeRegErr(w, err, "BLOB_UPLOAD_UNKNOWN")
		return
	}
	if err := syncDir(g.blobDir()); err != nil {
		writeRegErr(w, err, "BLOB_UPLOAD_UNKNOWN")
		return
	}
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+digest)
	w.Header().Set("Docker-Content-Digest", digest)
	w.WriteHeader(http.StatusCreated)
}

// sweepUploads removes the uploads nothing touched for uploadTTL.
func (g *registry) sweepUploads() {
	ents, err := os.ReadDir(g.uploadDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && g.now().Sub(fi.ModTime()) > uploadTTL {
			_ = os.Remove(filepath.Join(g.uploadDir(), e.Name()))
		}
	}
}

// lock marks an upload busy: false when a request is writing it already
// (clients upload one chunk at a time).
func (g *registry) lock(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.writing[id] {
		return false
	}
	g.writing[id] = true
	return true
}

func (g *registry) unlock(id string) {
	g.mu.Lock()
	delete(g.writing, id)
	g.mu.Unlock()
}

func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// appendFile appends r to the file at path and returns its new size.
func appendFile(path string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return 0, fmt.Errorf("upload broke: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	return fi.Size(), f.Close()
}

// fileDigest hashes the file at path and syncs it: it is about to become
// a blob.
func fileDigest(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
