package images

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// multiArch adds one image per platform, each with a file "arch" naming
// its platform, behind an image index (nested when nested is set).
func multiArch(a *testArchive, nested bool, plats ...string) {
	var descs []ocispec.Descriptor
	for _, p := range plats {
		parts := strings.Split(p, "/")
		plat := &ocispec.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) > 2 {
			plat.Variant = parts[2]
		}
		descs = append(descs, a.manifest(plat, ocispec.ImageConfig{}, a.layer(file("arch", p, 0o644))))
	}
	if !nested {
		for _, d := range descs {
			a.add(d, "")
		}
		return
	}
	idx := a.json(ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specsV2, MediaType: ocispec.MediaTypeImageIndex, Manifests: descs})
	a.add(idx, "multi:1")
}

// TestPlatformSelection imports multi-platform archives and checks which
// manifest is unpacked, or that the error lists what the archive has.
func TestPlatformSelection(t *testing.T) {
	requireRoot(t)
	host := hostPlatform().String()
	tests := []struct {
		name    string
		host    platform
		plats   []string
		nested  bool
		want    string // the platform whose root is unpacked
		wantErr []string
	}{
		{name: "this host, flat index", host: hostPlatform(),
			plats: []string{"linux/s390x", host, "linux/ppc64le"}, want: host},
		{name: "this host, nested index", host: hostPlatform(), nested: true,
			plats: []string{"linux/s390x", host}, want: host},
		{name: "arm64 among others", host: platform{"linux", "arm64", ""},
			plats: []string{"linux/amd64", "linux/arm/v7", "linux/arm64/v8"}, want: "linux/arm64/v8"},
		{name: "armv7 prefers v7", host: platform{"linux", "arm", "v7"},
			plats: []string{"linux/arm/v6", "linux/arm/v7", "linux/arm64"}, want: "linux/arm/v7"},
		{name: "armv7 runs v6", host: platform{"linux", "arm", "v7"},
			plats: []string{"linux/arm/v6", "linux/amd64"}, want: "linux/arm/v6"},
		{name: "armv6 does not run v7", host: platform{"linux", "arm", "v6"},
			plats: []string{"linux/arm/v7", "linux/arm64"}, wantErr: []string{"linux/arm/v7", "linux/arm64"}},
		{name: "amd64 skips v3", host: platform{"linux", "amd64", ""},
			plats: []string{"linux/amd64/v3", "linux/amd64"}, want: "linux/amd64"},
		{name: "only other platforms", host: hostPlatform(),
			plats: []string{"linux/s390x", "windows/amd64"}, wantErr: []string{"linux/s390x", "windows/amd64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Config{})
			s.platform = tt.host
			a := newArchive(t)
			multiArch(a, tt.nested, tt.plats...)
			img, err := s.ImportArchive(context.Background(), a.write())
			if tt.wantErr != nil {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("import: got %v, want ErrInvalid", err)
				}
				for _, p := range tt.wantErr {
					if !strings.Contains(err.Error(), p) {
						t.Errorf("error %q does not list %s", err, p)
					}
				}
				assertEmptyStore(t, s)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if img.Platform != tt.want {
				t.Errorf("platform: got %s, want %s", img.Platform, tt.want)
			}
			assertRootFile(t, s, img.Digest, "arch", tt.want)
		})
	}
}

// TestForeignSingleManifest refuses a lone manifest with no platform on
// its descriptor whose config says it is for another platform.
func TestForeignSingleManifest(t *testing.T) {
	s := newStore(t, Config{})
	s.platform = platform{"linux", "riscv64", ""}
	a := newArchive(t)
	a.image(a.layer(file("a", "a", 0o644)))
	_, err := s.ImportArchive(context.Background(), a.write())
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), hostPlatform().String()) {
		t.Fatalf("import: got %v, want ErrInvalid naming %s", err, hostPlatform())
	}
}

// TestImageNames checks how reference annotations become image names.
func TestImageNames(t *testing.T) {
	tests := []struct {
		name    string
		refs    []string
		archive string
		want    []string
	}{
		{"bare tag takes the file name", []string{"1.0"}, "/x/hello.tar", []string{"hello:1.0"}},
		{"full reference is kept", []string{"docker.io/library/busybox:1.36"}, "/x/f.tar", []string{"docker.io/library/busybox:1.36"}},
		{"name and tag is kept", []string{"name:t"}, "/x/f.tar", []string{"name:t"}},
		{"odd file name is cleaned", []string{"latest"}, "/x/My Image (2).tar.gz", []string{"my-image-2:latest"}},
		{"duplicates collapse", []string{"a:1", "a:1"}, "/x/f.tar", []string{"a:1"}},
		{"no refs", nil, "/x/f.tar", nil},
		{"bare tag beside a full reference", []string{"docker.io/library/busybox:latest", "latest"}, "/x/f.tar",
			[]string{"docker.io/library/busybox:latest"}},
		{"unusable file name", []string{"v1"}, "/x/....tar", []string{"image:v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := imageNames(tt.refs, tt.archive); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
