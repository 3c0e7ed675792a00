package images

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/edgefaas/edgefaas/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxIndexDepth bounds nested indexes: real archives have one level.
const maxIndexDepth = 4

// containerdNameAnnotation is the full reference `ctr export` records.
const containerdNameAnnotation = "io.containerd.image.name"

// candidate is a manifest reachable from the archive's index, with the
// reference names found on the way to it.
type candidate struct {
	desc  ocispec.Descriptor
	names []string
}

// indexCandidates lists the manifests an OCI layout's index.json leads to.
func indexCandidates(src blobDir, indexJSON []byte) ([]candidate, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(indexJSON, &idx); err != nil {
		return nil, fmt.Errorf("%w: index.json: %v", errdefs.ErrInvalid, err)
	}
	return collect(src, idx.Manifests, nil, 0)
}

// choose picks the manifest for want among cands (or the one called name,
// when given) and loads it from src. where names the source in errors.
func choose(src blobDir, cands []candidate, want platform, name, where string) (*image, []string, error) {
	cands = dedupe(cands)
	if name != "" {
		cands = named(cands, name, where)
		if len(cands) == 0 {
			return nil, nil, fmt.Errorf("no image called %q: %w", name, errdefs.ErrNotFound)
		}
	}
	c, err := pick(cands, want, where)
	if err != nil {
		return nil, nil, err
	}
	img, err := loadImage(src, c.desc)
	if err != nil {
		return nil, nil, err
	}
	// A lone manifest without a platform is taken on trust from the index,
	// but its config usually says what it is built for.
	if got := img.platform(); got.OS != "" {
		if _, ok := want.runs(got); !ok {
			return nil, nil, fmt.Errorf("%w: image %s is for %s, this host is %s",
				errdefs.ErrInvalid, c.desc.Digest, got, want)
		}
	}
	return img, c.names, nil
}

// named keeps the candidates that carry name (as given, or qualified as
// imageNames would).
func named(cands []candidate, name, where string) []candidate {
	var out []candidate
	for _, c := range cands {
		if slices.Contains(c.names, name) || slices.Contains(imageNames(c.names, where), name) {
			out = append(out, c)
		}
	}
	return out
}

// collect flattens an index into its manifests, reading nested indexes.
func collect(src blobDir, descs []ocispec.Descriptor, names []string, depth int) ([]candidate, error) {
	var out []candidate
	for _, d := range descs {
		n := append(slices.Clip(names), refNames(d)...)
		switch d.MediaType {
		case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
			out = append(out, candidate{desc: d, names: n})
		case ocispec.MediaTypeImageIndex, mediaTypeDockerManifestList:
			if depth >= maxIndexDepth {
				return nil, fmt.Errorf("%w: indexes nested more than %d deep", errdefs.ErrInvalid, maxIndexDepth)
			}
			var sub ocispec.Index
			if err := src.readJSON(d, &sub); err != nil {
				return nil, err
			}
			more, err := collect(src, sub.Manifests, n, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
		// Anything else (signatures, artifacts) is not an image: skip it.
	}
	return out, nil
}

// dedupe merges candidates for the same manifest, which an index lists
// once per tag.
func dedupe(cands []candidate) []candidate {
	var out []candidate
	for _, c := range cands {
		i := slices.IndexFunc(out, func(o candidate) bool { return o.desc.Digest == c.desc.Digest })
		if i < 0 {
			out = append(out, c)
			continue
		}
		out[i].names = append(out[i].names, c.names...)
		if out[i].desc.Platform == nil {
			out[i].desc.Platform = c.desc.Platform
		}
	}
	return out
}

func refNames(d ocispec.Descriptor) []string {
	var out []string
	for _, k := range []string{ocispec.AnnotationRefName, containerdNameAnnotation} {
		if v := d.Annotations[k]; v != "" {
			out = append(out, v)
		}
	}
	return out
}

// pick chooses the best manifest for want. A manifest without a platform
// is only taken when it is the only one. Two different images equally good
// for want (a docker-archive of several images) are ambiguous: the error
// lists their names.
func pick(cands []candidate, want platform, where string) (candidate, error) {
	if len(cands) == 0 {
		return candidate{}, fmt.Errorf("%w: the index lists no image manifest", errdefs.ErrInvalid)
	}
	if len(cands) == 1 && cands[0].desc.Platform == nil {
		return cands[0], nil
	}
	best, bestScore := -1, 0
	var have []string
	var ties []candidate
	for i, c := range cands {
		if c.desc.Platform == nil {
			have = append(have, "unknown")
			continue
		}
		p := fromOCI(*c.desc.Platform)
		have = append(have, p.String())
		score, ok := want.runs(p)
		switch {
		case !ok || score < bestScore:
		case score > bestScore:
			best, bestScore, ties = i, score, []candidate{c}
		default:
			ties = append(ties, c)
		}
	}
	if best < 0 {
		return candidate{}, fmt.Errorf("%w: no image for %s; it has %s",
			errdefs.ErrInvalid, want, strings.Join(have, ", "))
	}
	if len(ties) > 1 {
		var names []string
		for _, c := range ties {
			names = append(names, imageNames(c.names, where)...)
		}
		return candidate{}, fmt.Errorf("%w: %d images for %s (%s): choose one by name",
			errdefs.ErrInvalid, len(ties), want, strings.Join(names, ", "))
	}
	return cands[best], nil
}

// imageNames turns reference names into image names. OCI layouts often
// carry a bare tag ("1.0", what umoci writes); it is qualified with a name
// taken from the archive's file name, so "hello.tar" with tag "1.0" is
// "hello:1.0". A full reference ("docker.io/x/y:1.0", what skopeo writes
// for oci-archive:f.tar:name:tag) is kept as is.
//
// A bare tag that a full reference beside it ends with is dropped: docker
// save (25 and later) writes both for one image,
// "docker.io/library/busybox:latest" and "latest".
func imageNames(refs []string, archivePath string) []string {
	var out []string
	for _, r := range refs {
		if !strings.ContainsAny(r, ":/@") {
			if slices.ContainsFunc(refs, func(f string) bool { return strings.HasSuffix(f, ":"+r) }) {
				continue
			}
			r = nameFromFile(archivePath) + ":" + r
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

var nameJunk = regexp.MustCompile(`[^a-z0-9._-]+`)

// nameFromFile makes a repository name out of an archive's file name.
func nameFromFile(path string) string {
	base := strings.ToLower(filepath.Base(path))
	for _, ext := range []string{".tar.gz", ".tgz", ".tar", ".oci"} {
		if b, ok := strings.CutSuffix(base, ext); ok {
			base = b
			break
		}
	}
	base = strings.Trim(nameJunk.ReplaceAllString(base, "-"), "-._")
	if base == "" {
		return "image"
	}
	return base
}
