package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// routePolicy is the expected least role of every route, written out
// independently of the route table. A route registered without a line here
// fails TestRoutePolicy: adding a route means deciding who may call it.
// Lines for routes not (yet) registered are ignored; they record what the
// SPEC's roles imply for routes other areas are building.
var routePolicy = map[string]Access{
	"GET /healthz":             Public,
	"GET /readyz":              Public,
	"GET /metrics":             Public,
	"GET /api/v1/openapi.json": Public,

	// Profiles are personal data: contributors; the attribute catalogue is metadata.
	"POST /api/v1/profiles/import":           Contributor,
	"GET /api/v1/profiles":                   Contributor,
	"GET /api/v1/profiles/attributes":        Viewer,
	"GET /api/v1/profiles/{customer_id}":     Contributor,
	"DELETE /api/v1/profiles/{customer_id}":  Contributor,
	"GET /api/v1/segments":                   Viewer,
	"POST /api/v1/segments":                  Contributor,
	"POST /api/v1/segments/preview":          Contributor,
	"GET /api/v1/segments/{id}":              Viewer,
	"PUT /api/v1/segments/{id}":              Contributor,
	"DELETE /api/v1/segments/{id}":           Contributor,
	"GET /api/v1/segments/{id}/members":      Contributor,
	"POST /api/v1/session":                   Public,
	"DELETE /api/v1/session":                 Viewer,
	"GET /api/v1/me":                         Viewer,
	"GET /api/v1/users":                      Admin,
	"POST /api/v1/users":                     Admin,
	"GET /api/v1/users/{id}":                 Viewer, // self; others: admins (service)
	"PATCH /api/v1/users/{id}":               Viewer, // own password; the rest: admins (service)
	"GET /api/v1/tokens":                     Viewer, // own; others': admins (service)
	"POST /api/v1/tokens":                    Viewer,
	"DELETE /api/v1/tokens/{id}":             Viewer,
	"GET /api/v1/audit":                      Admin,
	"GET /api/v1/connections":                Viewer, // non-admins: shared ones, limited fields (service)
	"POST /api/v1/connections":               Admin,
	"GET /api/v1/connections/oauth/start":    Admin,
	"GET /oauth/mailchimp/callback":          Admin,
	"GET /api/v1/connections/{id}":           Viewer,
	"PATCH /api/v1/connections/{id}":         Admin,
	"DELETE /api/v1/connections/{id}":        Admin,
	"POST /api/v1/connections/{id}/test":     Admin,
	"GET /api/v1/sources":                    Admin,
	"POST /api/v1/sources":                   Admin,
	"POST /api/v1/sources/test":              Admin,
	"GET /api/v1/sources/{id}":               Admin,
	"PUT /api/v1/sources/{id}":               Admin,
	"DELETE /api/v1/sources/{id}":            Admin,
	"POST /api/v1/sources/{id}/test":         Admin,
	"POST /api/v1/sources/{id}/pulls":        Admin,
	"GET /api/v1/sources/{id}/pulls":         Admin,
	"GET /api/v1/pulls/{id}":                 Admin,
	"POST /api/v1/pulls/{id}/cancel":         Admin,
	"GET /api/v1/refreshes/{id}":             Viewer,
	"GET /api/v1/connections/{id}/audiences": Contributor, // shared ones only (service)

	// Exports and runs (SPEC 3: viewers read exports, runs and reports;
	// contributors manage and run exports).
	"GET /api/v1/exports":              Viewer,
	"POST /api/v1/exports":             Contributor,
	"GET /api/v1/exports/{id}":         Viewer,
	"PUT /api/v1/exports/{id}":         Contributor,
	"DELETE /api/v1/exports/{id}":      Contributor,
	"POST /api/v1/exports/{id}/runs":   Contributor,
	"GET /api/v1/exports/{id}/runs":    Viewer,
	"GET /api/v1/runs/{id}":            Viewer,
	"GET /api/v1/runs/{id}/rejections": Viewer,
	"POST /api/v1/runs/{id}/cancel":    Contributor,
	"POST /api/v1/refresh":             Contributor,
}

// concretePath fills a pattern's wildcards with ids that exist nowhere.
func concretePath(pattern string) string {
	var b strings.Builder
	for _, seg := range strings.Split(pattern, "/") {
		if b.Len() > 0 || seg != "" {
			b.WriteString("/")
		}
		if strings.HasPrefix(seg, "{") {
			seg = "987654"
		}
		b.WriteString(seg)
	}
	return b.String()
}

// TestRoutePolicy sends every route as anonymous, viewer, contributor and
// admin. Refusals go through the whole server and must be 401 (anonymous)
// or 403 (too little role) as problem+json; admissions are checked at the
// access layer, so that a handler's own answers (404 for the made-up ids,
// object-level refusals) do not blur the route decision.
func TestRoutePolicy(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, dbtest.SQLite(t))
	tokens := map[Access]string{Public: ""}
	for _, r := range []auth.Role{auth.Viewer, auth.Contributor, auth.Admin} {
		_, tokens[Access(r)] = e.user(string(r)+"@example.org", r)
	}
	s := New(Deps{Store: e.db, Auth: e.users, Connections: e.conns})
	reached := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	callers := []Access{Public, Viewer, Contributor, Admin} // Public: anonymous
	for _, rt := range s.Routes() {
		key := rt.Method + " " + rt.Pattern
		want, ok := routePolicy[key]
		if !ok {
			t.Errorf("route %s has no line in routePolicy (policy_test.go): decide who may call it", key)
			continue
		}
		if rt.Access != want {
			t.Errorf("route %s requires %s, the policy says %s", key, rt.Access, want)
			continue
		}
		guarded := s.authorize(rt, reached)
		for _, caller := range callers {
			allowed := want == Public || (caller != Public && auth.Role(caller).AtLeast(auth.Role(want)))
			path := concretePath(rt.Pattern)
			if allowed {
				req := httptest.NewRequest(rt.Method, path, strings.NewReader("{}"))
				if tokens[caller] != "" {
					req.Header.Set("Authorization", "Bearer "+tokens[caller])
				}
				rec := httptest.NewRecorder()
				guarded.ServeHTTP(rec, req)
				if rec.Code != 299 {
					t.Errorf("%s as %s: refused with %d, want admitted", key, caller, rec.Code)
				}
				continue
			}
			wantStatus := http.StatusForbidden
			if caller == Public {
				wantStatus = http.StatusUnauthorized
			}
			a := e.do(call{method: rt.Method, path: path, token: tokens[caller], body: map[string]any{}})
			if a.status != wantStatus || a.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s as %s: %d %s, want %d problem+json", key, caller, a.status, a.header.Get("Content-Type"), wantStatus)
			}
		}
	}
}
