package images

import (
	"fmt"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker media types that skopeo and docker exports still carry.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// image is a manifest and its config, read and verified.
type image struct {
	desc     ocispec.Descriptor
	manifest ocispec.Manifest
	config   ocispec.Image
}

// loadImage reads and checks the manifest desc and its config from src.
func loadImage(src blobDir, desc ocispec.Descriptor) (*image, error) {
	img := &image{desc: desc}
	if err := src.readJSON(desc, &img.manifest); err != nil {
		return nil, err
	}
	m := img.manifest
	if m.MediaType != "" && desc.MediaType != "" && m.MediaType != desc.MediaType {
		return nil, fmt.Errorf("%w: manifest %s says it is a %q, its descriptor a %q",
			errdefs.ErrInvalid, desc.Digest, m.MediaType, desc.MediaType)
	}
	switch m.Config.MediaType {
	case ocispec.MediaTypeImageConfig, mediaTypeDockerConfig:
	default:
		return nil, fmt.Errorf("%w: manifest %s: config media type %q is not an image config",
			errdefs.ErrInvalid, desc.Digest, m.Config.MediaType)
	}
	for _, l := range m.Layers {
		if _, err := layerCompression(l); err != nil {
			return nil, err
		}
	}
	if err := src.readJSON(m.Config, &img.config); err != nil {
		return nil, err
	}
	if n := len(img.config.RootFS.DiffIDs); n != len(m.Layers) {
		return nil, fmt.Errorf("%w: manifest %s has %d layers, its config lists %d diff IDs",
			errdefs.ErrInvalid, desc.Digest, len(m.Layers), n)
	}
	return img, nil
}

// blobs lists every blob the image needs: manifest, config and layers.
func (img *image) blobs() []ocispec.Descriptor {
	out := []ocispec.Descriptor{img.desc, img.manifest.Config}
	return append(out, img.manifest.Layers...)
}

// platform is the image's platform as its config says, falling back to the
// descriptor that led to it.
func (img *image) platform() platform {
	c := img.config.Platform
	if c.OS != "" && c.Architecture != "" {
		return platform{OS: c.OS, Arch: normArch(c.Architecture), Variant: c.Variant}
	}
	if p := img.desc.Platform; p != nil {
		return platform{OS: p.OS, Arch: normArch(p.Architecture), Variant: p.Variant}
	}
	return platform{}
}

// describe turns the image into the API's view of it.
func (img *image) describe(names []string, created time.Time) api.Image {
	size := img.desc.Size
	for _, b := range img.blobs()[1:] {
		size += b.Size
	}
	c := img.config.Config
	return api.Image{
		Digest:    img.desc.Digest.String(),
		Names:     names,
		Platform:  img.platform().String(),
		Size:      size,
		CreatedAt: created,
		Config: api.ImageConfig{
			Entrypoint: c.Entrypoint,
			Cmd:        c.Cmd,
			Env:        c.Env,
			WorkingDir: c.WorkingDir,
			User:       c.User,
			Labels:     c.Labels,
		},
	}
}
