package controller

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/edgefaas/edgefaas/api"
)

// pushed is a random image pushed to the test controller: its manifest
// digest and its blobs (config and layers).
type pushed struct {
	digest string
	blobs  []string
}

// pushRandomImage pushes a random two-layer image to ref (host/repo:tag)
// with the admin token as skopeo would (HTTP Basic, the token as
// password).
func pushRandomImage(tb testing.TB, ref, token string) pushed {
	tb.Helper()
	img, err := random.Image(256, 2)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		tb.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: token})); err != nil {
		tb.Fatal(err)
	}
	d, _ := img.Digest()
	cfg, _ := img.ConfigName()
	p := pushed{digest: d.String(), blobs: []string{cfg.String()}}
	layers, _ := img.Layers()
	for _, l := range layers {
		ld, _ := l.Digest()
		p.blobs = append(p.blobs, ld.String())
	}
	return p
}

func (tc *testController) pushImage(t *testing.T, ref string) pushed {
	t.Helper()
	return pushRandomImage(t, tc.host()+"/"+ref, tc.srv.AdminToken())
}

func (tc *testController) hasBlob(d string) bool {
	_, err := os.Stat(tc.srv.reg.blobPath(d))
	return err == nil
}

// TestRegistryCollect: a collection removes the manifests nothing names
// (a tag moved away, a tag deleted) with their blobs and blobs no manifest
// refers to, and keeps what a tag or a deployment names, and anything
// younger than the grace period.
func TestRegistryCollect(t *testing.T) {
	tc := startController(t, Config{})
	ctx := t.Context()
	old := tc.pushImage(t, "fn:1")
	current := tc.pushImage(t, "fn:1") // the tag moves: old is untagged
	deployed := tc.pushImage(t, "svc:1")
	if _, err := tc.client.Deploy(ctx, DeployRequest{Image: "svc:1", Spec: api.FunctionSpec{Name: "svc"}}); err != nil {
		t.Fatal(err)
	}
	if r := tc.do(t, http.MethodDelete, "/v2/svc/manifests/1", "", nil); r.code != http.StatusAccepted {
		t.Fatalf("deleting tag svc:1: %d %s", r.code, r.body) // the deployment still pins it
	}
	orphan := tc.pushBlob(t, "fn", []byte("a blob no manifest names"))

	// Within the grace period nothing goes.
	if res, err := tc.client.CollectRegistry(ctx); err != nil || res != (GCResult{}) {
		t.Fatalf("collection of fresh pushes: %+v %v, want nothing removed", res, err)
	}
	// Two hours on: the untagged manifest, its blobs and the orphan go.
	tc.srv.reg.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	res, err := tc.client.CollectRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifests != 1 || res.Blobs != len(old.blobs)+1 || res.Bytes == 0 {
		t.Fatalf("collected %+v, want 1 manifest and %d blobs", res, len(old.blobs)+1)
	}
	if r := tc.do(t, http.MethodGet, "/v2/fn/manifests/"+old.digest, "", nil); r.code != http.StatusNotFound {
		t.Fatalf("the untagged manifest after collection: %d", r.code)
	}
	for _, b := range append(old.blobs, orphan) {
		if tc.hasBlob(b) {
			t.Errorf("blob %s survived", b)
		}
	}
	for _, p := range []pushed{current, deployed} {
		for _, b := range p.blobs {
			if !tc.hasBlob(b) {
				t.Errorf("blob %s of a kept manifest was removed", b)
			}
		}
	}
	for _, ref := range []string{"fn:1", "svc@" + deployed.digest} {
		if _, err := pull(tc.host(), ref, &authn.Basic{Username: "admin", Password: tc.srv.AdminToken()}); err != nil {
			t.Errorf("pull %s after collection: %v", ref, err)
		}
	}
}
