package images

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/edgefaas/edgefaas/errdefs"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// dockerImage is one entry of a docker-archive's manifest.json (docker save
// before docker 25, and skopeo's docker-archive: transport).
type dockerImage struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// dockerCandidates turns manifest.json into one candidate per image: a
// docker manifest made of the archive's config and layer files (which were
// staged by content digest), with the platform its config gives.
func (st *staging) dockerCandidates() ([]candidate, error) {
	var entries []dockerImage
	if err := json.Unmarshal(st.docker, &entries); err != nil {
		return nil, fmt.Errorf("%w: manifest.json: %v", errdefs.ErrInvalid, err)
	}
	var out []candidate
	for i, e := range entries {
		c, err := st.dockerCandidate(e)
		if err != nil {
			return nil, fmt.Errorf("manifest.json image %d: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func (st *staging) dockerCandidate(e dockerImage) (candidate, error) {
	cf, err := st.file(e.Config)
	if err != nil {
		return candidate{}, err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: mediaTypeDockerManifest,
		Config:    ocispec.Descriptor{MediaType: mediaTypeDockerConfig, Digest: cf.digest, Size: cf.size},
	}
	var cfg ocispec.Image
	if err := st.dir.readJSON(m.Config, &cfg); err != nil {
		return candidate{}, err
	}
	for _, name := range e.Layers {
		lf, err := st.file(name)
		if err != nil {
			return candidate{}, err
		}
		mt, err := st.layerMediaType(lf)
		if err != nil {
			return candidate{}, err
		}
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mt, Digest: lf.digest, Size: lf.size})
	}
	b, err := json.Marshal(m)
	if err != nil {
		return candidate{}, err
	}
	desc, err := st.dir.stageBytes(mediaTypeDockerManifest, b)
	if err != nil {
		return candidate{}, err
	}
	desc.Platform = &ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if cfg.OS == "" {
		desc.Platform = nil
	}
	return candidate{desc: desc, names: e.RepoTags}, nil
}

// layerMediaType tells a gzipped layer from a plain tar by its first
// bytes: docker save writes plain tars, other tools gzip them.
func (st *staging) layerMediaType(f stagedFile) (string, error) {
	r, err := os.Open(st.dir.pathOf(f.digest))
	if err != nil {
		return "", err
	}
	defer r.Close()
	magic, _ := bufio.NewReader(r).Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return mediaTypeDockerLayerGzip, nil
	}
	return mediaTypeDockerLayer, nil
}
