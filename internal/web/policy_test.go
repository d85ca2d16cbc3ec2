package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/web"
)

// pagePolicy is the expected least role of every page, written out apart
// from the page table: a page added without a line here fails
// TestPagePolicy, so adding a page means deciding who may open it.
var pagePolicy = map[string]web.Access{
	"GET /login":                    web.Public,
	"POST /login":                   web.Public,
	"POST /logout":                  web.Viewer,
	"GET /{$}":                      web.Viewer,
	"GET /profiles":                 web.Viewer,
	"POST /profiles/import":         web.Contributor,
	"GET /sources":                  web.Admin,
	"GET /sources/new":              web.Admin,
	"POST /sources/new":             web.Admin,
	"GET /sources/{id}":             web.Admin,
	"GET /sources/{id}/edit":        web.Admin,
	"POST /sources/{id}/edit":       web.Admin,
	"POST /sources/{id}/pull":       web.Admin,
	"POST /sources/{id}/delete":     web.Admin,
	"POST /pulls/{id}/cancel":       web.Admin,
	"POST /refresh":                 web.Contributor,
	"GET /refreshes/{id}":           web.Viewer,
	"GET /segments":                 web.Viewer,
	"GET /segments/new":             web.Contributor,
	"POST /segments/new":            web.Contributor,
	"POST /segments/count":          web.Contributor,
	"GET /segments/{id}":            web.Viewer,
	"GET /segments/{id}/edit":       web.Contributor,
	"POST /segments/{id}/edit":      web.Contributor,
	"POST /segments/{id}/delete":    web.Contributor,
	"GET /exports":                  web.Viewer,
	"GET /exports/new":              web.Contributor,
	"POST /exports/new":             web.Contributor,
	"GET /exports/{id}":             web.Viewer,
	"GET /exports/{id}/edit":        web.Contributor,
	"POST /exports/{id}/edit":       web.Contributor,
	"POST /exports/{id}/delete":     web.Contributor,
	"POST /exports/{id}/run":        web.Contributor,
	"GET /runs/{id}":                web.Viewer,
	"GET /runs/{id}/rejections.csv": web.Viewer,
	"POST /runs/{id}/cancel":        web.Contributor,
	"GET /status":                   web.Viewer,
	"GET /tokens":                   web.Viewer,
	"POST /tokens":                  web.Viewer,
	"POST /tokens/{id}/revoke":      web.Viewer,
	"POST /account/password":        web.Viewer,
	"GET /connections":              web.Viewer,
	"GET /connections/new":          web.Admin,
	"POST /connections/new":         web.Admin,
	"GET /oauth/mailchimp/callback": web.Admin,
	"GET /connections/{id}":         web.Viewer,
	"POST /connections/{id}":        web.Admin,
	"POST /connections/{id}/test":   web.Admin,
	"GET /connections/{id}/delete":  web.Admin,
	"POST /connections/{id}/delete": web.Admin,
	"GET /users":                    web.Admin,
	"POST /users":                   web.Admin,
	"POST /users/{id}":              web.Admin,
	"GET /audit":                    web.Admin,
}

var roleRank = map[web.Access]int{web.Public: 0, web.Viewer: 1, web.Contributor: 2, web.Admin: 3}

func pageTable(t *testing.T) []web.Route {
	t.Helper()
	ui, err := web.New(web.Deps{API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	return ui.Routes()
}

func TestEveryPageHasADecidedAccess(t *testing.T) {
	seen := map[string]bool{}
	for _, rt := range pageTable(t) {
		key := rt.Method + " " + rt.Pattern
		seen[key] = true
		want, ok := pagePolicy[key]
		switch {
		case !ok:
			t.Errorf("page %s has no line in pagePolicy: decide who may open it", key)
		case rt.Access != want:
			t.Errorf("page %s needs %s, the policy says %s", key, rt.Access, want)
		}
	}
	for key := range pagePolicy {
		if !seen[key] {
			t.Errorf("pagePolicy lists %s, which no page serves", key)
		}
	}
}

// session is a signed-in HTTP client that does not follow redirects.
type session struct {
	c    *http.Client
	csrf string
}

func signInHTTP(t *testing.T, base, email, password string) *session {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"/login", url.Values{"email": {email}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in of %s: %d", email, resp.StatusCode)
	}
	resp, err = c.Get(base + "/api/v1/me")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var me struct {
		CSRF string `json:"csrf_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&me); err != nil || me.CSRF == "" {
		t.Fatalf("reading the CSRF token: %v", err)
	}
	return &session{c: c, csrf: me.CSRF}
}

// TestPagePolicy opens every page as nobody, viewer, contributor and admin:
// below the page's role the answer is the sign-in redirect (nobody) or
// "Not allowed" (403); from it on, neither.
func TestPagePolicy(t *testing.T) {
	base := startServe(t)
	admin := signInHTTP(t, base, adminEmail, adminPassword)
	for _, u := range []struct{ email, role string }{{"vera@shop.test", "viewer"}, {"carl@shop.test", "contributor"}} {
		body := strings.NewReader(`{"email":"` + u.email + `","role":"` + u.role + `","password":"policy password 1"}`)
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/users", body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", admin.csrf)
		resp, err := admin.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("creating %s: %d", u.email, resp.StatusCode)
		}
	}
	clients := map[web.Access]*session{
		web.Public:      {c: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}},
		web.Viewer:      signInHTTP(t, base, "vera@shop.test", "policy password 1"),
		web.Contributor: signInHTTP(t, base, "carl@shop.test", "policy password 1"),
		web.Admin:       admin,
	}
	routes := pageTable(t)
	for _, role := range []web.Access{web.Public, web.Viewer, web.Contributor, web.Admin} {
		s := clients[role]
		for _, rt := range routes {
			if rt.Pattern == "/logout" || rt.Pattern == "/account/password" || rt.Access == web.Public {
				// Signing out and changing one's password end the session the
				// other checks use; public pages have nothing to check.
				continue
			}
			path := strings.ReplaceAll(strings.ReplaceAll(rt.Pattern, "{id}", "999999"), "{$}", "")
			var req *http.Request
			if rt.Method == http.MethodPost {
				req, _ = http.NewRequest(rt.Method, base+path, strings.NewReader(url.Values{"csrf_token": {s.csrf}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			} else {
				req, _ = http.NewRequest(rt.Method, base+path, nil)
			}
			resp, err := s.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			toSignIn := resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "/login")
			denied := resp.StatusCode == http.StatusForbidden && strings.Contains(string(b), "Not allowed")
			allowed := roleRank[role] >= roleRank[rt.Access]
			switch {
			case role == web.Public && !toSignIn:
				t.Errorf("anonymous %s %s: %d %s, want the sign-in redirect", rt.Method, path, resp.StatusCode, resp.Header.Get("Location"))
			case role != web.Public && allowed && (toSignIn || denied):
				t.Errorf("%s %s %s: refused (%d), but the page is for %s", role, rt.Method, path, resp.StatusCode, rt.Access)
			case role != web.Public && !allowed && !denied:
				t.Errorf("%s %s %s: %d, want 403 Not allowed (the page is for %s)", role, rt.Method, path, resp.StatusCode, rt.Access)
			}
		}
	}
}
