package agent

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

// Regression tests for bugs found by the unit tests and fuzzing of the
// first pass.
func TestLookupUserRejectsBadIDs(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := "badgid:x:1000:abc::/:/bin/sh\nemptygid:x:1001::::\n"
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"badgid", "emptygid", "-1", "4294967296", "4294967295"} {
		t.Run(user, func(t *testing.T) {
			uid, gid, err := lookupUser(root, user)
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("lookupUser(%q) = %d, %d, %v; want ErrInvalid (never a silent group 0)", user, uid, gid, err)
			}
		})
	}
}

func TestDecodeJSONRejectsTrailingData(t *testing.T) {
	for _, body := range []string{
		`{"name":"x","image":"i"} garbage`,
		`{"name":"x","image":"i"}{"name":"y"}`,
	} {
		r, err := http.NewRequest(http.MethodPost, "/v1/functions", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var spec api.FunctionSpec
		if err := decodeJSON(r, &spec); !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("decodeJSON(%q) = %v, want ErrInvalid", body, err)
		}
	}
}
