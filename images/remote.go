package images

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Remote is how pulls reach registries. Zero values have the defaults given.
type Remote struct {
	// Keychain finds credentials; authn.DefaultKeychain reads docker's
	// config file ($DOCKER_CONFIG/config.json or ~/.docker/config.json).
	Keychain authn.Keychain
	// Transport carries the requests; the default has dial, TLS and
	// response-header timeouts and honours HTTP(S)_PROXY.
	Transport http.RoundTripper
	// Attempts is how many times a blob transfer that breaks is tried; 3.
	Attempts int
	// Backoff is the wait before the second attempt, doubled after; 500ms.
	Backoff time.Duration
	// PlainHTTP is a registry (host[:port]) reached over plain HTTP, as
	// are those go-containerregistry allows without asking (localhost,
	// loopback and RFC 1918 addresses): the agent's cloud controller when
	// it serves http://. A string, not a list or a func, keeps Config
	// comparable.
	PlainHTTP string
}

func (r Remote) withDefaults() Remote {
	if r.Keychain == nil {
		r.Keychain = authn.DefaultKeychain
	}
	if r.Transport == nil {
		r.Transport = NewTransport(nil)
	}
	if r.Attempts <= 0 {
		r.Attempts = 3
	}
	if r.Backoff <= 0 {
		r.Backoff = 500 * time.Millisecond
	}
	return r
}

// NewTransport is the transport pulls use by default: dial, TLS and
// response-header timeouts, HTTP(S)_PROXY honoured. tlsConf, when not nil,
// is its TLS settings (a private CA's roots beside the system's).
func NewTransport(tlsConf *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		TLSClientConfig:       tlsConf,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// parse parses an image reference, marked insecure (plain HTTP) when
// its registry is PlainHTTP.
func (r Remote) parse(ref string) (name.Reference, error) {
	n, err := name.ParseReference(ref)
	if err != nil || r.PlainHTTP == "" || n.Context().RegistryStr() != r.PlainHTTP {
		return n, err
	}
	return name.ParseReference(ref, name.Insecure)
}

func (r Remote) options(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(r.Keychain),
		remote.WithTransport(r.Transport),
		remote.WithUserAgent("edgefaas/" + api.Version),
		// Requests that fail before a body (a 502, a reset) are tried
		// again by the library; a broken body by fetchBlob.
		remote.WithRetryBackoff(remote.Backoff{Duration: r.Backoff, Factor: 2, Steps: 3}),
	}
}

// wait sleeps before attempt+1, or until ctx ends.
func (r Remote) wait(ctx context.Context, attempt int) error {
	t := time.NewTimer(r.Backoff << (attempt - 1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// remoteError turns a registry client error into one of the error classes:
// ErrPermission (credentials), ErrNotFound (no such repository, tag or
// blob), ErrUnavailable (no route, a refused connection, a registry that
// is down), each with a message that says which.
func remoteError(ref name.Reference, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	host := ref.Context().RegistryStr()
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden ||
			hasCode(te, transport.UnauthorizedErrorCode, transport.DeniedErrorCode):
			return fmt.Errorf("%w: registry %s refused access to %s (HTTP %d): give credentials with "+
				"docker login, which writes ~/.docker/config.json (the agent reads root's, or $DOCKER_CONFIG)",
				errdefs.ErrPermission, host, ref.Context().RepositoryStr(), te.StatusCode)
		case te.StatusCode == http.StatusNotFound ||
			hasCode(te, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode):
			return fmt.Errorf("%w: registry %s has no %s", errdefs.ErrNotFound, host, repoAndTag(ref))
		}
		return fmt.Errorf("%w: registry %s answered: %v", errdefs.ErrUnavailable, host, err)
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return fmt.Errorf("%w: cannot reach registry %s: %v", errdefs.ErrUnavailable, host, err)
	}
	return fmt.Errorf("%w: registry %s: %v", errdefs.ErrUnavailable, host, err)
}

func hasCode(te *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range te.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// transient reports whether a blob transfer may work when tried again.
func transient(err error) bool {
	return errors.Is(err, errdefs.ErrUnavailable) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded)
}

// putBlob stores blob desc, whose bytes a pull holds in memory (a
// manifest; blobs that stream go through fetchOnce). It is written in tmp/
// and moved into blobs/ once verified and synced, so blobs/ never holds
// part of a blob.
func (s *Store) putBlob(desc ocispec.Descriptor, b []byte) error {
	if s.hasBlob(desc) {
		return nil
	}
	if int64(len(b)) != desc.Size {
		return fmt.Errorf("%w: blob %s: %d bytes, descriptor says %d", errdefs.ErrInvalid, desc.Digest, len(b), desc.Size)
	}
	if got := digest.FromBytes(b); got != desc.Digest {
		return fmt.Errorf("%w: blob %s: content has digest %s", errdefs.ErrInvalid, desc.Digest, got)
	}
	f, err := os.CreateTemp(s.tmpDir(), "blob-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op once moved
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		return err
	}
	return s.commitBlob(f, desc.Digest)
}

// commitBlob syncs and closes f, a verified blob, and moves it into blobs/.
func (s *Store) commitBlob(f *os.File, d digest.Digest) error {
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), s.blobDir().pathOf(d)); err != nil {
		return err
	}
	return syncDir(s.blobDir().path())
}

// IsRemote reports whether ref names a registry: its first component is a
// host (it has a dot or a port, or is localhost), as in
// "registry.example.com/fn:1" or "localhost:5000/fn:1". Short names such
// as "fn:1" are the agent's own, never a registry's.
func IsRemote(ref string) bool {
	first, rest, ok := strings.Cut(ref, "/")
	if !ok || rest == "" {
		return false
	}
	return strings.ContainsAny(first, ".:") || first == "localhost"
}

// repoAndTag is ref without its registry: "demo/hello:1".
func repoAndTag(ref name.Reference) string {
	sep := ":"
	if _, ok := ref.(name.Digest); ok {
		sep = "@"
	}
	return ref.Context().RepositoryStr() + sep + ref.Identifier()
}
