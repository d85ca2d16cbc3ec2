package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

type connJSON struct {
	ID                int64  `json:"id"`
	DisplayName       string `json:"display_name"`
	AccountName       string `json:"account_name"`
	DC                string `json:"dc"`
	ExportUser        string `json:"export_user"`
	AllowContributors *bool  `json:"allow_contributors"`
	Consent           *struct {
		By string `json:"by"`
	} `json:"consent"`
}

// TestTriedAsANewUser walks the security model the way a new team would:
// an admin, a contributor and a viewer; connections shared and not; and at
// the end greps every answer and log line for the API keys.
func TestTriedAsANewUser(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := newAuthEnv(t, db)
		ctx := context.Background()
		created, err := e.users.EnsureFirstAdmin(ctx, "admin@example.org", "the first admin password")
		if err != nil || !created {
			t.Fatalf("first admin: %v %v", created, err)
		}
		adminUser, _ := e.users.UserByEmail(ctx, auth.SystemPrincipal, "admin@example.org")
		adminTok, _, _ := e.users.CreateToken(ctx, auth.SystemPrincipal, adminUser.ID, "admin cli")

		// The admin makes a contributor and a viewer, and tokens for them.
		tokens := map[auth.Role]string{auth.Admin: adminTok}
		principals := map[auth.Role]auth.Principal{auth.Admin: {UserID: adminUser.ID, Email: adminUser.Email, Role: auth.Admin}}
		for _, r := range []auth.Role{auth.Contributor, auth.Viewer} {
			var u userJSON
			e.want(e.do(call{method: "POST", path: "/api/v1/users", token: adminTok,
				body: map[string]string{"email": string(r) + "@example.org", "role": string(r)}}), 201, "create "+string(r)).json(t, &u)
			var tk struct {
				Token string `json:"token"`
			}
			e.want(e.do(call{method: "POST", path: "/api/v1/tokens", token: adminTok, body: map[string]any{"user_id": u.ID, "name": "laptop"}}), 201, "token for "+string(r)).json(t, &tk)
			tokens[r] = tk.Token
			principals[r] = auth.Principal{UserID: u.ID, Email: u.Email, Role: r}
		}
		admin, contrib, viewer := tokens[auth.Admin], tokens[auth.Contributor], tokens[auth.Viewer]
		e.want(e.do(call{method: "POST", path: "/api/v1/users", token: contrib, body: map[string]string{"email": "x@example.org", "role": "admin"}}), 403, "contributor creates a user")
		e.want(e.do(call{method: "GET", path: "/api/v1/users", token: viewer}), 403, "viewer lists users")

		base := e.emuTS.URL + "/3.0"
		newConn := func(name string, shared bool) map[string]any {
			return map[string]any{"display_name": name, "type": "mailchimp", "api_key": e.keys[0], "allow_contributors": shared,
				"privacy_consent": true, "api_base_url": base}
		}
		// Only admins create connections, and only with consent.
		e.want(e.do(call{method: "POST", path: "/api/v1/connections", body: newConn("x", true)}), 401, "anonymous creates a connection")
		e.want(e.do(call{method: "POST", path: "/api/v1/connections", token: contrib, body: newConn("x", true)}), 403, "contributor creates a connection")
		e.want(e.do(call{method: "POST", path: "/api/v1/connections", token: viewer, body: newConn("x", true)}), 403, "viewer creates a connection")
		noConsent := newConn("x", true)
		delete(noConsent, "privacy_consent")
		var p Problem
		e.want(e.do(call{method: "POST", path: "/api/v1/connections", token: admin, body: noConsent}), 400, "no consent").json(t, &p)
		if len(p.Errors) != 1 || p.Errors[0].Field != "privacy_consent" {
			t.Fatalf("no-consent problem %+v: want the field named", p)
		}
		badKey := newConn("x", true)
		badKey["api_key"] = "00000000000000000000000000000000-us6"
		e.want(e.do(call{method: "POST", path: "/api/v1/connections", token: admin, body: badKey}), 400, "refused key").json(t, &p)
		if len(p.Errors) != 1 || p.Errors[0].Field != "api_key" || strings.Contains(p.Detail, "00000000000000000000") {
			t.Fatalf("refused-key problem %+v", p)
		}

		var private, shared connJSON
		e.want(e.do(call{method: "POST", path: "/api/v1/connections", token: admin, body: newConn("Private", false)}), 201, "create private").json(t, &private)
		e.want(e.do(call{method: "POST", path: "/api/v1/connections", token: admin, body: newConn("Shared", true)}), 201, "create shared").json(t, &shared)
		if private.AccountName == "" || private.DC != "us6" || private.ExportUser != "admin@example.org" || private.Consent == nil || private.Consent.By != "admin@example.org" {
			t.Fatalf("created connection %+v", private)
		}
		listID, err := e.emu.CreateList(e.keys[0], "Newsletter")
		if err != nil {
			t.Fatal(err)
		}

		// Contributors: shared ones only, name/type/account only; use, never manage.
		a := e.want(e.do(call{method: "GET", path: "/api/v1/connections", token: contrib}), 200, "contributor lists")
		var list struct {
			Connections []map[string]any `json:"connections"`
		}
		a.json(t, &list)
		if len(list.Connections) != 1 || list.Connections[0]["display_name"] != "Shared" {
			t.Fatalf("contributor sees %v", list.Connections)
		}
		var keys []string
		for k := range list.Connections[0] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if fmt.Sprint(keys) != "[account_name display_name id type]" {
			t.Fatalf("contributor sees fields %v", keys)
		}
		sid, pid := fmt.Sprint(shared.ID), fmt.Sprint(private.ID)
		steps := []struct {
			method, path, token string
			body                any
			want                int
		}{
			{"GET", "/api/v1/connections/" + sid, contrib, nil, 200},
			{"GET", "/api/v1/connections/" + pid, contrib, nil, 403},
			{"GET", "/api/v1/connections/" + sid + "/audiences", contrib, nil, 200},
			{"GET", "/api/v1/connections/" + pid + "/audiences", contrib, nil, 403},
			{"PATCH", "/api/v1/connections/" + sid, contrib, map[string]any{"allow_contributors": false}, 403},
			{"PATCH", "/api/v1/connections/" + pid, contrib, map[string]any{"allow_contributors": true}, 403},
			{"POST", "/api/v1/connections/" + sid + "/test", contrib, nil, 403},
			{"DELETE", "/api/v1/connections/" + sid, contrib, nil, 403},
			{"GET", "/api/v1/audit", contrib, nil, 403},
			{"GET", "/api/v1/connections", viewer, nil, 200},
			{"GET", "/api/v1/connections/" + sid, viewer, nil, 200},
			{"GET", "/api/v1/connections/" + sid + "/audiences", viewer, nil, 403},
			{"PATCH", "/api/v1/connections/" + sid, viewer, map[string]any{"display_name": "mine"}, 403},
			{"POST", "/api/v1/segments", viewer, map[string]any{"name": "s", "rule": map[string]any{"attribute": "a", "op": "is_empty"}}, 403},
			{"DELETE", "/api/v1/profiles/c1", viewer, nil, 403},
			{"GET", "/api/v1/segments", viewer, nil, 200},
			{"GET", "/api/v1/connections/" + pid + "/audiences", admin, nil, 200},
			{"POST", "/api/v1/connections/" + sid + "/test", admin, nil, 200},
			{"PATCH", "/api/v1/connections/" + sid, admin, map[string]any{"api_key": e.keys[1]}, 400}, // another account
		}
		for _, s := range steps {
			a := e.do(call{method: s.method, path: s.path, token: s.token, body: s.body})
			if a.status != s.want {
				t.Errorf("%s %s as %s: %d, want %d: %s", s.method, s.path, principalOf(tokens, s.token), a.status, s.want, a.body)
			}
		}
		var auds struct {
			Audiences []struct{ ID string } `json:"audiences"`
		}
		e.do(call{method: "GET", path: "/api/v1/connections/" + sid + "/audiences", token: contrib}).json(t, &auds)
		if len(auds.Audiences) != 1 || auds.Audiences[0].ID != listID {
			t.Fatalf("audiences %+v, want %s", auds, listID)
		}
		// What the export engine calls: may this principal use that connection?
		for _, c := range []struct {
			role auth.Role
			id   int64
			ok   bool
		}{{auth.Contributor, shared.ID, true}, {auth.Contributor, private.ID, false}, {auth.Viewer, shared.ID, false}, {auth.Admin, private.ID, true}} {
			_, err := e.conns.Client(ctx, principals[c.role], c.id)
			if (err == nil) != c.ok || (err != nil && !errors.Is(err, auth.ErrForbidden)) {
				t.Errorf("%s using connection %d: %v, want ok=%v", c.role, c.id, err, c.ok)
			}
		}

		// Deleting a connection that an export uses needs ?detach=true.
		ex := store.Export{Name: "weekly", ConnectionID: &private.ID, AudienceID: listID, SegmentIDs: []int64{},
			Mapping: store.Mapping{Email: "email"}, StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
		if err := db.CreateExport(ctx, &ex); err != nil {
			t.Fatal(err)
		}
		e.want(e.do(call{method: "DELETE", path: "/api/v1/connections/" + pid, token: admin}), 409, "delete a used connection")
		var del struct {
			Detached int `json:"detached_exports"`
		}
		e.want(e.do(call{method: "DELETE", path: "/api/v1/connections/" + pid + "?detach=true", token: admin}), 200, "delete with detach").json(t, &del)
		if got, _ := db.GetExport(ctx, ex.ID); del.Detached != 1 || got.ConnectionID != nil {
			t.Fatalf("detached %d, export connection %v", del.Detached, got.ConnectionID)
		}

		var aud struct {
			Events []store.AuditEvent `json:"events"`
		}
		e.want(e.do(call{method: "GET", path: "/api/v1/audit?limit=1000", token: admin}), 200, "audit").json(t, &aud)
		seen := map[string]bool{}
		for _, ev := range aud.Events {
			seen[ev.Action] = true
		}
		for _, want := range []string{"user.create", "token.create", "connection.create", "connection.consent", "connection.delete"} {
			if !seen[want] {
				t.Errorf("the audit log lacks %s (has %v)", want, seen)
			}
		}
		e.assertNoSecrets(e.keys[0], e.keys[1])
	})
}

func principalOf(tokens map[auth.Role]string, tok string) string {
	for r, t := range tokens {
		if t == tok {
			return string(r)
		}
	}
	return "anonymous"
}

// TestOAuthAgainstTheEmulator runs "Authenticate with Mailchimp" end to end:
// start, the emulator's authorize page, the callback, the token exchange and
// the metadata lookup; then the connection works.
func TestOAuthAgainstTheEmulator(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, dbtest.SQLite(t))
	_, admin := e.user("admin@example.org", auth.Admin)
	_, admin2 := e.user("admin2@example.org", auth.Admin)
	_, contrib := e.user("c@example.org", auth.Contributor)
	if _, err := e.emu.CreateList(e.keys[0], "OAuth list"); err != nil {
		t.Fatal(err)
	}
	start := func(token string) (state string, callback string) {
		a := e.want(e.do(call{method: "GET", path: "/api/v1/connections/oauth/start?display_name=Via+OAuth&allow_contributors=true&privacy_consent=true", token: token}), 303, "start")
		authorize := a.header.Get("Location")
		if !strings.HasPrefix(authorize, e.emuTS.URL+"/oauth2/authorize?") {
			t.Fatalf("start redirects to %q", authorize)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(authorize)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cb, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || resp.StatusCode != http.StatusFound || !strings.HasPrefix(cb.String(), e.ts.URL+"/oauth/mailchimp/callback?") {
			t.Fatalf("emulator authorize answered %d → %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return cb.Query().Get("state"), cb.RequestURI()
	}
	e.want(e.do(call{method: "GET", path: "/api/v1/connections/oauth/start?display_name=x", token: admin}), 400, "start without consent")
	e.want(e.do(call{method: "GET", path: "/api/v1/connections/oauth/start?display_name=x&privacy_consent=true", token: contrib}), 403, "contributor starts")

	// The state is bound to the admin who started, used once, and checked.
	_, cb := start(admin)
	e.want(e.do(call{method: "GET", path: cb, token: admin2}), 403, "callback by another admin")
	e.want(e.do(call{method: "GET", path: cb, token: admin}), 400, "callback after the state was used")
	_, cb = start(admin)
	forged := strings.Replace(cb, "state=", "state=x", 1)
	e.want(e.do(call{method: "GET", path: forged, token: admin}), 400, "forged state")
	e.want(e.do(call{method: "GET", path: "/oauth/mailchimp/callback?state=abc&code=def"}), 401, "anonymous callback")

	_, cb = start(admin)
	var c connJSON
	e.want(e.do(call{method: "GET", path: cb, token: admin}), 201, "callback").json(t, &c)
	if c.DisplayName != "Via OAuth" || c.DC != "us6" || c.AccountName == "" || c.AllowContributors == nil || !*c.AllowContributors ||
		c.ExportUser != "admin@example.org" || c.Consent == nil {
		t.Fatalf("OAuth connection %+v", c)
	}
	var auds struct {
		Audiences []struct{ Name string } `json:"audiences"`
	}
	e.want(e.do(call{method: "GET", path: fmt.Sprintf("/api/v1/connections/%d/audiences", c.ID), token: contrib}), 200, "audiences via OAuth token").json(t, &auds)
	if len(auds.Audiences) != 1 || auds.Audiences[0].Name != "OAuth list" {
		t.Fatalf("audiences %+v", auds)
	}
	var res struct {
		OK bool `json:"ok"`
	}
	e.want(e.do(call{method: "POST", path: fmt.Sprintf("/api/v1/connections/%d/test", c.ID), token: admin}), 200, "test").json(t, &res)
	if !res.OK {
		t.Fatal("the OAuth connection does not test OK")
	}
	e.assertNoSecrets(e.keys[0], "app-secret-never-shown")
}
