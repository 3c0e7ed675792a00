package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

// digestOf builds a valid digest from a short distinct stem.
func digestOf(stem string) string {
	return "sha256:" + stem + strings.Repeat("0", 64-len(stem))
}

func testImage(n int, names ...string) api.Image {
	return api.Image{
		Digest:    digestOf(fmt.Sprintf("%x", n+0xa0)),
		Names:     names,
		Platform:  "linux/amd64",
		Size:      int64(n) * 1000,
		CreatedAt: time.Date(2026, 1, n, 0, 0, 0, 0, time.UTC),
		Config:    api.ImageConfig{Entrypoint: []string{"/bin/fn"}, Env: []string{"N=" + fmt.Sprint(n)}},
	}
}

func putImages(t *testing.T, db *DB, imgs ...api.Image) {
	t.Helper()
	for _, img := range imgs {
		if err := db.PutImage(t.Context(), img); err != nil {
			t.Fatalf("PutImage(%s): %v", img.Digest, err)
		}
	}
}

func TestImageLookup(t *testing.T) {
	db, _ := openTest(t)
	// a and b share their first 13 hex digits: a 12-digit prefix of either
	// is ambiguous, 14 digits are not.
	a := api.Image{Digest: digestOf("0123456789abc1"), Names: []string{"hello", "hello:1", "registry.local:5000/team/fn:v2"}, Platform: "linux/arm64"}
	b := api.Image{Digest: digestOf("0123456789abc2"), Platform: "linux/arm64"}
	b.Names = []string{"registry.local/fn@" + b.Digest}
	// c's digest looks like a name that is also stored: "deadbeefcafe".
	c := api.Image{Digest: digestOf("fedcba987654"), Names: []string{"deadbeefcafe:latest"}}
	putImages(t, db, a, b, c)
	tests := []struct {
		name    string
		ref     string
		want    string
		wantErr error
	}{
		{name: "full digest", ref: a.Digest, want: a.Digest},
		{name: "full digest in upper case", ref: "sha256:" + strings.ToUpper(a.Digest[7:]), want: a.Digest},
		{name: "long prefix", ref: a.Digest[:7+14], want: a.Digest},
		{name: "long prefix without sha256:", ref: b.Digest[7 : 7+14], want: b.Digest},
		{name: "12 digit prefix", ref: c.Digest[7 : 7+12], want: c.Digest},
		{name: "ambiguous prefix", ref: a.Digest[:7+12], wantErr: errdefs.ErrInvalid},
		{name: "ambiguous prefix without sha256:", ref: a.Digest[7 : 7+13], wantErr: errdefs.ErrInvalid},
		{name: "prefix too short", ref: "sha256:0123456789a", wantErr: errdefs.ErrInvalid},
		{name: "prefix not hex", ref: "sha256:0123456789abcxyz", wantErr: errdefs.ErrInvalid},
		{name: "unknown digest", ref: digestOf("ffff"), wantErr: errdefs.ErrNotFound},
		{name: "unknown prefix", ref: "ffffffffffff", wantErr: errdefs.ErrNotFound},
		{name: "name and tag", ref: "hello:1", want: a.Digest},
		{name: "bare name means latest", ref: "hello", want: a.Digest},
		{name: "explicit latest", ref: "hello:latest", want: a.Digest},
		{name: "registry with port", ref: "registry.local:5000/team/fn:v2", want: a.Digest},
		{name: "registry with port, no tag", ref: "registry.local:5000/team/fn", wantErr: errdefs.ErrNotFound},
		{name: "pulled by digest", ref: "registry.local/fn@" + b.Digest, want: b.Digest},
		{name: "hex-looking name", ref: "deadbeefcafe", want: c.Digest},
		{name: "unknown tag", ref: "hello:2", wantErr: errdefs.ErrNotFound},
		{name: "unknown name", ref: "nobody", wantErr: errdefs.ErrNotFound},
		{name: "empty", ref: "", wantErr: errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Image(t.Context(), tt.ref)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.ref)) {
					t.Errorf("Image(%q) = %v, %v; want an error naming it wrapping %v", tt.ref, got.Digest, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Digest != tt.want {
				t.Errorf("Image(%q) = %v, %v; want %s", tt.ref, got.Digest, err, tt.want)
			}
		})
	}
}

func TestImageAmbiguityErrorNamesBoth(t *testing.T) {
	db, _ := openTest(t)
	a, b := digestOf("0123456789abc1"), digestOf("0123456789abc2")
	putImages(t, db, api.Image{Digest: a}, api.Image{Digest: b})
	_, err := db.Image(t.Context(), "0123456789ab")
	if err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("ambiguous lookup error = %v, want it to say ambiguous and name %s and %s", err, a, b)
	}
}

func TestPutImageRoundTrip(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	img := testImage(3, "b:1", "a")
	putImages(t, db, img)
	got, err := db.Image(ctx, img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	img.Names = []string{"a:latest", "b:1"} // normalized, sorted
	if fmt.Sprint(got) != fmt.Sprint(img) {
		t.Errorf("Image = %+v\nwant %+v", got, img)
	}
	// Putting the same digest again replaces the record, names included.
	img.Size, img.Names = 99, []string{"c:2"}
	putImages(t, db, img)
	if got, _ := db.Image(ctx, img.Digest); got.Size != 99 || !slices.Equal(got.Names, []string{"c:2"}) {
		t.Errorf("after the second put: size %d names %q, want 99 [c:2]", got.Size, got.Names)
	}
	if _, err := db.Image(ctx, "b:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Image(b:1) after it was dropped = %v, want ErrNotFound", err)
	}
}

func TestImageNameMovesToNewestDigest(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	old := testImage(1, "app:stable", "app:1")
	putImages(t, db, old)
	putImages(t, db, testImage(2, "app:stable", "app:2"))

	tests := []struct {
		ref       string
		wantImage int
	}{
		{ref: "app:stable", wantImage: 2},
		{ref: "app:1", wantImage: 1},
		{ref: "app:2", wantImage: 2},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := db.Image(ctx, tt.ref)
			if want := testImage(tt.wantImage).Digest; err != nil || got.Digest != want {
				t.Errorf("Image(%q) = %s, %v, want %s", tt.ref, got.Digest, err, want)
			}
		})
	}
	got, err := db.Image(ctx, old.Digest)
	if err != nil || !slices.Equal(got.Names, []string{"app:1"}) {
		t.Errorf("old image's names = %q, %v, want [app:1]: app:stable moved away", got.Names, err)
	}
	all, err := db.Images(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("Images = %v, %v, want both (the old one keeps app:1)", all, err)
	}
}

func TestPutImageRejects(t *testing.T) {
	db, _ := openTest(t)
	tests := []struct {
		name string
		img  api.Image
	}{
		{name: "no digest", img: api.Image{}},
		{name: "not sha256", img: api.Image{Digest: "md5:abc"}},
		{name: "short digest", img: api.Image{Digest: "sha256:abc"}},
		{name: "upper case digest", img: api.Image{Digest: strings.ToUpper(digestOf("ab"))}},
		{name: "empty name", img: api.Image{Digest: digestOf("ab"), Names: []string{""}}},
		{name: "empty tag", img: api.Image{Digest: digestOf("ab"), Names: []string{"app:"}}},
		{name: "name with a space", img: api.Image{Digest: digestOf("ab"), Names: []string{"my app"}}},
		{name: "name that is a digest", img: api.Image{Digest: digestOf("ab"), Names: []string{digestOf("cd")}}},
		{name: "name at a short digest", img: api.Image{Digest: digestOf("ab"), Names: []string{"fn@sha256:abc"}}},
		{name: "nothing before @", img: api.Image{Digest: digestOf("ab"), Names: []string{"@" + digestOf("cd")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.PutImage(t.Context(), tt.img); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("PutImage(%+v) = %v, want ErrInvalid", tt.img, err)
			}
		})
	}
	if all, _ := db.Images(t.Context()); len(all) != 0 {
		t.Errorf("rejected images were stored: %v", all)
	}
}

func TestDeleteImage(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	used, free := testImage(1, "used"), testImage(2, "free")
	putImages(t, db, used, free)
	for _, n := range []string{"b-fn", "a-fn"} {
		f := api.Function{Spec: api.FunctionSpec{Name: n, Image: "used"}, ImageDigest: used.Digest}
		if _, err := db.PutFunction(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	users, err := db.FunctionsUsingImage(ctx, used.Digest)
	if err != nil || !slices.Equal(users, []string{"a-fn", "b-fn"}) {
		t.Errorf("FunctionsUsingImage = %q, %v, want [a-fn b-fn]", users, err)
	}
	if users, err := db.FunctionsUsingImage(ctx, free.Digest); err != nil || len(users) != 0 {
		t.Errorf("FunctionsUsingImage(free) = %q, %v, want none", users, err)
	}

	tests := []struct {
		name    string
		digest  string
		wantErr error
	}{
		{name: "in use", digest: used.Digest, wantErr: errdefs.ErrConflict},
		{name: "free", digest: free.Digest},
		{name: "already gone", digest: free.Digest, wantErr: errdefs.ErrNotFound},
		{name: "never there", digest: digestOf("ff"), wantErr: errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.DeleteImage(ctx, tt.digest); !errors.Is(err, tt.wantErr) {
				t.Errorf("DeleteImage(%s) = %v, want %v", tt.digest, err, tt.wantErr)
			}
		})
	}
	if _, err := db.Image(ctx, "free"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("name of a deleted image still resolves: %v", err)
	}
	if _, err := db.Image(ctx, "used"); err != nil {
		t.Errorf("image in use was deleted: %v", err)
	}
}
