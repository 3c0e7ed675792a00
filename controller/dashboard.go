package controller

// The web dashboard under /ui/: server-rendered pages over the same Server
// the admin API serves, for a person holding the admin token. No script
// runs in it: pages are html/template, charts are inline SVG drawn here
// (usagechart.go), and a rollout page refreshes itself with a meta
// refresh. So the controller serves it offline, and the CSP forbids every
// script. The pages themselves are in dashboard_pages.go.

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

//go:embed web
var webFS embed.FS

const (
	sessionCookie = "edgecloud_session"
	maxFormBody   = 64 << 10
	// csp allows this origin's stylesheet and nothing that runs:
	// html/template escapes what we write, and the CSP stops whatever an
	// escaping mistake would let through.
	csp = "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; " +
		"form-action 'self'; frame-ancestors 'none'"
)

// session is one login. The cookie holds only the random id; the CSRF
// token goes in the session's forms.
type session struct {
	csrf    string
	expires time.Time
}

// sessions are the dashboard's logins, kept in memory: a restart logs
// everyone out (no loss with one admin token), and a logout or an expiry
// takes effect at once, which a signed cookie could not.
type sessions struct {
	mu  sync.Mutex
	m   map[string]session
	ttl time.Duration
	now func() time.Time
}

// create starts a session. Expired ones are dropped here: only the
// holder of the admin token creates sessions, so the map stays small.
func (ss *sessions) create() (string, session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for id, s := range ss.m {
		if !now.Before(s.expires) {
			delete(ss.m, id)
		}
	}
	id, s := randomHex(32), session{csrf: randomHex(32), expires: now.Add(ss.ttl)}
	ss.m[id] = s
	return id, s
}

func (ss *sessions) get(id string) (session, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[id]
	if ok && !ss.now().Before(s.expires) {
		delete(ss.m, id)
		return session{}, false
	}
	return s, ok
}

func (ss *sessions) remove(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

type dashboard struct {
	srv      *Server
	sessions sessions
	pages    map[string]*template.Template // by file name, each with layout.html
	cop      *http.CrossOriginProtection
}

// newDashboard parses the embedded pages. A page that does not parse is
// a bug of this build, caught by every test: it panics.
func newDashboard(s *Server) *dashboard {
	ui := &dashboard{srv: s, pages: map[string]*template.Template{}, cop: http.NewCrossOriginProtection(),
		sessions: sessions{m: map[string]session{}, ttl: s.cfg.SessionTTL, now: s.cfg.Clock}}
	names, err := fs.Glob(webFS, "web/*.html")
	if err != nil {
		panic(err)
	}
	for _, name := range names {
		if name == "web/layout.html" {
			continue
		}
		t := template.Must(template.New("").Funcs(ui.funcs()).ParseFS(webFS, "web/layout.html", name))
		ui.pages[name[len("web/"):]] = t
	}
	return ui
}

// page is a handler for a logged-in person.
type page func(w http.ResponseWriter, r *http.Request, sess session)

func (ui *dashboard) routes(mux *http.ServeMux) {
	static, err := fs.Sub(webFS, "web/static")
	if err != nil {
		panic(err)
	}
	handle := func(pattern string, h http.Handler) { mux.Handle(pattern, headers(h)) }
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	handle("GET /ui/{$}", http.RedirectHandler("/ui/fleet", http.StatusFound))
	handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	handle("GET /ui/login", http.HandlerFunc(ui.loginForm))
	handle("POST /ui/login", http.HandlerFunc(ui.login))
	handle("POST /ui/logout", ui.authed(ui.logout))
	handle("GET /ui/fleet", ui.authed(ui.fleet))
	handle("GET /ui/devices/{id}", ui.authed(ui.device))
	handle("GET /ui/devices/{id}/revoke", ui.authed(ui.revokeConfirm))
	handle("POST /ui/devices/{id}/revoke", ui.authed(ui.revoke))
	handle("GET /ui/deployments", ui.authed(ui.deployments))
	handle("POST /ui/deployments", ui.authed(ui.deploy))
	handle("GET /ui/deployments/{name}", ui.authed(ui.rollout))
	handle("GET /ui/usage", ui.authed(ui.usage))
	handle("/ui/", ui.authed(func(w http.ResponseWriter, r *http.Request, sess session) {
		ui.fail(w, sess, fmt.Errorf("page %q: %w", r.URL.Path, errdefs.ErrNotFound))
	}))
}

// headers sets the security headers of every /ui/ answer. Nothing here
// may be cached: the pages show the fleet to whoever is logged in.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// authed serves h to a logged-in person and sends anyone else to the
// login page. A POST must also come from this origin and carry the
// session's CSRF token: SameSite=Strict alone leaves older browsers open.
func (ui *dashboard) authed(h page) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := ui.session(r)
		if !ok {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if err := ui.checkPost(w, r); err != nil {
				ui.fail(w, sess, err)
				return
			}
			got := r.PostFormValue("csrf")
			if subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) != 1 {
				ui.srv.log.Warn("dashboard: form without its session's CSRF token", "path", r.URL.Path, "remote", r.RemoteAddr)
				ui.fail(w, sess, fmt.Errorf("form expired or not from this dashboard: reload the page: %w", errdefs.ErrPermission))
				return
			}
		}
		h(w, r, sess)
	})
}

// checkPost refuses a form sent from another origin (the browser's
// Sec-Fetch-Site or Origin, else its Referer, when it sends one) and
// reads the form, bounded.
func (ui *dashboard) checkPost(w http.ResponseWriter, r *http.Request) error {
	refused := fmt.Errorf("form sent from another site: %w", errdefs.ErrPermission)
	if err := ui.cop.Check(r); err != nil {
		return refused
	}
	if r.Header.Get("Origin") == "" && r.Header.Get("Referer") != "" {
		if u, err := url.Parse(r.Header.Get("Referer")); err != nil || u.Host != r.Host {
			return refused
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("form: %v: %w", err, errdefs.ErrInvalid)
	}
	return nil
}

func (ui *dashboard) session(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	return ui.sessions.get(c.Value)
}

func (ui *dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := ui.session(r); ok {
		http.Redirect(w, r, "/ui/fleet", http.StatusSeeOther)
		return
	}
	ui.render(w, http.StatusOK, "login.html", view{Title: "Log in"})
}

// login trades the admin token for a session: the cookie never holds the
// token itself, so a leaked cookie expires and a logout ends it.
func (ui *dashboard) login(w http.ResponseWriter, r *http.Request) {
	if err := ui.checkPost(w, r); err != nil {
		ui.fail(w, session{}, err)
		return
	}
	token := r.PostFormValue("token")
	if subtle.ConstantTimeCompare([]byte(token), []byte(ui.srv.admin)) != 1 {
		ui.srv.log.Warn("dashboard: login with a wrong admin token", "remote", r.RemoteAddr)
		ui.render(w, http.StatusUnauthorized, "login.html", view{Title: "Log in", Error: "That is not the admin token."})
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		ui.sessions.remove(c.Value) // a new login never keeps an old id
	}
	id, _ := ui.sessions.create()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/ui/", MaxAge: int(ui.sessions.ttl.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	ui.srv.log.Info("dashboard: logged in", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/ui/fleet", http.StatusSeeOther)
}

func (ui *dashboard) logout(w http.ResponseWriter, r *http.Request, _ session) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		ui.sessions.remove(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/ui/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string // the menu entry to mark as current
	CSRF    string // the session's token; "" when logged out (no menu)
	Refresh bool   // reload the page every 2 s (a rollout in progress)
	Error   string
	Data    any
}

// render executes the page into a buffer first, so that a template error
// answers 500 rather than half a page.
func (ui *dashboard) render(w http.ResponseWriter, code int, name string, v view) {
	var b bytes.Buffer
	if err := ui.pages[name].ExecuteTemplate(&b, "layout", v); err != nil {
		ui.srv.log.Error("dashboard: page failed", "page", name, "err", err)
		http.Error(w, "the page failed; see the controller's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

// fail shows err on a page of its own, with its class's status.
func (ui *dashboard) fail(w http.ResponseWriter, sess session, err error) {
	code := errdefs.HTTPStatus(err)
	if code >= 500 {
		ui.srv.log.Error("dashboard", "err", err)
	}
	ui.render(w, code, "error.html", view{Title: http.StatusText(code), CSRF: sess.csrf, Error: err.Error()})
}
