package images

import (
	"runtime"
	"runtime/debug"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// platform is an OCI platform reduced to what decides whether an image's
// binaries run here.
type platform struct {
	OS, Arch, Variant string
}

// hostPlatform is the platform this binary was built for. On 32-bit ARM the
// variant comes from the GOARM the binary was built with.
func hostPlatform() platform {
	p := platform{OS: runtime.GOOS, Arch: runtime.GOARCH}
	if p.Arch == "arm" {
		p.Variant = "v" + goarm()
	}
	return p
}

func goarm() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "GOARM" && s.Value != "" {
				return s.Value[:1] // "7,hardfloat" -> "7"
			}
		}
	}
	return "7"
}

func (p platform) String() string {
	if p.OS == "" && p.Arch == "" {
		return "unknown"
	}
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func fromOCI(q ocispec.Platform) platform {
	return platform{OS: q.OS, Arch: normArch(q.Architecture), Variant: q.Variant}
}

// normArch maps the kernel's names, which some tools write, to Go's.
func normArch(a string) string {
	switch a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}

// runs reports whether an image built for q runs on p, and a score that is
// higher the closer the match, so an exact variant wins over a compatible
// one.
func (p platform) runs(q platform) (int, bool) {
	if p.OS != q.OS || p.Arch != q.Arch {
		return 0, false
	}
	switch p.Arch {
	case "arm":
		// An ARMv7 host runs v6 and v5 binaries; a missing variant means v7,
		// as in containerd.
		have, want := armLevel(p.Variant), armLevel(q.Variant)
		if want > have {
			return 0, false
		}
		return 10 - (have - want), true
	case "arm64":
		if q.Variant == "" || q.Variant == "v8" {
			return 10, true
		}
		return 0, false
	}
	// Elsewhere a variant asks for more than the baseline (amd64 v3 wants
	// AVX2), which this host may lack: only the baseline is taken.
	if q.Variant == p.Variant || q.Variant == "" || (q.Arch == "amd64" && q.Variant == "v1") {
		return 10, true
	}
	return 0, false
}

func armLevel(v string) int {
	switch strings.TrimPrefix(v, "v") {
	case "5":
		return 5
	case "6":
		return 6
	case "8":
		return 8
	}
	return 7
}
