package controller

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
)

// imageLayout builds a small OCI image with umoci (a config and two
// layers) and returns skopeo's name for it: "oci:DIR:t".
func imageLayout(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"umoci", "skopeo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("umoci insert writes root-owned files: needs root")
	}
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "hello"), bytes.Repeat([]byte("hello registry\n"), 4000), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "motd"), []byte("second layer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "--layout", "L"},
		{"new", "--image", "L:t"},
		{"config", "--image", "L:t", "--config.entrypoint", "/hello", "--os", "linux", "--architecture", "amd64"},
		{"insert", "--image", "L:t", "hello", "/hello"},
		{"insert", "--image", "L:t", "motd", "/etc/motd"},
	} {
		run(t, work, "umoci", args...)
	}
	return "oci:" + filepath.Join(work, "L") + ":t"
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// skopeoPush copies src to host/dst with the given credentials ("" for
// none) and returns skopeo's error.
func skopeoPush(src, host, dst, creds string) (string, error) {
	args := []string{"--insecure-policy", "copy", "--dest-tls-verify=false"}
	if creds != "" {
		args = append(args, "--dest-creds", creds)
	}
	out, err := exec.Command("skopeo", append(args, src, "docker://"+host+"/"+dst)...).CombinedOutput()
	return string(out), err
}

func (tc *testController) host() string { return strings.TrimPrefix(tc.http.URL, "http://") }

// pull fetches ref's manifest and every blob with ggcr, as a device or
// the admin would, and returns the manifest's digest.
func pull(host, ref string, auth authn.Authenticator) (string, error) {
	r, err := name.ParseReference(host + "/" + ref)
	if err != nil {
		return "", err
	}
	img, err := remote.Image(r, remote.WithAuth(auth))
	if err != nil {
		return "", err
	}
	layers, err := img.Layers()
	if err != nil {
		return "", err
	}
	for _, l := range layers {
		rc, err := l.Compressed() // verified against the digest as read
		if err != nil {
			return "", err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return "", err
		}
	}
	if _, err := img.RawConfigFile(); err != nil {
		return "", err
	}
	d, err := img.Digest()
	return d.String(), err
}

func deviceAuth(d *device, key ed25519.PrivateKey, at time.Time) authn.Authenticator {
	return &authn.Basic{Username: d.id, Password: proto.RegistryPassword(key, d.id, at)}
}

func status(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// TestRegistryPushPull pushes with skopeo as the admin and pulls as a
// device; pushes without the admin token and pulls without a valid
// device credential are refused.
func TestRegistryPushPull(t *testing.T) {
	src := imageLayout(t)
	tc := startController(t, Config{})
	for _, creds := range []string{"", "admin:wrong", "admin:" + tc.srv.AdminToken() + "x"} {
		if out, err := skopeoPush(src, tc.host(), "fn:1", creds); err == nil {
			t.Fatalf("push with credentials %q: accepted\n%s", creds, out)
		}
	}
	if out, err := skopeoPush(src, tc.host(), "fn:1", "admin:"+tc.srv.AdminToken()); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	_, want, err := tc.srv.ResolveImage(t.Context(), "fn:1")
	if err != nil {
		t.Fatal(err)
	}

	d := tc.enrol(t, nil)
	now := time.Now()
	if got, err := pull(tc.host(), "fn:1", deviceAuth(d, d.key, now)); err != nil || got != want {
		t.Fatalf("device pull: got %s, %v; want %s", got, err, want)
	}
	if got, err := pull(tc.host(), "fn@"+want, &authn.Bearer{Token: tc.srv.AdminToken()}); err != nil || got != want {
		t.Fatalf("admin pull by digest: got %s, %v; want %s", got, err, want)
	}

	_, otherKey, _ := ed25519.GenerateKey(nil)
	stranger := &device{id: proto.DeviceID(otherKey.Public().(ed25519.PublicKey)), key: otherKey}
	revoked := tc.enrol(t, nil)
	if _, err := tc.client.Revoke(t.Context(), revoked.id); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		auth authn.Authenticator
	}{
		{"anonymous", authn.Anonymous},
		{"unknown device", deviceAuth(stranger, stranger.key, now)},
		{"wrong key", deviceAuth(d, otherKey, now)},
		{"expired", deviceAuth(d, d.key, now.Add(-proto.RegistrySkew-time.Minute))},
		{"revoked device", deviceAuth(revoked, revoked.key, now)},
		{"admin token as a bearer, wrong", &authn.Bearer{Token: "adm_nope"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pull(tc.host(), "fn:1", tt.auth)
			if status(err) != http.StatusUnauthorized {
				t.Fatalf("got %v, want 401", err)
			}
		})
	}
	// A device reads; it does not write.
	resp := tc.do(t, http.MethodDelete, "/v2/fn/manifests/1", "", nil, func(r *http.Request) {
		r.SetBasicAuth(d.id, proto.RegistryPassword(d.key, d.id, time.Now()))
	})
	if resp.code != http.StatusForbidden || resp.errCode() != "DENIED" {
		t.Fatalf("device delete: %d %s", resp.code, resp.body)
	}
}

type regResponse struct {
	code   int
	header http.Header
	body   string
}

func (r regResponse) errCode() string {
	var e struct{ Errors []regError }
	_ = json.Unmarshal([]byte(r.body), &e)
	if len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// do sends a registry request as the admin, unless a setter changes it.
func (tc *testController) do(t *testing.T, method, path, contentType string, body []byte, set ...func(*http.Request)) regResponse {
	t.Helper()
	req, err := http.NewRequest(method, tc.http.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tc.srv.AdminToken())
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, f := range set {
		f(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return regResponse{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// pushBlob uploads b in one request and returns its digest.
func (tc *testController) pushBlob(t *testing.T, repo string, b []byte) string {
	t.Helper()
	d := digestOf(b)
	if r := tc.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d, "application/octet-stream", b); r.code != http.StatusCreated {
		t.Fatalf("blob upload: %d %s", r.code, r.body)
	}
	return d
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func imageManifest(config string, configSize int, layers ...string) []byte {
	ls := make([]string, len(layers))
	for i, l := range layers {
		ls[i] = fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}`, l, 5)
	}
	return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[%s]}`,
		mediaOCIManifest, config, configSize, strings.Join(ls, ",")))
}
