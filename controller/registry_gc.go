package controller

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Garbage collection of the registry: manifests nothing names any more
// (no tag, no deployment, no index held) and the blobs no kept manifest
// refers to. Without it every push of a tag would keep its old image's
// layers forever on the controller's disk.

// registryGrace spares what was pushed (or a blob a client asked about)
// within it: a push uploads its blobs before the manifest that refers to
// them, and a client that found a blob by HEAD skips uploading it.
const registryGrace = time.Hour

// GCResult is what a collection removed.
type GCResult struct {
	Manifests int   `json:"manifests"`
	Blobs     int   `json:"blobs"`
	Bytes     int64 `json:"bytes"`
}

// CollectRegistry removes unreferenced manifests and blobs older than
// registryGrace. Manifest pushes wait while it runs, so none can refer to
// a blob it is deleting.
func (s *Server) CollectRegistry(ctx context.Context) (GCResult, error) {
	g := s.reg
	g.gc.Lock()
	defer g.gc.Unlock()
	var res GCResult
	deps, err := s.store.Deployments(ctx)
	if err != nil {
		return res, err
	}
	ms, tagged, err := s.store.RegistryIndex(ctx)
	if err != nil {
		return res, err
	}
	byKey := map[string]Manifest{}
	for _, m := range ms {
		byKey[m.Repo+"@"+m.Digest] = m
	}
	// Roots: tagged manifests, those deployments pin, recent ones.
	var roots []string
	for key, m := range byKey {
		if tagged[key] || g.now().Sub(m.Created) < registryGrace {
			roots = append(roots, key)
		}
	}
	for _, d := range deps {
		roots = append(roots, d.Repository+"@"+d.Digest)
	}
	keep := map[string]bool{}
	blobs := map[string]bool{}
	for len(roots) > 0 {
		key := roots[len(roots)-1]
		roots = roots[:len(roots)-1]
		m, ok := byKey[key]
		if !ok || keep[key] {
			continue
		}
		keep[key] = true
		refs := manifestRefs(m.Body)
		for _, d := range refs.blobs {
			blobs[d] = true
		}
		for _, d := range refs.manifests {
			roots = append(roots, m.Repo+"@"+d)
		}
	}
	for key, m := range byKey {
		if keep[key] {
			continue
		}
		if err := s.store.DeleteManifest(ctx, m.Repo, m.Digest); err != nil {
			return res, err
		}
		res.Manifests++
	}
	err = filepath.WalkDir(g.blobDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if blobs["sha256:"+d.Name()] {
			return nil
		}
		fi, err := d.Info()
		if err != nil || g.now().Sub(fi.ModTime()) < registryGrace {
			return nil // gone meanwhile, or fresh
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		res.Blobs++
		res.Bytes += fi.Size()
		return nil
	})
	if err == nil && res.Blobs > 0 {
		err = syncDir(g.blobDir())
	}
	if res.Manifests+res.Blobs > 0 {
		s.log.Info("registry collected", "manifests", res.Manifests, "blobs", res.Blobs, "bytes", res.Bytes)
	}
	return res, err
}

type references struct{ blobs, manifests []string }

// manifestRefs lists what a stored (already checked) manifest or index
// refers to.
func manifestRefs(body []byte) references {
	type desc struct {
		Digest string `json:"digest"`
	}
	var m struct {
		Config    *desc  `json:"config"`
		Layers    []desc `json:"layers"`
		Manifests []desc `json:"manifests"`
	}
	var out references
	if json.Unmarshal(body, &m) != nil {
		return out
	}
	if m.Config != nil {
		out.blobs = append(out.blobs, m.Config.Digest)
	}
	for _, l := range m.Layers {
		out.blobs = append(out.blobs, l.Digest)
	}
	for _, c := range m.Manifests {
		out.manifests = append(out.manifests, c.Digest)
	}
	return out
}

// collectDaily is the daily collection (Server.every).
func (s *Server) collectDaily() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := s.CollectRegistry(ctx); err != nil {
		s.log.Error("registry collection", "err", err)
	}
}

func (s *Server) handleRegistryGC(w http.ResponseWriter, r *http.Request) {
	res, err := s.CollectRegistry(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
