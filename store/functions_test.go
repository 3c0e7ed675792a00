package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

// fakeClock returns the store's clock and a function to move it.
func fakeClock(db *DB) (advance func(time.Duration)) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	db.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	return func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
}

func TestPutFunctionVersions(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	advance := fakeClock(db)
	first := db.now()
	spec := api.FunctionSpec{Name: "resize", Image: "resize:1", Memory: 64 << 20, Env: map[string]string{"A": "b"}}

	tests := []struct {
		name        string
		image       string
		wantVersion int64
	}{
		{name: "first deploy", image: "resize:1", wantVersion: 1},
		{name: "redeploy", image: "resize:2", wantVersion: 2},
		{name: "third", image: "resize:3", wantVersion: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec.Image = tt.image
			put, err := db.PutFunction(ctx, api.Function{Spec: spec, ImageDigest: "sha256:x", Version: 42, Instances: 7,
				CreatedAt: time.Unix(1, 0)})
			if err != nil {
				t.Fatal(err)
			}
			if put.Version != tt.wantVersion || !put.CreatedAt.Equal(first) || !put.UpdatedAt.Equal(db.now()) || put.Instances != 0 {
				t.Errorf("PutFunction = version %d created %v updated %v instances %d; want %d, %v, %v, 0",
					put.Version, put.CreatedAt, put.UpdatedAt, put.Instances, tt.wantVersion, first, db.now())
			}
			got, err := db.Function(ctx, "resize")
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(put) {
				t.Errorf("Function = %+v\nwant what PutFunction returned %+v", got, put)
			}
			advance(time.Minute)
		})
	}
}

func TestPutFunctionRejectsEmptyName(t *testing.T) {
	db, _ := openTest(t)
	if _, err := db.PutFunction(t.Context(), api.Function{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("PutFunction without a name = %v, want ErrInvalid", err)
	}
}

func TestFunctionNotFound(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	if _, err := db.PutFunction(ctx, api.Function{Spec: api.FunctionSpec{Name: "there"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{name: "Function", call: func() error { _, err := db.Function(ctx, "absent"); return err }},
		{name: "DeleteFunction", call: func() error { return db.DeleteFunction(ctx, "absent") }},
		{name: "DeleteFunction twice", call: func() error {
			if err := db.DeleteFunction(ctx, "there"); err != nil {
				return err
			}
			return db.DeleteFunction(ctx, "there")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), `function "`) {
				t.Errorf("got %v, want `function %%q: not found`", err)
			}
		})
	}
}

func TestFunctionsOrderedByName(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	if fs, err := db.Functions(ctx); err != nil || len(fs) != 0 {
		t.Fatalf("Functions of an empty store = %v, %v", fs, err)
	}
	for _, n := range []string{"zeta", "alpha", "mid", "Beta"} {
		if _, err := db.PutFunction(ctx, api.Function{Spec: api.FunctionSpec{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteFunction(ctx, "mid"); err != nil {
		t.Fatal(err)
	}
	fs, err := db.Functions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.Spec.Name)
	}
	if want := []string{"Beta", "alpha", "zeta"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Functions = %q, want %q", got, want)
	}
}

// TestPutFunctionConcurrent deploys from many goroutines at once, as the
// admin API and cloud sync can: no deploy may fail with SQLITE_BUSY and no
// version bump may be lost.
func TestPutFunctionConcurrent(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				shared := api.Function{Spec: api.FunctionSpec{Name: "shared", Env: map[string]string{"W": fmt.Sprint(w, i)}}}
				if _, err := db.PutFunction(ctx, shared); err != nil {
					errs <- err
				}
				own := api.Function{Spec: api.FunctionSpec{Name: fmt.Sprintf("own-%d", w)}}
				if _, err := db.PutFunction(ctx, own); err != nil {
					errs <- err
				}
				if _, err := db.Functions(ctx); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := db.Function(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != workers*each {
		t.Errorf("shared version = %d after %d deploys", got.Version, workers*each)
	}
	for w := range workers {
		if f, err := db.Function(ctx, fmt.Sprintf("own-%d", w)); err != nil || f.Version != each {
			t.Errorf("own-%d = version %d, %v, want %d", w, f.Version, err, each)
		}
	}
}
