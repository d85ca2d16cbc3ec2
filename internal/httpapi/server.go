// Package httpapi is segsync's REST API: one route table, handlers that
// return errors, one adapter that turns errors into problem+json, request
// logging, metrics and the API's own OpenAPI document.
//
// Adding a route: add a line to the table in routes.go (method, pattern,
// minimum role, handler), write the handler in the file of its area, and
// describe the path in openapi/<area>.json. The tests fail when a route and
// the document disagree, or when a route lacks an access decision.
package httpapi

import (
	"fmt"
	"github.com/segsync/segsync/internal/erasure"
	"github.com/segsync/segsync/internal/hooks"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/export"
	"github.com/segsync/segsync/internal/jobs"
	"github.com/segsync/segsync/internal/metrics"
	"github.com/segsync/segsync/internal/profile"
	segsvc "github.com/segsync/segsync/internal/segment/service"
	"github.com/segsync/segsync/internal/source"
	"github.com/segsync/segsync/internal/store"
)

// Deps is everything the API needs, handed over explicitly by the command
// that builds the server. Other parts (auth, connections, exports, jobs) add
// their fields here.
type Deps struct {
	Store store.Store
	Log   *slog.Logger
	// Registry is exposed at /metrics; the HTTP metrics are added to it.
	// When nil, a fresh registry with the Go and process collectors is used.
	Registry *prometheus.Registry
	// Auth authenticates requests (tokens, sessions) and manages users and
	// tokens. Without it (tests of other areas) every request is an admin,
	// and only when Loopback is set.
	Auth *auth.Service
	// Connections manages Mailchimp connections; Audit is the audit log.
	Connections *connection.Service
	Audit       *audit.Log
	// Exports manages export definitions; Runs queues and cancels runs.
	Exports *export.Service
	Runs    *jobs.Runner
	// Sources manages data sources, their pulls and the system refresh.
	Sources *source.Service
	// Erasures carries out right-to-erasure requests.
	Erasures *erasure.Service
	// Hooks receives Mailchimp webhooks (nil: every hook URL is 404);
	// PublicURL is the base of the webhook URLs handed out.
	Hooks     *hooks.Receiver
	PublicURL string
	// Loopback reports that the server listens on loopback only. Until
	// authentication exists, anonymous requests are admitted only then.
	Loopback bool
}

// Server is the REST API. It is safe for concurrent use.
type Server struct {
	deps    Deps
	log     *slog.Logger
	routes  []Route
	mux     *http.ServeMux
	handler http.Handler
	metrics *httpMetrics
	openapi []byte

	importer *profile.Importer
	segments *segsvc.Service
}

// New builds the server and its routes. It panics on programming errors that
// the package's tests catch: a route without an access decision, a duplicate
// pattern, or an embedded OpenAPI part that does not parse.
func New(deps Deps) *Server {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = metrics.NewRegistry()
	}
	m, err := newHTTPMetrics(deps.Registry)
	if err != nil {
		panic(fmt.Sprintf("httpapi: registering metrics: %v", err))
	}
	doc, err := openAPIDocument()
	if err != nil {
		panic(fmt.Sprintf("httpapi: %v", err))
	}
	s := &Server{deps: deps, log: deps.Log, mux: http.NewServeMux(), metrics: m, openapi: doc}
	if deps.Store != nil {
		s.importer = profile.NewImporter(deps.Store, deps.Log)
		s.segments = &segsvc.Service{Store: deps.Store}
		if deps.Audit != nil {
			s.segments.Audit = deps.Audit
		}
	}
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		if !rt.Access.valid() {
			panic(fmt.Sprintf("httpapi: route %s %s has no valid access decision (%q)", rt.Method, rt.Pattern, rt.Access))
		}
		if rt.Handle == nil {
			panic(fmt.Sprintf("httpapi: route %s %s has no handler", rt.Method, rt.Pattern))
		}
		s.mux.Handle(rt.Method+" "+rt.Pattern, s.authorize(rt, s.adapt(rt.Handle)))
	}
	s.handler = SecurityHeaders(s.observe(s.mux))
	return s
}

// Handler is the API as one http.Handler, with security headers, logging,
// metrics and panic recovery around every request.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes lists every route the server serves, for tests and documentation.
func (s *Server) Routes() []Route {
	out := make([]Route, len(s.routes))
	copy(out, s.routes)
	return out
}
