package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

// TestSecurityHeaders checks the headers on answers of every kind: a JSON
// route, a problem, an unknown path and a refused method.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t)
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "same-origin",
	}
	tests := []struct{ method, path string }{
		{"GET", "/healthz"},
		{"GET", "/api/v1/openapi.json"},
		{"GET", "/no/such/page"},
		{"DELETE", "/healthz"},
		{"POST", "/api/v1/segments"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, ts.URL+tt.path, nil)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s %s: %s = %q, want %q", tt.method, tt.path, k, got, v)
			}
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("%s %s: CSP %q lacks %q", tt.method, tt.path, csp, d)
			}
		}
		// Inline script and style would defeat the policy's point.
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("CSP allows inline code: %q", csp)
		}
	}
}
