package controller

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/cloudsync/proto"
)

// ui is a browser stand-in for the dashboard's plain HTTP tests: a cookie
// jar and no redirects followed, so each answer can be checked.
type ui struct {
	base   string
	client *http.Client
	csrf   string
}

func newUI(t *testing.T, base string, tr http.RoundTripper) *ui {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &ui{base: base, client: &http.Client{Jar: jar, Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	code   int
	header http.Header
	body   string
}

func (u *ui) do(t *testing.T, method, path string, form url.Values, header map[string]string) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (u *ui) get(t *testing.T, path string) answer { return u.do(t, http.MethodGet, path, nil, nil) }

// post sends a form as a browser on this origin does.
func (u *ui) post(t *testing.T, path string, form url.Values) answer {
	return u.do(t, http.MethodPost, path, form, map[string]string{"Origin": u.base})
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// login logs in with token and keeps the session's CSRF token.
func (u *ui) login(t *testing.T, token string) {
	t.Helper()
	if a := u.post(t, "/ui/login", url.Values{"token": {token}}); a.code != http.StatusSeeOther || a.header.Get("Location") != "/ui/fleet" {
		t.Fatalf("login: %d %s, want 303 to /ui/fleet", a.code, a.header.Get("Location"))
	}
	a := u.get(t, "/ui/fleet")
	m := csrfField.FindStringSubmatch(a.body)
	if a.code != http.StatusOK || m == nil {
		t.Fatalf("fleet after login: %d, csrf %v", a.code, m)
	}
	u.csrf = m[1]
}

func wantRedirect(t *testing.T, a answer, code int, to string) {
	t.Helper()
	if a.code != code || a.header.Get("Location") != to {
		t.Fatalf("got %d to %q, want %d to %q", a.code, a.header.Get("Location"), code, to)
	}
}

// TestDashboardLogin: pages need a session, the session comes only from
// the admin token, its cookie is not the token, and logout ends it.
func TestDashboardLogin(t *testing.T) {
	tc := startController(t, Config{})
	u := newUI(t, tc.http.URL, nil)
	wantRedirect(t, u.get(t, "/"), http.StatusFound, "/ui/")
	wantRedirect(t, u.get(t, "/ui/"), http.StatusFound, "/ui/fleet")
	for _, p := range []string{"/ui/fleet", "/ui/devices/dev-x", "/ui/deployments", "/ui/usage", "/ui/nope"} {
		wantRedirect(t, u.get(t, p), http.StatusSeeOther, "/ui/login")
	}
	wantRedirect(t, u.post(t, "/ui/deployments", url.Values{"name": {"f"}}), http.StatusSeeOther, "/ui/login")

	a := u.post(t, "/ui/login", url.Values{"token": {"adm_wrong"}})
	if a.code != http.StatusUnauthorized || !strings.Contains(a.body, "not the admin token") || a.header.Get("Set-Cookie") != "" {
		t.Fatalf("wrong token: %d, cookie %q, body %s", a.code, a.header.Get("Set-Cookie"), a.body)
	}
	a = u.post(t, "/ui/login", url.Values{"token": {tc.srv.AdminToken()}})
	wantRedirect(t, a, http.StatusSeeOther, "/ui/fleet")
	cookie := a.header.Get("Set-Cookie")
	for _, want := range []string{sessionCookie + "=", "Path=/ui/", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %q", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") || strings.Contains(cookie, tc.srv.AdminToken()) {
		t.Errorf("cookie %q: Secure over plain HTTP, or the admin token itself", cookie)
	}
	wantRedirect(t, u.get(t, "/ui/login"), http.StatusSeeOther, "/ui/fleet")

	a = u.get(t, "/ui/fleet")
	for h, want := range map[string]string{"Content-Security-Policy": csp, "X-Frame-Options": "DENY",
		"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
		if got := a.header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if a.code != http.StatusOK || !strings.Contains(a.body, "0 devices, 0 online") {
		t.Fatalf("fleet: %d %s", a.code, a.body)
	}
	if a := u.get(t, "/ui/static/style.css"); a.code != http.StatusOK || !strings.Contains(a.header.Get("Content-Type"), "text/css") {
		t.Fatalf("style.css: %d %s", a.code, a.header.Get("Content-Type"))
	}

	u.login(t, tc.srv.AdminToken())
	wantRedirect(t, u.post(t, "/ui/logout", url.Values{"csrf": {u.csrf}}), http.StatusSeeOther, "/ui/login")
	wantRedirect(t, u.get(t, "/ui/fleet"), http.StatusSeeOther, "/ui/login")
	// The old cookie, replayed after the logout, opens nothing.
	old := newUI(t, tc.http.URL, nil)
	old.login(t, tc.srv.AdminToken())
	id := sessionOf(t, old)
	old.post(t, "/ui/logout", url.Values{"csrf": {old.csrf}})
	replay := newUI(t, tc.http.URL, nil)
	base, _ := url.Parse(tc.http.URL + "/ui/")
	replay.client.Jar.SetCookies(base, []*http.Cookie{{Name: sessionCookie, Value: id, Path: "/ui/"}})
	wantRedirect(t, replay.get(t, "/ui/fleet"), http.StatusSeeOther, "/ui/login")
}

func sessionOf(t *testing.T, u *ui) string {
	t.Helper()
	base, _ := url.Parse(u.base + "/ui/")
	for _, c := range u.client.Jar.Cookies(base) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// TestDashboardCSRF: a form without its session's token, with another
// session's, or sent from another origin is refused and changes nothing.
func TestDashboardCSRF(t *testing.T) {
	tc := startController(t, Config{})
	u, other := newUI(t, tc.http.URL, nil), newUI(t, tc.http.URL, nil)
	u.login(t, tc.srv.AdminToken())
	other.login(t, tc.srv.AdminToken())
	tc.pushRandom(t, "fn", "1")
	form := func(csrf string) url.Values {
		return url.Values{"csrf": {csrf}, "name": {"temp"}, "image": {"fn:1"}, "mode": {"http"}}
	}
	tests := []struct {
		name   string
		form   url.Values
		header map[string]string
	}{
		{"no token", form(""), map[string]string{"Origin": u.base}},
		{"wrong token", form(strings.Repeat("0", 64)), map[string]string{"Origin": u.base}},
		{"another session's token", form(other.csrf), map[string]string{"Origin": u.base}},
		{"other origin", form(u.csrf), map[string]string{"Origin": "http://evil.example"}},
		{"null origin", form(u.csrf), map[string]string{"Origin": "null"}},
		{"cross-site fetch", form(u.csrf), map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"other referer", form(u.csrf), map[string]string{"Referer": "http://evil.example/page"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := u.do(t, http.MethodPost, "/ui/deployments", tt.form, tt.header)
			if a.code != http.StatusForbidden {
				t.Fatalf("got %d, want 403: %s", a.code, a.body)
			}
		})
	}
	if a := u.do(t, http.MethodPost, "/ui/login", url.Values{"token": {tc.srv.AdminToken()}},
		map[string]string{"Origin": "http://evil.example"}); a.code != http.StatusForbidden {
		t.Fatalf("login from another origin: %d, want 403", a.code)
	}
	if ds, err := tc.client.Deployments(t.Context()); err != nil || len(ds) != 0 {
		t.Fatalf("deployments after refused forms: %+v %v", ds, err)
	}
	// The same form from this origin (Origin, or only a Referer, or
	// neither as an old browser or curl sends it) goes through.
	for i, h := range []map[string]string{{"Origin": u.base}, {"Referer": u.base + "/ui/deployments"}, nil} {
		wantRedirect(t, u.do(t, http.MethodPost, "/ui/deployments", form(u.csrf), h), http.StatusSeeOther, "/ui/deployments/temp")
		if d, err := tc.client.Rollout(t.Context(), "temp"); err != nil || d.Deployment.Revision != int64(i+1) {
			t.Fatalf("deployment after post %d: %+v %v", i, d.Deployment, err)
		}
	}
}

// TestDashboardSessionExpiry: a session ends after SessionTTL by the
// controller's clock.
func TestDashboardSessionExpiry(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixNano())
	tc := startController(t, Config{SessionTTL: time.Hour, Clock: func() time.Time { return time.Unix(0, now.Load()) }})
	u := newUI(t, tc.http.URL, nil)
	u.login(t, tc.srv.AdminToken())
	now.Add(int64(59 * time.Minute))
	if a := u.get(t, "/ui/fleet"); a.code != http.StatusOK {
		t.Fatalf("after 59m: %d", a.code)
	}
	now.Add(int64(time.Minute))
	wantRedirect(t, u.get(t, "/ui/fleet"), http.StatusSeeOther, "/ui/login")
}

// TestDashboardSecureCookie: over TLS the session cookie is Secure.
func TestDashboardSecureCookie(t *testing.T) {
	tc := startController(t, Config{})
	hs := httptest.NewTLSServer(tc.srv.Handler())
	defer hs.Close()
	u := newUI(t, hs.URL, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: hs.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}})
	a := u.post(t, "/ui/login", url.Values{"token": {tc.srv.AdminToken()}})
	if c := a.header.Get("Set-Cookie"); a.code != http.StatusSeeOther || !strings.Contains(c, "; Secure") {
		t.Fatalf("login over TLS: %d, cookie %q", a.code, c)
	}
}

// TestDashboardDeployForm: bad forms come back with the message and what
// was typed, 400; a good one deploys what it says.
func TestDashboardDeployForm(t *testing.T) {
	tc := startController(t, Config{})
	u := newUI(t, tc.http.URL, nil)
	u.login(t, tc.srv.AdminToken())
	digest := tc.pushRandom(t, "fn", "1")
	good := func(change func(url.Values)) url.Values {
		v := url.Values{"csrf": {u.csrf}, "name": {"temp"}, "image": {"fn@" + digest}, "selector": {"site=farm, tier=edge"},
			"mode": {"exec"}, "memory": {"128Mi"}, "timeout": {"5s"}, "min": {"1"}, "max": {"3"}, "env": {"A=1\r\nB=x=y\r\n"}}
		if change != nil {
			change(v)
		}
		return v
	}
	tests := []struct {
		name   string
		change func(url.Values)
		want   string
	}{
		{"bad memory", func(v url.Values) { v.Set("memory", "lots") }, "memory: &#34;lots&#34; is not a size like 128Mi"},
		{"bad timeout", func(v url.Values) { v.Set("timeout", "soon") }, "timeout &#34;soon&#34;"},
		{"bad min", func(v url.Values) { v.Set("min", "one") }, "min instances &#34;one&#34;"},
		{"bad selector", func(v url.Values) { v.Set("selector", "site") }, "selector: label &#34;site&#34;: want k=v"},
		{"bad env", func(v url.Values) { v.Set("env", "NOVALUE") }, "environment line &#34;NOVALUE&#34;"},
		{"bad name", func(v url.Values) { v.Set("name", "Temp_1") }, "deployment name &#34;Temp_1&#34;"},
		{"bad image reference", func(v url.Values) { v.Set("image", "fn:") }, "fn:"},
		{"bad mode", func(v url.Values) { v.Set("mode", "wasm") }, "mode &#34;wasm&#34;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := u.post(t, "/ui/deployments", good(tt.change))
			if a.code != http.StatusBadRequest || !strings.Contains(a.body, `id="error">`) || !strings.Contains(a.body, tt.want) {
				t.Fatalf("got %d, want 400 with %q: %s", a.code, tt.want, a.body)
			}
			if !strings.Contains(a.body, `name="max" value="3"`) {
				t.Fatalf("the form lost what was typed: %s", a.body)
			}
		})
	}
	wantRedirect(t, u.post(t, "/ui/deployments", good(nil)), http.StatusSeeOther, "/ui/deployments/temp")
	ro, err := tc.client.Rollout(t.Context(), "temp")
	if err != nil {
		t.Fatal(err)
	}
	d := ro.Deployment
	if s := d.Spec; s.Mode != "exec" || s.Memory != 128<<20 || time.Duration(s.Timeout) != 5*time.Second || s.MinInstances != 1 ||
		s.MaxInstances != 3 || s.Env["A"] != "1" || s.Env["B"] != "x=y" || FormatLabels(d.Selector) != "site=farm,tier=edge" {
		t.Fatalf("deployed %+v", d)
	}
	a := u.get(t, "/ui/deployments")
	for _, want := range []string{`href="/ui/deployments/temp"`, ShortDigest(digest) + "<", "site=farm,tier=edge", "0/0 running"} {
		if !strings.Contains(a.body, want) {
			t.Errorf("deployments page lacks %q", want)
		}
	}
	if a := u.get(t, "/ui/deployments/nope"); a.code != http.StatusNotFound {
		t.Fatalf("rollout of no deployment: %d", a.code)
	}
}

// TestDashboardEscapes: what devices report is shown as text, never as
// markup.
func TestDashboardEscapes(t *testing.T) {
	tc := startController(t, Config{})
	d := tc.enrol(t, nil)
	tc.connect(t, d, d.key)
	d.send(t, proto.TypeHello, "", proto.Hello{Version: `<script>alert(1)</script>`, Arch: "arm64"})
	u := newUI(t, tc.http.URL, nil)
	u.login(t, tc.srv.AdminToken())
	waitFor(t, 5*time.Second, "the hello stored", func() bool { return strings.Contains(u.get(t, "/ui/fleet").body, "arm64") })
	a := u.get(t, "/ui/fleet")
	if strings.Contains(a.body, "<script>") || !strings.Contains(a.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("fleet page: %s", a.body)
	}
}

// TestDashboardUsage: the usage page's charts and tables sum the records
// by range (the browser test reads the same page in Chromium).
func TestDashboardUsage(t *testing.T) {
	now := time.Now()
	tc := startController(t, Config{})
	var recs []proto.UsageRecord
	for i, at := range []time.Duration{0, 0, 0, 3 * time.Hour} {
		recs = append(recs, proto.UsageRecord{Seq: int64(i + 1), CallID: fmt.Sprint(i), Function: "f", Trigger: "http",
			StartNs: now.Add(-at).UnixNano(), KiBMs: 1024 * 1024 * 500, Status: "ok"})
	}
	store := tc.srv.store
	if _, err := store.PutUsage(t.Context(), []UsageBatch{{Device: "dev-a", Records: recs}}); err != nil {
		t.Fatal(err)
	}
	u := newUI(t, tc.http.URL, nil)
	u.login(t, tc.srv.AdminToken())
	tests := []struct {
		rng  string
		want []string
	}{
		{"1h", []string{"Invocations, last hour: 3 in total", "GB-seconds, last hour: 1.5000 in total",
			now.UTC().Format("15:04") + " f: 3</title>"}},
		{"24h", []string{"Invocations, last 24 hours: 4 in total", "GB-seconds, last 24 hours: 2.0000 in total"}},
		{"", []string{"Invocations, last 24 hours: 4 in total"}},
		{"30d", []string{"Invocations, last 30 days: 4 in total", now.UTC().Format("Jan 2") + " f: 4</title>"}},
	}
	for _, tt := range tests {
		t.Run(cmpOr(tt.rng, "default"), func(t *testing.T) {
			a := u.get(t, "/ui/usage?range="+tt.rng)
			if a.code != http.StatusOK {
				t.Fatalf("%d: %s", a.code, a.body)
			}
			for _, want := range tt.want {
				if !strings.Contains(a.body, want) {
					t.Errorf("lacks %q", want)
				}
			}
		})
	}
	if a := u.get(t, "/ui/usage?range=1y"); a.code != http.StatusBadRequest {
		t.Fatalf("range 1y: %d, want 400", a.code)
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestDashboardRevoke: revoking asks first, then ends the device's link
// and shows it revoked.
func TestDashboardRevoke(t *testing.T) {
	tc := startController(t, Config{})
	d := tc.enrolAs(t, "gw-1", nil)
	tc.connect(t, d, d.key)
	u := newUI(t, tc.http.URL, nil)
	u.login(t, tc.srv.AdminToken())
	page := "/ui/devices/" + d.id
	if a := u.get(t, page); !strings.Contains(a.body, `href="`+page+`/revoke"`) {
		t.Fatalf("device page without the revoke link: %s", a.body)
	}
	a := u.get(t, page+"/revoke")
	if a.code != http.StatusOK || !strings.Contains(a.body, `action="`+page+`/revoke"`) {
		t.Fatalf("confirmation page: %d %s", a.code, a.body)
	}
	if ds, _ := tc.client.Device(t.Context(), d.id); ds.RevokedAt != nil {
		t.Fatal("revoked before the confirmation")
	}
	wantRedirect(t, u.post(t, page+"/revoke", url.Values{"csrf": {u.csrf}}), http.StatusSeeOther, page)
	d.closed(t) // with close code 4001 "revoked"
	a = u.get(t, page)
	if !strings.Contains(a.body, `id="device-state">revoked<`) || strings.Contains(a.body, "revoke-link") {
		t.Fatalf("device page after the revoke: %s", a.body)
	}
	if a := u.get(t, "/ui/devices/dev-nope"); a.code != http.StatusNotFound {
		t.Fatalf("unknown device: %d", a.code)
	}
	if a := u.post(t, "/ui/devices/dev-nope/revoke", url.Values{"csrf": {u.csrf}}); a.code != http.StatusNotFound {
		t.Fatalf("revoke unknown device: %d", a.code)
	}
}

// TestDashboardRolloutEnded: once every device has reported on the
// revision and one failed it, the rollout page says so and stops
// refreshing itself.
func TestDashboardRolloutEnded(t *testing.T) {
	tc := startController(t, Config{})
	farm := tc.enrol(t, map[string]string{"site": "farm"})
	tc.connect(t, farm, farm.key)
	tc.pushRandom(t, "fn", "1")
	d, err := tc.client.Deploy(t.Context(), DeployRequest{Image: "fn:1", Selector: map[string]string{"site": "farm"},
		Spec: api.FunctionSpec{Name: "temp"}})
	if err != nil {
		t.Fatal(err)
	}
	u := newUI(t, tc.http.URL, nil)
	u.login(t, tc.srv.AdminToken())
	if a := u.get(t, "/ui/deployments/temp"); !strings.Contains(a.body, "rollout in progress") || !strings.Contains(a.body, `http-equiv="refresh"`) {
		t.Fatalf("pending rollout page: %s", a.body)
	}
	farm.readDesired(t)
	farm.send(t, proto.TypeStatus, "", proto.Status{Functions: []proto.FunctionStatus{
		{Name: "temp", Revision: d.Revision, State: proto.StateFailed, Reason: "exec format error", AtMs: 1}}})
	waitFor(t, 5*time.Second, "the failure reported", func() bool {
		ro, err := tc.client.Rollout(t.Context(), "temp")
		return err == nil && ro.Settled
	})
	a := u.get(t, "/ui/deployments/temp")
	if !strings.Contains(a.body, "rollout ended: 1 of 1 devices failed") || !strings.Contains(a.body, "exec format error") ||
		strings.Contains(a.body, `http-equiv="refresh"`) {
		t.Fatalf("ended rollout page: %s", a.body)
	}
}
