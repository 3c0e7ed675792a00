package images

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

// Blob transfers that resume where they broke. A gateway on a cellular
// link may lose it many times during one large layer: what arrived is kept
// in partial/ (across attempts, pulls and agent restarts: Open does not
// wipe it), and the next attempt asks the registry for the rest with an
// HTTP range. A registry that ignores the range (200) sends the whole blob
// again, and the part is started over. The digest is checked over the
// whole blob once complete, before it enters blobs/.

// partialMaxAge is how long Collect keeps a part no pull has touched.
const partialMaxAge = 7 * 24 * time.Hour

func (s *Store) partialDir() string { return filepath.Join(s.dir, "partial") }

func (s *Store) partialPath(d digest.Digest) string {
	return filepath.Join(s.partialDir(), d.Encoded())
}

// fetchOnce makes one attempt at blob b, from where earlier ones left it.
func (p *puller) fetchOnce(ctx context.Context, b ocispec.Descriptor) error {
	path := p.s.partialPath(b.Digest)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if have >= b.Size {
		have = 0 // complete but refused before (or grown): fetch it whole
	}
	body, from, err := p.getBlob(ctx, b, have)
	if err != nil {
		return err
	}
	defer body.Close()
	if err := f.Truncate(from); err != nil {
		return err
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return err
	}
	p.report(from)
	n, err := io.Copy(f, io.LimitReader(&countingReader{r: body, p: p}, b.Size-from+1))
	if err != nil {
		_ = f.Sync() // keep what arrived for the next attempt
		if hostFault(err) || errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("%w: blob %s: transfer broke at %d of %d bytes (kept: the next attempt resumes): %v",
			errdefs.ErrUnavailable, b.Digest, from+n, b.Size, err)
	}
	if from+n != b.Size {
		os.Remove(path)
		return fmt.Errorf("%w: blob %s: %d bytes, descriptor says %d", errdefs.ErrInvalid, b.Digest, from+n, b.Size)
	}
	if err := verifyFile(f, b.Digest); err != nil {
		os.Remove(path)
		if from > 0 {
			// The part kept from before may be what is wrong: the next
			// attempt fetches the blob whole.
			return fmt.Errorf("%w: blob %s: resumed at %d, the whole did not verify (fetching it whole next): %v",
				errdefs.ErrUnavailable, b.Digest, from, err)
		}
		return fmt.Errorf("%w: blob %s: the registry's content does not match its digest: %v", errdefs.ErrInvalid, b.Digest, err)
	}
	return p.s.commitBlob(f, b.Digest)
}

func verifyFile(f *os.File, want digest.Digest) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := digest.NewDigest(digest.SHA256, h); got != want {
		return fmt.Errorf("content has digest %s", got)
	}
	return nil
}

// getBlob asks for blob b from byte have on (all of it when have is 0),
// and returns the body and the offset it starts at: have when the
// registry honoured the range, 0 when it sent the whole blob.
func (p *puller) getBlob(ctx context.Context, b ocispec.Descriptor, have int64) (io.ReadCloser, int64, error) {
	rt, err := p.blobTransport(ctx)
	if err != nil {
		return nil, 0, err
	}
	repo := p.ref.Context()
	u := url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: "/v2/" + repo.RepositoryStr() + "/blobs/" + b.Digest.String()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	if have > 0 {
		// Both ends given: some registries take only closed ranges.
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", have, b.Size-1))
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, 0, remoteError(p.ref, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return resp.Body, 0, nil
	case resp.StatusCode == http.StatusPartialContent && have > 0 && rangeStart(resp.Header.Get("Content-Range")) == have:
		return resp.Body, have, nil
	case resp.StatusCode == http.StatusPartialContent:
		resp.Body.Close()
		os.Remove(p.s.partialPath(b.Digest))
		return nil, 0, fmt.Errorf("%w: blob %s: the registry answered range %q to bytes=%d-: starting over",
			errdefs.ErrUnavailable, b.Digest, resp.Header.Get("Content-Range"), have)
	}
	defer resp.Body.Close()
	return nil, 0, remoteError(p.ref, transport.CheckError(resp, http.StatusOK, http.StatusPartialContent))
}

// rangeStart is the first byte of a Content-Range ("bytes 100-199/200"),
// -1 when it is not one.
func rangeStart(cr string) int64 {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return -1
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// blobTransport is the authenticated transport to ref's repository,
// made once per pull (its ping and token exchange are not free).
func (p *puller) blobTransport(ctx context.Context) (http.RoundTripper, error) {
	if p.rt != nil {
		return p.rt, nil
	}
	repo := p.ref.Context()
	auth, err := authn.Resolve(ctx, p.s.remote.Keychain, repo)
	if err != nil {
		return nil, remoteError(p.ref, err)
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth,
		transport.NewUserAgent(p.s.remote.Transport, "edgefaas/"+api.Version), []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, remoteError(p.ref, err)
	}
	p.rt = rt
	return rt, nil
}

// collectPartials removes parts of blobs no pull has touched for
// partialMaxAge; the caller holds s.mu.
func (s *Store) collectPartials() error {
	entries, err := os.ReadDir(s.partialDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || s.now().Sub(info.ModTime()) < partialMaxAge {
			continue
		}
		if err := os.Remove(filepath.Join(s.partialDir(), e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
