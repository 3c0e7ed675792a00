package images

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// buildTo builds opts into an archive file and returns its path.
func buildTo(t *testing.T, opts BuildOptions) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "built.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if opts.WorkDir == "" {
		opts.WorkDir = t.TempDir()
	}
	if _, err := Build(context.Background(), f, opts); err != nil {
		t.Fatal(err)
	}
	return p
}

// perPlatform lays out one directory per platform holding /arch.
func perPlatform(t *testing.T) func(string) (string, error) {
	base := t.TempDir()
	return func(p string) (string, error) {
		dir := filepath.Join(base, strings.ReplaceAll(p, "/", "-"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		return dir, os.WriteFile(filepath.Join(dir, "arch"), []byte(p), 0o755)
	}
}

// TestBuildMultiPlatform builds for three platforms and imports the
// archive as each of them: every one gets its own files; a host outside
// the three is refused with the list.
func TestBuildMultiPlatform(t *testing.T) {
	requireRoot(t)
	plats := []string{"linux/arm64", "linux/arm/v7", "linux/amd64"}
	archive := buildTo(t, BuildOptions{Name: "fn:1", Platforms: plats, Files: perPlatform(t),
		Config: api.ImageConfig{Entrypoint: []string{"/arch"}, Env: []string{"A=1"}, WorkingDir: "/w",
			User: "1000", Labels: map[string]string{ModeLabel: api.ModeExec}}})
	for _, host := range []platform{{"linux", "arm64", ""}, {"linux", "arm", "v7"}, {"linux", "amd64", ""}} {
		t.Run(host.String(), func(t *testing.T) {
			s := newStore(t, Config{})
			s.platform = host
			img, err := s.ImportArchive(context.Background(), archive)
			if err != nil {
				t.Fatal(err)
			}
			c := img.Config
			if img.Platform != host.String() || !slices.Equal(img.Names, []string{"fn:1"}) || c.Entrypoint[0] != "/arch" ||
				c.WorkingDir != "/w" || c.User != "1000" || c.Env[0] != "A=1" || c.Labels[ModeLabel] != api.ModeExec {
				t.Errorf("image: got %+v", img)
			}
			assertRootFile(t, s, img.Digest, "arch", host.String())
		})
	}
	s := newStore(t, Config{})
	s.platform = platform{"linux", "riscv64", ""}
	_, err := s.ImportArchive(context.Background(), archive)
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "linux/arm64, linux/arm/v7, linux/amd64") {
		t.Fatalf("import on riscv64: got %v, want the platform list", err)
	}
}

// TestBuildFromBase layers files over a base image, from an archive and
// from a registry: the base's layers come first and its config is kept
// where the build does not say otherwise.
func TestBuildFromBase(t *testing.T) {
	requireRoot(t)
	host := hostPlatform().String()
	a := newArchive(t)
	a.add(a.manifest(nil, ocispec.ImageConfig{Entrypoint: []string{"/bin/sh"}, Env: []string{"PATH=/bin", "A=base"}},
		a.layer(file("bin/sh", "shell", 0o755), file("etc/base", "base", 0o644))), "base:1")
	baseArchive := a.write()
	reg := newRegistry(t)
	reg.push("base:1", reg.image(host, entriesLayer(t, file("bin/sh", "shell", 0o755), file("etc/base", "base", 0o644))))
	files := t.TempDir()
	if err := os.WriteFile(filepath.Join(files, "handler.sh"), []byte("echo hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, wantEntry string }{
		{baseArchive, "/bin/sh"}, {reg.host + "/base:1", "/bin/fn"},
	} {
		from := tc.from
		t.Run(filepath.Base(from), func(t *testing.T) {
			archive := buildTo(t, BuildOptions{Name: "fn:1", Platforms: []string{host}, From: from,
				Files:  func(string) (string, error) { return files, nil },
				Config: api.ImageConfig{Env: []string{"A=fn"}, Labels: map[string]string{ModeLabel: api.ModeExec}},
				Remote: Remote{Attempts: 1}})
			s := newStore(t, Config{})
			img, err := s.ImportArchive(context.Background(), archive)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(img.Config.Env, "A=fn") || slices.Contains(img.Config.Env, "A=base") ||
				img.Config.Entrypoint[0] != tc.wantEntry {
				t.Errorf("config: got %+v, want the base's entrypoint and A=fn", img.Config)
			}
			root, err := s.RootFS(context.Background(), img.Digest)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"bin/sh", "etc/base", "handler.sh"} {
				if _, err := os.Stat(filepath.Join(root, f)); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
		})
	}
}
