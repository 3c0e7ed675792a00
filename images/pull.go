package images

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PullOptions tune one pull.
type PullOptions struct {
	// Progress, when set, hears the bytes of blobs fetched so far and the
	// bytes the pull has to fetch in all (blobs the store holds excluded).
	Progress func(done, total int64)
}

// Pull fetches the image ref names from its registry, picking this host's
// platform from an index, and imports it. Every blob goes into the store
// as soon as it is complete and verified, so a pull that is cut off and
// run again fetches only what it lacked; blobs the store already holds
// (layers shared with other images) are never fetched.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions) (api.Image, error) {
	r, err := s.remote.parse(ref)
	if err != nil {
		return api.Image{}, fmt.Errorf("image reference %q: %w: %v", ref, errdefs.ErrInvalid, err)
	}
	p := &puller{s: s, ref: r, opts: s.remote.options(ctx), progress: opts.Progress, unpin: func() {}}
	img, err := p.pull(ctx)
	defer p.unpin()
	if err != nil {
		return api.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	work, err := os.MkdirTemp(s.tmpDir(), "pull-")
	if err != nil {
		return api.Image{}, err
	}
	defer os.RemoveAll(work)
	if err := s.install(ctx, s.blobDir(), img, work); err != nil {
		return api.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	// The reference as given is the image's name; a pull by digest
	// (host/repo@sha256:...) is found by it again without a pull.
	return img.describe([]string{ref}, s.now()), nil
}

// puller is one pull in progress.
type puller struct {
	s        *Store
	ref      name.Reference
	opts     []remote.Option
	progress func(done, total int64)
	done     atomic.Int64
	total    int64
	unpin    func()            // releases the blobs pinned until the image is committed
	rt       http.RoundTripper // to the repository's blobs, once made (fetch.go)
}

// pull fetches the manifest for the store's platform and the blobs the
// store lacks, and loads the image; it does not unpack it. The blobs stay
// pinned until p.unpin.
func (p *puller) pull(ctx context.Context) (*image, error) {
	mdesc, mbytes, err := p.manifest()
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(mbytes, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", errdefs.ErrInvalid, mdesc.Digest, err)
	}
	blobs := append([]ocispec.Descriptor{m.Config}, m.Layers...)
	for _, b := range blobs {
		if err := checkDescriptor(b); err != nil {
			return nil, err
		}
	}
	p.unpin = p.s.pin(digestsOf(append(blobs, mdesc))...)
	if err := p.s.putBlob(mdesc, mbytes); err != nil {
		return nil, err
	}
	// The config first: it says the platform, before any layer is fetched.
	if err := p.fetchMissing(ctx, blobs[:1]); err != nil {
		return nil, err
	}
	img, err := loadImage(p.s.blobDir(), mdesc)
	if err != nil {
		return nil, err
	}
	if got := img.platform(); got.OS != "" {
		if _, ok := p.s.platform.runs(got); !ok {
			return nil, fmt.Errorf("%w: the image is for %s, this host is %s", errdefs.ErrInvalid, got, p.s.platform)
		}
	}
	return img, p.fetchMissing(ctx, blobs[1:])
}

// manifest fetches the image manifest for this host: ref's own, or the
// one its index lists for this platform.
func (p *puller) manifest() (ocispec.Descriptor, []byte, error) {
	d, err := remote.Get(p.ref, p.opts...)
	if err != nil {
		return ocispec.Descriptor{}, nil, remoteError(p.ref, err)
	}
	switch d.MediaType {
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		return ociDescriptor(d), d.Manifest, nil
	case types.OCIImageIndex, types.DockerManifestList:
	default:
		return ocispec.Descriptor{}, nil, fmt.Errorf("%w: %s is a %s, not an image", errdefs.ErrInvalid, p.ref, d.MediaType)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(d.Manifest, &idx); err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%w: index: %v", errdefs.ErrInvalid, err)
	}
	var cands []candidate
	for _, m := range idx.Manifests {
		if m.MediaType == ocispec.MediaTypeImageManifest || m.MediaType == mediaTypeDockerManifest {
			cands = append(cands, candidate{desc: m})
		}
	}
	c, err := pick(cands, p.s.platform, p.ref.String())
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	md, err := remote.Get(p.ref.Context().Digest(c.desc.Digest.String()), p.opts...)
	if err != nil {
		return ocispec.Descriptor{}, nil, remoteError(p.ref, err)
	}
	got := ociDescriptor(md)
	if got.Digest != c.desc.Digest {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%w: the registry sent manifest %s for %s", errdefs.ErrInvalid, got.Digest, c.desc.Digest)
	}
	got.Platform = c.desc.Platform
	return got, md.Manifest, nil
}

func ociDescriptor(d *remote.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: string(d.MediaType),
		Digest:    digest.Digest(d.Digest.String()),
		Size:      d.Size,
	}
}

// fetchMissing fetches, one after the other, the blobs the store lacks,
// once it knows they fit in its quota.
func (p *puller) fetchMissing(ctx context.Context, blobs []ocispec.Descriptor) error {
	var missing []ocispec.Descriptor
	var need int64
	for _, b := range blobs {
		if !p.s.hasBlob(b) {
			missing = append(missing, b)
			need += b.Size
		}
	}
	if err := p.s.checkQuota(need); err != nil {
		return err
	}
	p.total += need
	for _, b := range missing {
		if err := p.fetchBlob(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// fetchBlob fetches one blob into the store, trying again when the
// transfer breaks: each attempt resumes where the last broke (fetch.go).
func (p *puller) fetchBlob(ctx context.Context, b ocispec.Descriptor) error {
	var err error
	for attempt := 1; attempt <= p.s.remote.Attempts; attempt++ {
		before := p.done.Load()
		if err = p.fetchOnce(ctx, b); err == nil || !transient(err) {
			return err
		}
		p.report(before - p.done.Load())
		if attempt < p.s.remote.Attempts {
			if werr := p.s.remote.wait(ctx, attempt); werr != nil {
				return werr
			}
		}
	}
	return fmt.Errorf("%w: blob %s: transfer broke %d times, last: %v (pull again: it resumes)",
		errdefs.ErrUnavailable, b.Digest, p.s.remote.Attempts, err)
}

func (p *puller) report(n int64) {
	done := p.done.Add(n)
	if p.progress != nil {
		p.progress(done, p.total)
	}
}

type countingReader struct {
	r io.Reader
	p *puller
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.report(int64(n))
	return n, err
}

func digestsOf(descs []ocispec.Descriptor) []digest.Digest {
	out := make([]digest.Digest, len(descs))
	for i, d := range descs {
		out[i] = d.Digest
	}
	return out
}
