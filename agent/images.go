package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/images"
)

// The image handlers of the admin API. Every step that adds or removes an
// image holds a.imageMu: imports, pulls and deploys share it, collection
// takes it alone, so a collection never sees an image between its commit
// to the store and its record in the database, nor a root between its
// unpack and the function that uses it.

func (a *Agent) handleListImages(w http.ResponseWriter, r *http.Request) {
	imgs, err := a.db.Images(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	fns, err := a.db.Functions(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	for i := range imgs {
		for _, fn := range fns {
			if fn.ImageDigest == imgs[i].Digest {
				imgs[i].UsedBy = append(imgs[i].UsedBy, fn.Spec.Name)
			}
		}
	}
	if imgs == nil {
		imgs = []api.Image{}
	}
	writeJSON(w, http.StatusOK, imgs)
}

// handleImport takes an image archive as the request body, or, with a JSON
// body (api.PullRequest), pulls an image from a registry.
func (a *Agent) handleImport(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		a.handlePull(w, r)
		return
	}
	img, err := a.importUpload(r)
	if err != nil {
		writeImageError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, img)
}

// importUpload spools the archive to a file in the state directory first:
// the importer reads it more than once, and the client may be on another
// host.
func (a *Agent) importUpload(r *http.Request) (api.Image, error) {
	dir := filepath.Join(a.cfg.StateDir, "uploads")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return api.Image{}, err
	}
	f, err := os.CreateTemp(dir, "import-*.tar")
	if err != nil {
		return api.Image{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, r.Body); err != nil {
		return api.Image{}, fmt.Errorf("receiving image archive: %w", err)
	}
	ctx := r.Context()
	a.imageMu.RLock()
	defer a.imageMu.RUnlock()
	q := r.URL.Query()
	// The spool file's name means nothing to the client: errors and bare
	// tags use the client's file name.
	source := filepath.Base(q.Get("file"))
	if q.Get("file") == "" {
		source = "uploaded-archive.tar"
	}
	img, err := a.images.Import(ctx, f.Name(), images.ImportOptions{Name: q.Get("name"), SourceName: source})
	if err != nil {
		return api.Image{}, err
	}
	return a.recordImage(ctx, img)
}

// recordImage records an image the store just took, adding its names to
// those it had.
func (a *Agent) recordImage(ctx context.Context, img api.Image) (api.Image, error) {
	if old, err := a.db.Image(ctx, img.Digest); err == nil {
		for _, n := range old.Names {
			if !slices.Contains(img.Names, n) {
				img.Names = append(img.Names, n)
			}
		}
	}
	if err := a.db.PutImage(ctx, img); err != nil {
		return api.Image{}, err
	}
	a.log.Info("image stored", "digest", img.Digest, "names", img.Names, "platform", img.Platform)
	return img, nil
}

// pullLocked pulls ref and records it; the caller holds a.imageMu.
func (a *Agent) pullLocked(ctx context.Context, ref string, progress func(done, total int64)) (api.Image, error) {
	img, err := a.images.Pull(ctx, ref, images.PullOptions{Progress: progress})
	if err != nil {
		return api.Image{}, err
	}
	return a.recordImage(ctx, img)
}

func (a *Agent) handlePull(w http.ResponseWriter, r *http.Request) {
	var req api.PullRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Ref == "" {
		writeError(w, fmt.Errorf("pull: no ref given: %w", errdefs.ErrInvalid))
		return
	}
	a.imageMu.RLock()
	defer a.imageMu.RUnlock()
	if !req.Progress {
		img, err := a.pullLocked(r.Context(), req.Ref, nil)
		if err != nil {
			writeImageError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, img)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	ps := newProgressStream(w)
	img, err := a.pullLocked(r.Context(), req.Ref, ps.progress)
	if err != nil {
		ps.send(api.PullEvent{Error: err.Error(), Code: errdefs.HTTPStatus(err)})
		return
	}
	ps.send(api.PullEvent{Image: &img})
}

// progressStream writes pull progress as JSON lines, at most four a second.
type progressStream struct {
	enc  *json.Encoder
	w    http.ResponseWriter
	last time.Time
}

func newProgressStream(w http.ResponseWriter) *progressStream {
	return &progressStream{enc: json.NewEncoder(w), w: w}
}

func (p *progressStream) progress(done, total int64) {
	if now := time.Now(); now.Sub(p.last) >= 250*time.Millisecond || done == total {
		p.last = now
		p.send(api.PullEvent{Done: done, Total: total})
	}
}

func (p *progressStream) send(ev api.PullEvent) {
	_ = p.enc.Encode(ev)
	if f, ok := p.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (a *Agent) handleRemoveImage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a.imageMu.Lock()
	defer a.imageMu.Unlock()
	img, err := a.db.Image(ctx, r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	users, err := a.db.FunctionsUsingImage(ctx, img.Digest)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(users) > 0 {
		writeError(w, fmt.Errorf("image %s is used by functions %s: remove or redeploy them first: %w",
			img.Digest, strings.Join(users, ", "), errdefs.ErrConflict))
		return
	}
	if err := a.db.DeleteImage(ctx, img.Digest); err != nil {
		writeError(w, err)
		return
	}
	if err := a.images.Remove(ctx, img.Digest); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *Agent) handlePrune(w http.ResponseWriter, r *http.Request) {
	a.imageMu.Lock()
	defer a.imageMu.Unlock()
	res, err := a.collectLocked(r.Context(), r.URL.Query().Get("all") != "")
	if err != nil {
		writeError(w, err)
		return
	}
	out := api.PruneResult{Images: res.Images, Roots: res.Roots, Blobs: res.Blobs, Bytes: res.Bytes}
	if out.Images == nil {
		out.Images = []string{}
	}
	writeJSON(w, http.StatusOK, out)
}

// collectImages removes what nothing references after a function was
// removed or updated. It gives way to an import, pull or deploy in
// progress: the next collection does the work.
func (a *Agent) collectImages(ctx context.Context) {
	if !a.imageMu.TryLock() {
		a.log.Debug("image collection skipped: an import or deploy is in progress")
		return
	}
	defer a.imageMu.Unlock()
	res, err := a.collectLocked(ctx, false)
	if err != nil {
		a.log.Warn("image collection failed", "err", err)
		return
	}
	if len(res.Images)+res.Roots+res.Blobs > 0 {
		a.log.Info("images collected", "images", len(res.Images), "roots", res.Roots, "blobs", res.Blobs, "bytes", res.Bytes)
	}
}

// collectLocked removes the images no function uses that have no name
// (or, with all, every image no function uses), the roots of images no
// function uses and the blobs no remaining image needs. The caller holds
// a.imageMu for writing.
func (a *Agent) collectLocked(ctx context.Context, all bool) (images.Collected, error) {
	imgs, err := a.db.Images(ctx)
	if err != nil {
		return images.Collected{}, err
	}
	fns, err := a.db.Functions(ctx)
	if err != nil {
		return images.Collected{}, err
	}
	keep := images.Keep{Images: map[string]bool{}, Roots: map[string]bool{}}
	for _, fn := range fns {
		keep.Images[fn.ImageDigest] = true
		keep.Roots[fn.ImageDigest] = true
	}
	for _, img := range imgs {
		if keep.Images[img.Digest] || (!all && len(img.Names) > 0) {
			keep.Images[img.Digest] = true
			continue
		}
		// The database first: a crash after it leaves a store record that
		// the next collection removes, never a row without its image.
		if err := a.db.DeleteImage(ctx, img.Digest); err != nil {
			return images.Collected{}, err
		}
	}
	return a.images.Collect(ctx, keep)
}

func writeImageError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(errdefs.HTTPStatus(err))
	_, _ = w.Write(jsonError(err.Error(), ""))
}
