// Package web is segsync's browser interface: server-rendered html/template
// pages with embedded CSS and a little JavaScript (live segment counts and
// live run progress), served by `segsync serve` beside the REST API.
//
// The pages hold no business logic. Every read and every change goes through
// the REST API's own handlers, called in-process with the browser's session
// cookie, so a page can do exactly what the API lets the same user do, with
// the same validation, permission checks, audit records and errors. The UI
// turns the API's problem+json field errors into messages next to the form
// fields they concern.
//
// Every page route has an access decision (the least role it needs) in the
// page table in routes.go; the API checks again on every call.
package web

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/segsync/segsync/internal/auth"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Deps is what the UI needs.
type Deps struct {
	// API is the REST API (httpapi.Server.Handler). Pages call it in-process;
	// requests the UI does not serve itself are handed to it.
	API http.Handler
	Log *slog.Logger
	// CountProfiles, when set, gives the profile total for Data > Profiles.
	CountProfiles func(ctx context.Context) (int64, error)
	// OAuthEnabled, when set, tells whether "Authenticate with Mailchimp"
	// is configured; without it the button is shown and a click explains.
	OAuthEnabled func() bool
	// RefreshSchedule is the system refresh's cron expression, to tell when
	// exports on the "refresh" schedule run next.
	RefreshSchedule string
}

// UI serves the pages. It is safe for concurrent use.
type UI struct {
	deps    Deps
	log     *slog.Logger
	pages   map[string]*template.Template
	routes  []Route
	handler http.Handler
}

// New builds the UI. It fails only on a template that does not parse or a
// route without an access decision, which the package's tests catch.
func New(deps Deps) (*UI, error) {
	if deps.API == nil {
		return nil, fmt.Errorf("web: the UI needs the REST API handler")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	u := &UI{deps: deps, log: deps.Log}
	var err error
	if u.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	u.routes = u.routeTable()
	mux := http.NewServeMux()
	// Forms are guarded against cross-origin posts (CSRF) twice: by Go's
	// cross-origin protection here and by the session's token, which the
	// API checks on every change a page makes.
	cop := http.NewCrossOriginProtection()
	for _, rt := range u.routes {
		if !rt.Access.Valid() {
			return nil, fmt.Errorf("web: page %s %s has no valid access decision (%q)", rt.Method, rt.Pattern, rt.Access)
		}
		mux.Handle(rt.Method+" "+rt.Pattern, cop.Handler(u.page(rt)))
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
	// Everything else (the REST API, health, metrics) is the API's, with
	// its own rules; a browser asking for a page that does not exist gets
	// a page saying so.
	notFound := cop.Handler(u.page(Route{Access: Public, Handle: func(http.ResponseWriter, *http.Request, *Page) error {
		return &APIError{Status: http.StatusNotFound, Title: "Not Found"}
	}}))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wantsPage(r) {
			notFound.ServeHTTP(w, r)
			return
		}
		deps.API.ServeHTTP(w, r)
	}))
	u.handler = mux
	return u, nil
}

// Handler serves the pages, the static files and, for every other path, the
// REST API.
func (u *UI) Handler() http.Handler { return u.handler }

// Routes lists the page routes with their access decisions, for tests.
func (u *UI) Routes() []Route {
	out := make([]Route, len(u.routes))
	copy(out, u.routes)
	return out
}

// Route is one page of the page table.
type Route struct {
	Method  string
	Pattern string
	// Access is the least role the page needs.
	Access Access
	Handle func(w http.ResponseWriter, r *http.Request, p *Page) error
	// Upload marks a form posted as multipart/form-data, which the handler
	// reads (and checks the CSRF token of) itself, as a stream.
	Upload bool
}

// Access is the least role a page needs.
type Access string

// The access levels of pages, as for the API's routes.
const (
	Public      Access = "public"
	Viewer      Access = "viewer"
	Contributor Access = "contributor"
	Admin       Access = "admin"
)

// Valid reports whether a is a known access level.
func (a Access) Valid() bool {
	switch a {
	case Public, Viewer, Contributor, Admin:
		return true
	}
	return false
}

// wantsPage tells a browser's request for a page (which the UI answers)
// from a call of the API, health or metrics endpoints.
func wantsPage(r *http.Request) bool {
	p := r.URL.Path
	for _, api := range []string{"/api/", "/oauth/", "/healthz", "/readyz", "/metrics"} {
		if strings.HasPrefix(p, api) {
			return false
		}
	}
	return r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// localPath keeps a redirect target on this site.
func localPath(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// role is the auth role a page access level requires.
func (a Access) role() auth.Role { return auth.Role(a) }
