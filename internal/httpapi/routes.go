package httpapi

import "net/http"

// Access is the least role a route requires. Object-level checks (may this
// contributor use that connection?) happen in the handlers.
type Access string

const (
	Public      Access = "public"      // anyone, without credentials
	Viewer      Access = "viewer"      // any signed-in user
	Contributor Access = "contributor" // contributors and admins
	Admin       Access = "admin"       // admins only
)

func (a Access) valid() bool {
	switch a {
	case Public, Viewer, Contributor, Admin:
		return true
	}
	return false
}

// HandlerFunc handles one request. A returned error is written as
// problem+json by the adapter unless the handler already wrote a response.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Route is one line of the route table.
type Route struct {
	Method  string // GET, POST, PUT, PATCH, DELETE
	Pattern string // http.ServeMux path pattern, e.g. /api/v1/segments/{id}
	Access  Access // the least role the route requires
	Handle  HandlerFunc
}

// routeTable is THE route table: every route the server serves, with the
// least role it requires. Add new areas under their own comment.
func (s *Server) routeTable() []Route {
	return []Route{
		// System.
		{http.MethodGet, "/healthz", Public, s.healthz},
		{http.MethodGet, "/readyz", Public, s.readyz},
		{http.MethodGet, "/metrics", Public, s.serveMetrics},
		{http.MethodGet, "/api/v1/openapi.json", Public, s.serveOpenAPI},

		// Profiles. Profiles are personal data: reading them takes a
		// contributor; the attribute catalogue is metadata for every role.
		{http.MethodPost, "/api/v1/profiles/import", Contributor, s.importProfiles},
		{http.MethodGet, "/api/v1/profiles", Contributor, s.listProfiles},
		{http.MethodGet, "/api/v1/profiles/attributes", Viewer, s.profileAttributes},
		{http.MethodGet, "/api/v1/profiles/{customer_id}", Contributor, s.getProfile},
		{http.MethodDelete, "/api/v1/profiles/{customer_id}", Contributor, s.deleteProfile},

		// Segments. Members and previews list profiles: contributors.
		{http.MethodGet, "/api/v1/segments", Viewer, s.listSegments},
		{http.MethodPost, "/api/v1/segments", Contributor, s.createSegment},
		{http.MethodPost, "/api/v1/segments/preview", Contributor, s.previewSegment},
		{http.MethodGet, "/api/v1/segments/{id}", Viewer, s.getSegment},
		{http.MethodPut, "/api/v1/segments/{id}", Contributor, s.updateSegment},
		{http.MethodDelete, "/api/v1/segments/{id}", Contributor, s.deleteSegment},
		{http.MethodGet, "/api/v1/segments/{id}/members", Contributor, s.segmentMembers},

		// Users, tokens, audit (auth). Everyone signs in and out, reads
		// themselves and manages their own tokens; admins manage users,
		// everyone's tokens and read the audit log. The services check
		// "self or admin" where a route allows both.
		{http.MethodPost, "/api/v1/session", Public, s.login},
		{http.MethodDelete, "/api/v1/session", Viewer, s.logout},
		{http.MethodGet, "/api/v1/me", Viewer, s.whoami},
		{http.MethodGet, "/api/v1/users", Admin, s.listUsers},
		{http.MethodPost, "/api/v1/users", Admin, s.createUser},
		{http.MethodGet, "/api/v1/users/{id}", Viewer, s.getUser},
		{http.MethodPatch, "/api/v1/users/{id}", Viewer, s.updateUser},
		{http.MethodGet, "/api/v1/tokens", Viewer, s.listTokens},
		{http.MethodPost, "/api/v1/tokens", Viewer, s.createToken},
		{http.MethodDelete, "/api/v1/tokens/{id}", Viewer, s.revokeToken},
		{http.MethodGet, "/api/v1/audit", Admin, s.listAudit},

		// Connections. Admins manage them; everyone lists and reads the ones
		// they may see (contributors and viewers: shared ones, name, type and
		// account only); contributors list audiences of shared ones.
		{http.MethodGet, "/api/v1/connections", Viewer, s.listConnections},
		{http.MethodPost, "/api/v1/connections", Admin, s.createConnection},
		{http.MethodGet, "/api/v1/connections/oauth/start", Admin, s.oauthStart},
		{http.MethodGet, "/oauth/mailchimp/callback", Admin, s.oauthCallback},
		{http.MethodGet, "/api/v1/connections/{id}", Viewer, s.getConnection},
		{http.MethodPatch, "/api/v1/connections/{id}", Admin, s.updateConnection},
		{http.MethodDelete, "/api/v1/connections/{id}", Admin, s.deleteConnection},
		{http.MethodPost, "/api/v1/connections/{id}/test", Admin, s.testConnection},
		{http.MethodGet, "/api/v1/connections/{id}/audiences", Contributor, s.connectionAudiences},

		// Exports, runs, refresh (viewers read exports, runs and their reports).
		{http.MethodGet, "/api/v1/exports", Viewer, s.listExports},
		{http.MethodPost, "/api/v1/exports", Contributor, s.createExport},
		{http.MethodGet, "/api/v1/exports/{id}", Viewer, s.getExport},
		{http.MethodPut, "/api/v1/exports/{id}", Contributor, s.updateExport},
		{http.MethodDelete, "/api/v1/exports/{id}", Contributor, s.deleteExport},
		{http.MethodPost, "/api/v1/exports/{id}/runs", Contributor, s.startRun},
		{http.MethodGet, "/api/v1/exports/{id}/runs", Viewer, s.listRuns},
		{http.MethodGet, "/api/v1/runs/{id}", Viewer, s.getRun},
		{http.MethodGet, "/api/v1/runs/{id}/rejections", Viewer, s.runRejections},
		{http.MethodPost, "/api/v1/runs/{id}/cancel", Contributor, s.cancelRun},

		// Data sources (admins) and the system refresh (contributors start
		// it, as they run exports; viewers follow it).
		{http.MethodGet, "/api/v1/sources", Admin, s.listSources},
		{http.MethodPost, "/api/v1/sources", Admin, s.createSource},
		{http.MethodPost, "/api/v1/sources/test", Admin, s.testNewSource},
		{http.MethodGet, "/api/v1/sources/{id}", Admin, s.getSource},
		{http.MethodPut, "/api/v1/sources/{id}", Admin, s.updateSource},
		{http.MethodDelete, "/api/v1/sources/{id}", Admin, s.deleteSource},
		{http.MethodPost, "/api/v1/sources/{id}/test", Admin, s.testSource},
		{http.MethodPost, "/api/v1/sources/{id}/pulls", Admin, s.startPull},
		{http.MethodGet, "/api/v1/sources/{id}/pulls", Admin, s.listPulls},
		{http.MethodGet, "/api/v1/pulls/{id}", Admin, s.getPull},
		{http.MethodPost, "/api/v1/pulls/{id}/cancel", Admin, s.cancelPull},
		{http.MethodPost, "/api/v1/refresh", Contributor, s.refresh},
		{http.MethodGet, "/api/v1/refreshes/{id}", Viewer, s.getRefresh},
	}
}
