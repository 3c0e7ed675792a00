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

// resolve picks the manifest for want from an archive's index.json and
// loads it.
func resolve(src blobDir, indexJSON []byte, want platform) (*image, []string, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(indexJSON, &idx); err != nil {
		return nil, nil, fmt.Errorf("%w: index.json: %v", errdefs.ErrInvalid, err)
	}
	cands, err := collect(src, idx.Manifests, nil, 0)
	if err != nil {
		return nil, nil, err
	}
	cands = dedupe(cands)
	c, err := pick(cands, want)
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
// is only taken when it is the only one.
func pick(cands []candidate, want platform) (candidate, error) {
	if len(cands) == 0 {
		return candidate{}, fmt.Errorf("%w: the archive's index lists no image manifest", errdefs.ErrInvalid)
	}
	if len(cands) == 1 && cands[0].desc.Platform == nil {
		return cands[0], nil
	}
	best, bestScore := -1, 0
	var have []string
	for i, c := range cands {
		if c.desc.Platform == nil {
			have = append(have, "unknown")
			continue
		}
		p := fromOCI(*c.desc.Platform)
		have = append(have, p.String())
		if score, ok := want.runs(p); ok && score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return candidate{}, fmt.Errorf("%w: no image for %s in the archive; it has %s",
			errdefs.ErrInvalid, want, strings.Join(have, ", "))
	}
	return cands[best], nil
}

// imageNames turns reference names into image names. OCI layouts often
// carry a bare tag ("1.0", what umoci writes); it is qualified with a name
// taken from the archive's file name, so "hello.tar" with tag "1.0" is
// "hello:1.0". A full reference ("docker.io/x/y:1.0", what skopeo writes
// for oci-archive:f.tar:name:tag) is kept as is.
func imageNames(refs []string, archivePath string) []string {
	var out []string
	for _, r := range refs {
		if !strings.ContainsAny(r, ":/@") {
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
