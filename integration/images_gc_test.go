package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/api"
)

// buildOnBusybox builds an exec-mode image of one file over the busybox
// image, so that every such image shares the busybox layer.
func buildOnBusybox(t *testing.T, tag, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "version"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), strings.ReplaceAll(tag, ":", "-")+".tar")
	if b, err := exec.Command(built.edgefaas, "build", dir, "-t", tag, "--from", built.busybox, "--mode", "exec",
		"-o", out).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", tag, err, b)
	}
	return out
}

// storeState lists what the agent's image store holds on disk.
type storeState struct {
	blobs, roots, records []string
}

func (a *agentProc) imageStore(t *testing.T) storeState {
	t.Helper()
	list := func(sub string) []string {
		entries, err := os.ReadDir(filepath.Join(a.state, "images", sub))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, strings.TrimSuffix(e.Name(), ".json"))
		}
		return out
	}
	return storeState{blobs: list("blobs/sha256"), roots: list("roots"), records: list("records")}
}

func (a *agentProc) images(t *testing.T) map[string]api.Image {
	t.Helper()
	var imgs []api.Image
	if err := json.Unmarshal([]byte(a.mustCLI("image", "ls", "--json")), &imgs); err != nil {
		t.Fatal(err)
	}
	out := map[string]api.Image{}
	for _, img := range imgs {
		out[strings.TrimPrefix(img.Digest, "sha256:")] = img
	}
	return out
}

// TestImageGarbageCollection deploys, updates and removes a function and
// checks after each step that the store holds what is referenced and
// nothing else: roots only for deployed images, blobs only of recorded
// images, the layer the images share once.
func TestImageGarbageCollection(t *testing.T) {
	v1 := buildOnBusybox(t, "app:1", "one")
	v2 := buildOnBusybox(t, "app:2", "two")
	v3 := buildOnBusybox(t, "app:2", "three") // takes the name app:2 over
	a := startAgent(t)
	script := "--env=SCRIPT=cat /version"

	a.mustCLI("deploy", "app", "--image", v1, script)
	st := a.imageStore(t)
	d1 := st.records[0]
	if len(st.records) != 1 || !slices.Equal(st.roots, []string{d1}) || len(st.blobs) != 4 {
		t.Fatalf("after deploy: %+v, want one image, its root, 4 blobs (manifest, config, 2 layers)", st)
	}

	a.mustCLI("image", "import", v2)
	if st = a.imageStore(t); len(st.blobs) != 7 {
		t.Fatalf("after a second image: %d blobs, want 7: the busybox layer stored once", len(st.blobs))
	}
	_, err := a.cli("", "image", "rm", "app:1")
	if err == nil || !strings.Contains(err.Error(), "used by functions app") {
		t.Fatalf("image rm of a deployed image: got %v, want it refused naming the function", err)
	}

	a.mustCLI("deploy", "app", "--image", "app:2", script)
	if got := a.mustCLI("invoke", "app"); got != "two" {
		t.Fatalf("invoke after update: %q", got)
	}
	imgs := a.images(t)
	st = a.imageStore(t)
	var d2 string
	for d, img := range imgs {
		if slices.Contains(img.Names, "app:2") {
			d2 = d
		}
	}
	// app:1 keeps its name, so its blobs stay; only the deployed root does.
	if !slices.Equal(st.roots, []string{d2}) || len(st.records) != 2 || len(st.blobs) != 7 {
		t.Fatalf("after update: %+v, want the root of %s only, 2 images, 7 blobs", st, d2)
	}
	if !slices.Equal(imgs[d2].UsedBy, []string{"app"}) || len(imgs[d1].UsedBy) != 0 {
		t.Errorf("used by: app:2 %q, app:1 %q", imgs[d2].UsedBy, imgs[d1].UsedBy)
	}

	// app:2 now names another image: the one deployed loses its name, and
	// once the function moves off it, it is collected.
	a.mustCLI("image", "import", v3)
	a.mustCLI("deploy", "app", "--image", "app:2", script)
	if got := a.mustCLI("invoke", "app"); got != "three" {
		t.Fatalf("invoke after second update: %q", got)
	}
	st = a.imageStore(t)
	if slices.Contains(st.records, d2) || len(st.records) != 2 || len(st.roots) != 1 || len(st.blobs) != 7 {
		t.Fatalf("after the name moved: %+v, want %s collected, 2 images, 1 root, 7 blobs", st, d2)
	}

	a.mustCLI("rm", "app")
	if st = a.imageStore(t); len(st.roots) != 0 || len(st.records) != 2 {
		t.Fatalf("after rm: %+v, want no root, the 2 named images", st)
	}
	out := a.mustCLI("image", "prune", "--all")
	if !strings.Contains(out, "2 images") {
		t.Errorf("prune --all: %q", out)
	}
	if st = a.imageStore(t); len(st.blobs)+len(st.roots)+len(st.records) != 0 {
		t.Fatalf("after prune --all: %+v, want an empty store", st)
	}
}
