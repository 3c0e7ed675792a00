package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Manifest media types the registry takes: images and indexes, OCI and
// docker's. Docker's schema 1 is long gone from every tool we use.
const (
	mediaOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mediaOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

func isIndex(mt string) bool { return mt == mediaOCIIndex || mt == mediaDockerList }

// descriptor is the part of an OCI descriptor the registry checks.
type descriptor struct {
	MediaType string   `json:"mediaType"`
	Digest    string   `json:"digest"`
	Size      int64    `json:"size"`
	URLs      []string `json:"urls,omitempty"`
}

// manifestBody is the part of a manifest or an index the registry checks.
type manifestBody struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        *descriptor  `json:"config"`
	Layers        []descriptor `json:"layers"`
	Manifests     []descriptor `json:"manifests"`
}

// refError is a refusal with the distribution spec's status and code.
type refError struct {
	status int
	code   string
	msg    string
}

func (e *refError) Error() string { return e.msg }

func refused(status int, code, format string, args ...any) error {
	return &refError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func writeRefusal(w http.ResponseWriter, err error, notFoundCode string) {
	var re *refError
	if errors.As(err, &re) {
		writeRegError(w, re.status, re.code, re.msg)
		return
	}
	writeRegErr(w, err, notFoundCode)
}

// handleManifest serves /v2/<repo>/manifests/<tag or digest>.
func (g *registry) handleManifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	if !digestPattern.MatchString(ref) && !tagPattern.MatchString(ref) {
		writeRegError(w, http.StatusBadRequest, "MANIFEST_INVALID", fmt.Sprintf("reference %q is neither a tag nor a sha256 digest", ref))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		m, err := g.store.Manifest(r.Context(), repo, ref)
		if err != nil {
			writeRegErr(w, err, "MANIFEST_UNKNOWN")
			return
		}
		h := w.Header()
		h.Set("Content-Type", m.MediaType)
		h.Set("Docker-Content-Digest", m.Digest)
		h.Set("ETag", `"`+m.Digest+`"`)
		h.Set("Content-Length", strconv.Itoa(len(m.Body)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(m.Body)
		}
	case http.MethodPut:
		g.gc.RLock() // no blob it refers to goes between the check and the store
		defer g.gc.RUnlock()
		m, err := g.checkManifest(r, repo, ref)
		if err != nil {
			writeRefusal(w, err, "MANIFEST_BLOB_UNKNOWN")
			return
		}
		tag := ref
		if digestPattern.MatchString(ref) {
			tag = ""
		}
		if err := g.store.PutManifest(r.Context(), m, tag); err != nil {
			writeRegErr(w, err, "MANIFEST_UNKNOWN")
			return
		}
		g.log.Info("registry: manifest pushed", "repo", repo, "ref", ref, "digest", m.Digest, "media_type", m.MediaType)
		w.Header().Set("Location", "/v2/"+repo+"/manifests/"+m.Digest)
		w.Header().Set("Docker-Content-Digest", m.Digest)
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		// A manifest a deployment pins stays: devices that link later
		// must still find it. Tags may go (deployments pin digests).
		if digestPattern.MatchString(ref) {
			deps, err := g.store.Deployments(r.Context())
			if err != nil {
				writeRegErr(w, err, "MANIFEST_UNKNOWN")
				return
			}
			for _, d := range deps {
				if d.Repository == repo && d.Digest == ref {
					writeRegError(w, http.StatusConflict, "DENIED",
						fmt.Sprintf("deployment %q revision %d runs this manifest: undeploy or redeploy it first", d.Name, d.Revision))
					return
				}
			}
		}
		if err := g.store.DeleteManifest(r.Context(), repo, ref); err != nil {
			writeRegErr(w, err, "MANIFEST_UNKNOWN")
			return
		}
		g.log.Info("registry: manifest deleted", "repo", repo, "ref", ref)
		w.WriteHeader(http.StatusAccepted)
	default:
		writeRegError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed on a manifest")
	}
}

// checkManifest reads a pushed manifest and checks it: size, media type,
// that a digest reference names these bytes, and that everything it
// refers to is held, so that no manifest here is one a pull would fail on.
func (g *registry) checkManifest(r *http.Request, repo, ref string) (Manifest, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !slices.Contains([]string{mediaOCIManifest, mediaOCIIndex, mediaDockerManifest, mediaDockerList}, mt) {
		return Manifest{}, refused(http.StatusBadRequest, "MANIFEST_INVALID",
			"content type %q: want an OCI or docker (v2) image manifest or index", r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxManifest+1))
	if err != nil {
		return Manifest{}, refused(http.StatusBadRequest, "MANIFEST_INVALID", "reading the manifest: %v", err)
	}
	if len(body) > MaxManifest {
		return Manifest{}, refused(http.StatusRequestEntityTooLarge, "SIZE_INVALID", "manifest over %d bytes", MaxManifest)
	}
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if digestPattern.MatchString(ref) && ref != digest {
		return Manifest{}, refused(http.StatusBadRequest, "DIGEST_INVALID", "pushed as %s, the body's digest is %s", ref, digest)
	}
	// JSON is UTF-8; the body is kept as text (portable to PostgreSQL).
	var mb manifestBody
	if !utf8.Valid(body) || json.Unmarshal(body, &mb) != nil {
		return Manifest{}, refused(http.StatusBadRequest, "MANIFEST_INVALID", "the manifest is not a JSON object")
	}
	switch {
	case mb.SchemaVersion != 2:
		return Manifest{}, refused(http.StatusBadRequest, "MANIFEST_INVALID", "schemaVersion %d, want 2", mb.SchemaVersion)
	case mb.MediaType != "" && mb.MediaType != mt:
		return Manifest{}, refused(http.StatusBadRequest, "MANIFEST_INVALID", "mediaType %q, sent as %q", mb.MediaType, mt)
	}
	if isIndex(mt) {
		err = g.checkIndex(r, repo, mb)
	} else {
		err = g.checkImage(mb)
	}
	if err != nil {
		return Manifest{}, err
	}
	return Manifest{Repo: repo, Digest: digest, MediaType: mt, Body: body}, nil
}

// checkImage wants the config and every layer held, at the size the
// manifest says. Layers with URLs (foreign, non-distributable) are
// fetched from there, not from here.
func (g *registry) checkImage(mb manifestBody) error {
	if mb.Config == nil {
		return refused(http.StatusBadRequest, "MANIFEST_INVALID", "an image manifest without a config")
	}
	for _, d := range append([]descriptor{*mb.Config}, mb.Layers...) {
		if !digestPattern.MatchString(d.Digest) {
			return refused(http.StatusBadRequest, "MANIFEST_INVALID", "descriptor digest %q: want sha256:<64 hex>", d.Digest)
		}
		if len(d.URLs) > 0 {
			continue
		}
		size, err := g.blobSize(d.Digest)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return refused(http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "blob %s is not pushed", d.Digest)
		case err != nil:
			return err
		case size != d.Size:
			return refused(http.StatusBadRequest, "MANIFEST_INVALID", "blob %s has %d bytes, the manifest says %d", d.Digest, size, d.Size)
		}
	}
	return nil
}

// checkIndex wants every manifest an index lists held in the same
// repository, pushed first as clients do.
func (g *registry) checkIndex(r *http.Request, repo string, mb manifestBody) error {
	for _, d := range mb.Manifests {
		if !digestPattern.MatchString(d.Digest) {
			return refused(http.StatusBadRequest, "MANIFEST_INVALID", "descriptor digest %q: want sha256:<64 hex>", d.Digest)
		}
		m, err := g.store.Manifest(r.Context(), repo, d.Digest)
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
			return refused(http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "manifest %s is not pushed to %s", d.Digest, repo)
		case err != nil:
			return err
		case int64(len(m.Body)) != d.Size:
			return refused(http.StatusBadRequest, "MANIFEST_INVALID", "manifest %s has %d bytes, the index says %d", d.Digest, len(m.Body), d.Size)
		}
	}
	return nil
}

// handleTags serves /v2/<repo>/tags/list, paginated with n and last as
// the spec says.
func (g *registry) handleTags(w http.ResponseWriter, r *http.Request, repo, _ string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeRegError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "tags are listed with GET")
		return
	}
	tags, err := g.store.Tags(r.Context(), repo)
	if err != nil {
		writeRegErr(w, err, "NAME_UNKNOWN")
		return
	}
	q := r.URL.Query()
	if last := q.Get("last"); last != "" {
		i, _ := slices.BinarySearch(tags, last)
		for i < len(tags) && tags[i] <= last {
			i++
		}
		tags = tags[i:]
	}
	if v := q.Get("n"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeRegError(w, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", fmt.Sprintf("n=%q", v))
			return
		}
		if n < len(tags) {
			tags = tags[:n]
			if n > 0 {
				w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?n=%d&last=%s>; rel="next"`, repo, n, url.QueryEscape(tags[n-1])))
			}
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{repo, tags})
}
