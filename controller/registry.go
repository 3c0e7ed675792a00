package controller

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
)

// The registry serves the OCI distribution API under /v2/ so that images
// are pushed with standard tools (skopeo, crane, docker) and pulled by the
// fleet's devices with their own keys. Blobs are files named by digest,
// written only once verified; manifests and tags are in the Store, so
// they survive a restart and a manifest is always the bytes its digest
// names.
//
// go-containerregistry's pkg/registry was not used for blobs: it keeps a
// chunked upload (skopeo's way) whole in memory, re-hashes a blob on every
// HEAD and GET, leaves a mismatched upload's temporary file behind, and
// understands only "bytes=a-b" ranges. Here uploads go to disk as they
// arrive and blob GETs go through http.ServeContent (any Range, If-Range
// with the digest as ETag), so a pull cut off is resumed where it stopped.
type registry struct {
	dir   string // DATA-DIR/registry: blobs/sha256/<hex>, uploads/<id>
	store Store
	log   *slog.Logger
	now   func() time.Time // the clock credentials are checked against

	mu      sync.Mutex
	writing map[string]bool // uploads with a request in progress

	// gc: a manifest push (check and store) holds it shared, a
	// collection (registry_gc.go) alone.
	gc sync.RWMutex
}

// MaxManifest bounds a manifest or index body (as distribution's does).
const MaxManifest = 4 << 20

func newRegistry(dataDir string, st Store, s *Server) (*registry, error) {
	r := &registry{dir: filepath.Join(dataDir, "registry"), store: st, log: s.log, now: time.Now, writing: map[string]bool{}}
	for _, d := range []string{r.blobDir(), r.uploadDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	r.sweepUploads()
	return r, nil
}

// Names as the distribution spec defines them.
var (
	repoPattern   = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagPattern    = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	digestPattern = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
)

// maxRepo bounds a repository name: the spec's 255 for the whole
// reference, host included, leaves less, but the name alone is what we
// can check.
const maxRepo = 255

func validRepo(name string) bool { return len(name) <= maxRepo && repoPattern.MatchString(name) }

// regError is the distribution spec's error body.
type regError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

func writeRegError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Errors []regError `json:"errors"`
	}{[]regError{{Code: code, Message: msg}}})
}

// writeRegErr maps an error class to the distribution spec's status and
// code; notFoundCode says what is missing.
func writeRegErr(w http.ResponseWriter, err error, notFoundCode string) {
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		writeRegError(w, http.StatusNotFound, notFoundCode, err.Error())
	case errors.Is(err, errdefs.ErrInvalid):
		writeRegError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
	case errors.Is(err, errdefs.ErrTooLarge):
		writeRegError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", err.Error())
	default:
		writeRegError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
	}
}

// role is who a registry request comes from.
type role int

const (
	roleNone   role = iota
	roleDevice      // reads
	roleAdmin       // reads and writes
)

const registryRealm = `Basic realm="edgecloud"`

var errNoCredentials = fmt.Errorf("no credentials: %w", errdefs.ErrPermission)

// authorize says who r comes from. The admin gives its token as a bearer
// token or as the password of HTTP Basic (docker and skopeo send Basic);
// a device gives its id and a fresh RegistryPassword. A refusal is
// ErrPermission; another error is the store's.
func (s *Server) authorize(r *http.Request) (role, string, error) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if s.isAdmin(tok) {
			return roleAdmin, "admin", nil
		}
		return roleNone, "", fmt.Errorf("wrong admin token: %w", errdefs.ErrPermission)
	}
	user, pass, ok := r.BasicAuth()
	switch {
	case !ok || (user == "" && pass == ""): // some clients send an empty Basic first
		return roleNone, "", errNoCredentials
	case s.isAdmin(pass):
		return roleAdmin, "admin", nil
	case !proto.ValidDeviceID(user):
		return roleNone, "", fmt.Errorf("user %q is not a device id and the password is not the admin token: %w",
			user, errdefs.ErrPermission)
	}
	d, err := s.store.Device(r.Context(), user)
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return roleNone, "", fmt.Errorf("unknown device %s: %w", user, errdefs.ErrPermission)
	case err != nil:
		return roleNone, "", err
	case d.RevokedAt != nil:
		return roleNone, "", fmt.Errorf("device %s: %w: %w", user, errRevoked, errdefs.ErrPermission)
	}
	if err := proto.VerifyRegistryPassword(d.PublicKey, d.ID, pass, s.reg.now()); err != nil {
		return roleNone, "", fmt.Errorf("device %s: %v: %w", user, err, errdefs.ErrPermission)
	}
	return roleDevice, d.ID, nil
}

func (s *Server) isAdmin(token string) bool {
	return subtle.ConstantTimeCompare([]byte(token), []byte(s.admin)) == 1
}

// handleRegistry authorizes a /v2/ request and routes it.
func (s *Server) handleRegistry(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	who, name, err := s.authorize(r)
	if err != nil {
		// The device lookup failing (the database) is not the client's fault.
		if !errors.Is(err, errdefs.ErrPermission) {
			s.log.Error("registry: authorizing", "err", err)
			writeRegError(w, http.StatusInternalServerError, "UNKNOWN", "cannot check credentials now")
			return
		}
		// A client's first request has none: that one is not news.
		if !errors.Is(err, errNoCredentials) {
			s.log.Info("registry request refused", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "err", err)
		}
		w.Header().Set("WWW-Authenticate", registryRealm)
		writeRegError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && who != roleAdmin {
		writeRegError(w, http.StatusForbidden, "DENIED", "devices may only pull")
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v2/")
	if rest == "" {
		w.WriteHeader(http.StatusOK) // the version check
		return
	}
	var repo, ref string
	var h func(http.ResponseWriter, *http.Request, string, string)
	switch {
	case strings.HasSuffix(rest, "/tags/list"):
		repo, h = strings.TrimSuffix(rest, "/tags/list"), s.reg.handleTags
	case strings.Contains(rest, "/manifests/"):
		i := strings.LastIndex(rest, "/manifests/")
		repo, ref, h = rest[:i], rest[i+len("/manifests/"):], s.reg.handleManifest
	case strings.Contains(rest, "/blobs/uploads/") || strings.HasSuffix(rest, "/blobs/uploads"):
		i := strings.LastIndex(rest, "/blobs/uploads")
		repo, ref, h = rest[:i], strings.TrimPrefix(rest[i+len("/blobs/uploads"):], "/"), s.reg.handleUpload
	case strings.Contains(rest, "/blobs/"):
		i := strings.LastIndex(rest, "/blobs/")
		repo, ref, h = rest[:i], rest[i+len("/blobs/"):], s.reg.handleBlob
	default:
		writeRegError(w, http.StatusNotFound, "UNSUPPORTED", "no such registry endpoint")
		return
	}
	if !validRepo(repo) {
		writeRegError(w, http.StatusBadRequest, "NAME_INVALID", fmt.Sprintf("repository name %q is not valid", repo))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.log.Debug("registry write", "by", name, "method", r.Method, "repo", repo, "ref", ref)
	}
	h(w, r, repo, ref)
}

// ResolveImage finds the manifest a deploy names: "repo:tag", "repo" (tag
// latest) or "repo@sha256:...". ErrInvalid for a malformed reference,
// ErrNotFound when the registry holds no such manifest.
func (s *Server) ResolveImage(ctx context.Context, ref string) (repo, digest string, err error) {
	repo, key := ref, "latest"
	if i := strings.Index(ref, "@"); i >= 0 {
		repo, key = ref[:i], ref[i+1:]
		if !digestPattern.MatchString(key) {
			return "", "", fmt.Errorf("image %q: digest %q: %w", ref, key, errdefs.ErrInvalid)
		}
	} else if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, key = ref[:i], ref[i+1:]
		if !tagPattern.MatchString(key) {
			return "", "", fmt.Errorf("image %q: tag %q: %w", ref, key, errdefs.ErrInvalid)
		}
	}
	if !validRepo(repo) {
		return "", "", fmt.Errorf("image %q: repository name %q: %w", ref, repo, errdefs.ErrInvalid)
	}
	m, err := s.store.Manifest(ctx, repo, key)
	if err != nil {
		return "", "", fmt.Errorf("image %q: %w", ref, err)
	}
	return repo, m.Digest, nil
}
