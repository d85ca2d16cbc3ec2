package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/segsync/segsync/internal/store/dbtest"
)

// newTestServer serves the API over a fresh SQLite store on loopback.
func newTestServer(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	s := New(Deps{Store: dbtest.SQLite(t), Loopback: true})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

// do sends a request and returns the status, content type and body.
func do(t *testing.T, ts *httptest.Server, method, path, contentType string, body io.Reader) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// decodeProblem checks that b is a problem with the given status.
func decodeProblem(t *testing.T, status int, contentType string, b []byte) Problem {
	t.Helper()
	if contentType != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json (body %s)", contentType, b)
	}
	var p Problem
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("problem body %s: %v", b, err)
	}
	if p.Status != status || p.Title == "" || p.Type == "" {
		t.Fatalf("problem %+v, want status %d with type and title", p, status)
	}
	return p
}

func TestSystemRoutes(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t)
	tests := []struct {
		path       string
		wantStatus int
		wantIn     string
	}{
		{"/healthz", 200, `"ok"`},
		{"/readyz", 200, `"ready"`},
		{"/api/v1/openapi.json", 200, `"openapi"`},
		{"/metrics", 200, "go_goroutines"},
	}
	for _, tt := range tests {
		status, _, body := do(t, ts, "GET", tt.path, "", nil)
		if status != tt.wantStatus || !bytes.Contains(body, []byte(tt.wantIn)) {
			t.Errorf("GET %s = %d %.200s, want %d containing %s", tt.path, status, body, tt.wantStatus, tt.wantIn)
		}
	}
	// The requests above are counted by route pattern.
	_, _, body := do(t, ts, "GET", "/metrics", "", nil)
	if want := `segsync_http_requests_total{method="GET",route="GET /healthz",status="200"} 1`; !bytes.Contains(body, []byte(want)) {
		t.Errorf("metrics lack %s", want)
	}
}

func TestReadyzFailsWhenStoreIsClosed(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	ts := httptest.NewServer(New(Deps{Store: db, Loopback: true}).Handler())
	defer ts.Close()
	db.Close()
	status, ct, body := do(t, ts, "GET", "/readyz", "", nil)
	decodeProblem(t, http.StatusServiceUnavailable, ct, body)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("status %d", status)
	}
}

func TestUnmatchedRoutesAreProblems(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t)
	status, ct, body := do(t, ts, "GET", "/api/v1/nothing-here", "", nil)
	decodeProblem(t, http.StatusNotFound, ct, body)
	if status != 404 {
		t.Fatalf("status %d", status)
	}
	req, _ := http.NewRequest("DELETE", ts.URL+"/healthz", nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	decodeProblem(t, http.StatusMethodNotAllowed, resp.Header.Get("Content-Type"), b)
	if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "GET") {
		t.Fatalf("Allow = %q, want GET in it", allow)
	}
}

func TestPanicsBecome500(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := New(Deps{Log: newTextLogger(&logs), Loopback: true})
	mux := http.NewServeMux()
	mux.Handle("GET /boom", s.adapt(func(w http.ResponseWriter, r *http.Request) error { panic("kaboom") }))
	ts := httptest.NewServer(s.observe(mux))
	defer ts.Close()
	status, ct, body := do(t, ts, "GET", "/boom", "", nil)
	p := decodeProblem(t, http.StatusInternalServerError, ct, body)
	if status != 500 || strings.Contains(p.Detail, "kaboom") {
		t.Fatalf("status %d, detail %q: want 500 without the panic value", status, p.Detail)
	}
	if !strings.Contains(logs.String(), "kaboom") {
		t.Fatalf("panic not logged: %s", logs.String())
	}
}

func TestPlaceholderAuthRefusesOffLoopback(t *testing.T) {
	t.Parallel()
	s := New(Deps{Store: dbtest.SQLite(t), Loopback: false})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	for _, rt := range s.Routes() {
		if rt.Access == Public || strings.Contains(rt.Pattern, "{") {
			continue
		}
		status, ct, body := do(t, ts, rt.Method, rt.Pattern, "application/json", strings.NewReader("{}"))
		decodeProblem(t, http.StatusUnauthorized, ct, body)
		if status != 401 {
			t.Errorf("%s %s = %d, want 401", rt.Method, rt.Pattern, status)
		}
	}
	if status, _, _ := do(t, ts, "GET", "/healthz", "", nil); status != 200 {
		t.Errorf("public /healthz = %d off loopback", status)
	}
}

func TestEveryRouteHasAnAccessDecision(t *testing.T) {
	t.Parallel()
	s := New(Deps{})
	seen := map[string]bool{}
	for _, rt := range s.Routes() {
		key := rt.Method + " " + rt.Pattern
		if !rt.Access.valid() {
			t.Errorf("%s: access %q", key, rt.Access)
		}
		if seen[key] {
			t.Errorf("%s: listed twice", key)
		}
		seen[key] = true
	}
}

// TestOpenAPIMatchesRoutes fails when a route is missing from the OpenAPI
// document, or the document lists an operation that no route serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	s := New(Deps{})
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(s.openapi)
	if err != nil {
		t.Fatalf("loading the OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is invalid: %v", err)
	}
	routes := map[string]bool{}
	for _, rt := range s.Routes() {
		key := rt.Method + " " + rt.Pattern
		routes[key] = true
		item := doc.Paths.Find(rt.Pattern)
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("route %s is missing from the OpenAPI document (internal/httpapi/openapi/*.json)", key)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if key := method + " " + path; !routes[key] {
				t.Errorf("the OpenAPI document lists %s, which no route serves", key)
			}
		}
	}
}

func TestOpenAPIMergeRefusesDuplicates(t *testing.T) {
	t.Parallel()
	doc := map[string]any{"paths": map[string]any{"/a": map[string]any{}}}
	if err := mergeObject(doc, "paths", map[string]any{"/a": map[string]any{}}, "x.json"); err == nil {
		t.Fatal("merging a duplicate path succeeded")
	}
	if err := mergeObject(doc, "paths", map[string]any{"/b": map[string]any{}}, "x.json"); err != nil {
		t.Fatalf("merging a new path: %v", err)
	}
}

func TestRequestLogsHoldNoPersonalDataOrSecrets(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := New(Deps{Store: dbtest.SQLite(t), Log: newTextLogger(&logs), Loopback: true})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/profiles/ann@example.org?cursor=secretcursor", nil)
	req.Header.Set("Authorization", "Bearer sst_supersecret")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	out := logs.String()
	if !strings.Contains(out, `route="GET /api/v1/profiles/{customer_id}"`) || !strings.Contains(out, "status=404") {
		t.Fatalf("request not logged by route and status: %s", out)
	}
	for _, leak := range []string{"ann@example.org", "secretcursor", "supersecret"} {
		if strings.Contains(out, leak) {
			t.Errorf("log holds %q: %s", leak, out)
		}
	}
}
