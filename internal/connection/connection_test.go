package connection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

const (
	keyA  = "0123456789abcdef0123456789abcdef-us6" // account acc-1
	keyA2 = "fedcba9876543210fedcba9876543210-us6" // account acc-1, second key
	keyB  = "11112222333344445555666677778888-us7" // account acc-2
)

// fakeMailchimp answers ping, the account root, lists and the OAuth
// endpoints for a few fixed credentials.
type fakeMailchimp struct {
	mu       sync.Mutex
	accounts map[string]string // credential -> account id
	codes    map[string]string // OAuth code -> access token
	srv      *httptest.Server
}

func newFake(t *testing.T) *fakeMailchimp {
	f := &fakeMailchimp{
		accounts: map[string]string{keyA: "acc-1", keyA2: "acc-1", keyB: "acc-2", "oauth-token-xyz": "acc-3"},
		codes:    map[string]string{"good-code": "oauth-token-xyz"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/3.0/", func(w http.ResponseWriter, r *http.Request) {
		cred := ""
		if _, pw, ok := r.BasicAuth(); ok {
			cred = pw
		} else if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			cred = b
		}
		f.mu.Lock()
		acc, ok := f.accounts[cred]
		f.mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(401)
			json.NewEncoder(w).Encode(map[string]any{"type": "x", "title": "API Key Invalid", "status": 401,
				"detail": "Your API key may be invalid, or you've attempted to access the wrong datacenter."})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/3.0/ping":
			json.NewEncoder(w).Encode(map[string]string{"health_status": "Everything's Chimpy!"})
		case "/3.0/":
			json.NewEncoder(w).Encode(map[string]string{"account_id": acc, "account_name": "Account " + acc})
		case "/3.0/lists":
			json.NewEncoder(w).Encode(map[string]any{"lists": []map[string]any{{"id": "l1", "name": "Main", "stats": map[string]any{"member_count": 3}}}, "total_items": 1})
		default:
			w.WriteHeader(404)
		}
	})
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		tok, ok := f.codes[r.PostForm.Get("code")]
		if !ok || r.PostForm.Get("client_secret") != "app-secret" {
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": 0})
	})
	mux.HandleFunc("GET /oauth2/metadata", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "OAuth oauth-token-xyz" {
			w.WriteHeader(401)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"dc": "us9", "accountname": "OAuth Co", "api_endpoint": f.srv.URL})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeMailchimp) revoke(cred string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.accounts, cred)
}

type fixture struct {
	db                *sqldb.DB
	svc               *Service
	fake              *fakeMailchimp
	admin, contrib, v auth.Principal
	admin2            auth.Principal
}

func newFixture(t *testing.T, db *sqldb.DB) *fixture {
	ctx := context.Background()
	f := &fixture{db: db, fake: newFake(t)}
	users := auth.NewService(db, nil, nil, auth.Options{Password: auth.PasswordParams{Memory: 64, Time: 1, Threads: 1}})
	mk := func(email string, role auth.Role) auth.Principal {
		u, err := users.CreateUser(ctx, auth.SystemPrincipal, auth.NewUser{Email: email, Role: string(role)})
		if err != nil {
			t.Fatal(err)
		}
		return auth.Principal{UserID: u.ID, Email: u.Email, Role: role}
	}
	f.admin, f.admin2 = mk("admin@example.org", auth.Admin), mk("admin2@example.org", auth.Admin)
	f.contrib, f.v = mk("contrib@example.org", auth.Contributor), mk("viewer@example.org", auth.Viewer)
	v, _ := NewVault(bytes.Repeat([]byte{3}, 32))
	svc, err := NewService(db, Options{Vault: v, Audit: audit.New(db, nil),
		ClientConfig: func(c *mailchimp.Config) { c.MaxRetries = -1 },
		OAuth: OAuthSettings{ClientID: "app-id", ClientSecret: "app-secret", LoginURL: f.fake.srv.URL,
			RedirectURL: "http://127.0.0.1:8080/oauth/mailchimp/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func fieldOf(err error) string {
	var l fielderr.List
	if errors.As(err, &l) && len(l) > 0 {
		return l[0].Field
	}
	return ""
}

func TestConnectionLifecycle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		base := f.fake.srv.URL + "/3.0"
		good := CreateInput{DisplayName: "Main", APIKey: keyA, PrivacyConsent: true, APIBaseURL: base}

		bad := []struct {
			name      string
			p         auth.Principal
			in        CreateInput
			wantField string
			wantErr   error
		}{
			{"no consent", f.admin, CreateInput{DisplayName: "Main", APIKey: keyA, APIBaseURL: base}, "privacy_consent", nil},
			{"no name", f.admin, CreateInput{APIKey: keyA, PrivacyConsent: true, APIBaseURL: base}, "display_name", nil},
			{"wrong type", f.admin, CreateInput{DisplayName: "x", Type: "sendgrid", APIKey: keyA, PrivacyConsent: true, APIBaseURL: base}, "type", nil},
			{"refused key", f.admin, CreateInput{DisplayName: "x", APIKey: "deadbeefdeadbeef-us6", PrivacyConsent: true, APIBaseURL: base}, "api_key", nil},
			{"no dc", f.admin, CreateInput{DisplayName: "x", APIKey: "nodatacenter", PrivacyConsent: true}, "api_key", nil},
			{"bad base", f.admin, CreateInput{DisplayName: "x", APIKey: keyA, PrivacyConsent: true, APIBaseURL: "ftp://x"}, "api_base_url", nil},
			{"contributor", f.contrib, good, "", auth.ErrForbidden},
			{"viewer", f.v, good, "", auth.ErrForbidden},
			{"anonymous", auth.Principal{}, good, "", auth.ErrUnauthenticated},
		}
		for _, tt := range bad {
			_, err := f.svc.Create(ctx, tt.p, tt.in)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) || tt.wantField != "" && fieldOf(err) != tt.wantField {
				t.Errorf("%s: %v, want field %q / %v", tt.name, err, tt.wantField, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "deadbeefdeadbeef") {
				t.Errorf("%s: the error repeats the key: %v", tt.name, err)
			}
		}

		v, err := f.svc.Create(ctx, f.admin, good)
		if err != nil {
			t.Fatal(err)
		}
		if v.AccountName != "Account acc-1" || v.ExportUser != f.admin.Email || v.Consent == nil || v.Consent.By != f.admin.Email ||
			v.DC != "us6" || v.AuthMethod != MethodAPIKey || v.APIBaseURL != base || *v.AllowContributors {
			t.Fatalf("created view = %+v", v)
		}
		stored, _ := db.GetConnection(ctx, v.ID)
		if bytes.Contains(stored.Credential, []byte(keyA)) {
			t.Fatal("the credential is stored in clear")
		}

		// Unshared: contributors neither see nor use it; viewers never use.
		if vs, _ := f.svc.List(ctx, f.contrib); len(vs) != 0 {
			t.Fatalf("contributor sees unshared connections: %+v", vs)
		}
		if _, err := f.svc.Get(ctx, f.contrib, v.ID); !errors.Is(err, auth.ErrForbidden) {
			t.Fatalf("contributor Get unshared: %v", err)
		}
		if _, err := f.svc.Client(ctx, f.contrib, v.ID); !errors.Is(err, auth.ErrForbidden) {
			t.Fatalf("contributor Client unshared: %v", err)
		}
		if _, err := f.svc.Audiences(ctx, f.contrib, v.ID); !errors.Is(err, auth.ErrForbidden) {
			t.Fatalf("contributor Audiences unshared: %v", err)
		}
		if _, err := f.svc.Update(ctx, f.contrib, v.ID, Patch{AllowContributors: ptr(true)}); !errors.Is(err, auth.ErrForbidden) {
			t.Fatalf("contributor shared it: %v", err)
		}

		// Share it.
		if _, err := f.svc.Update(ctx, f.admin, v.ID, Patch{AllowContributors: ptr(true), DisplayName: ptr("Shared")}); err != nil {
			t.Fatal(err)
		}
		vs, _ := f.svc.List(ctx, f.contrib)
		if len(vs) != 1 || vs[0].DisplayName != "Shared" || vs[0].AccountName == "" || vs[0].DC != "" || vs[0].Consent != nil ||
			vs[0].ExportUser != "" || vs[0].APIBaseURL != "" || vs[0].AllowContributors != nil {
			t.Fatalf("contributor's list = %+v, want name, type and account name only", vs)
		}
		if _, err := f.svc.Client(ctx, f.contrib, v.ID); err != nil {
			t.Fatalf("contributor Client shared: %v", err)
		}
		if _, err := f.svc.Client(ctx, f.v, v.ID); !errors.Is(err, auth.ErrForbidden) {
			t.Fatalf("viewer Client: %v", err)
		}
		auds, err := f.svc.Audiences(ctx, f.contrib, v.ID)
		if err != nil || len(auds) != 1 || auds[0].ID != "l1" || auds[0].MemberCount != 3 {
			t.Fatalf("Audiences = %+v, %v", auds, err)
		}

		// Rotation: same account yes, another account no.
		if _, err := f.svc.Update(ctx, f.admin, v.ID, Patch{APIKey: ptr(keyB)}); fieldOf(err) != "api_key" {
			t.Fatalf("rotating to another account: %v", err)
		}
		if _, err := f.svc.Update(ctx, f.admin2, v.ID, Patch{APIKey: ptr(keyA2)}); err != nil {
			t.Fatalf("rotating: %v", err)
		}
		f.fake.revoke(keyA)
		res, err := f.svc.Test(ctx, f.admin, v.ID)
		if err != nil || !res.OK {
			t.Fatalf("Test after rotation = %+v, %v (the old key is revoked; the new one must be in use)", res, err)
		}
		got, _ := f.svc.Get(ctx, f.admin, v.ID)
		if got.ExportUser != f.admin2.Email || got.Consent.By != f.admin.Email || got.Exports == nil || *got.Exports != 0 {
			t.Fatalf("after rotation: %+v", got)
		}
		f.fake.revoke(keyA2)
		res, err = f.svc.Test(ctx, f.admin, v.ID)
		if err != nil || res.OK || res.Error == "" || strings.Contains(res.Error, keyA2) {
			t.Fatalf("Test with a revoked key = %+v, %v", res, err)
		}
		if got, _ := f.svc.Get(ctx, f.admin, v.ID); got.LastTestError == "" || got.LastTestedAt == nil {
			t.Fatalf("test outcome not kept: %+v", got)
		}
		if _, err := f.svc.Test(ctx, f.contrib, v.ID); !errors.Is(err, auth.ErrForbidden) {
			t.Fatalf("contributor tested: %v", err)
		}

		if _, err := f.svc.Delete(ctx, f.contrib, v.ID, false); !errors.Is(err, auth.ErrForbidden) {
			t.Fatalf("contributor deleted: %v", err)
		}
		if _, err := f.svc.Delete(ctx, f.admin, v.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Get(ctx, f.admin, v.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}

		es, _ := db.ListAuditEvents(ctx, store.AuditFilter{ObjectType: "connection"})
		seen := map[string]bool{}
		for _, e := range es {
			seen[e.Action] = true
			b, _ := json.Marshal(e)
			for _, k := range []string{keyA, keyA2, keyB} {
				if bytes.Contains(b, []byte(k)) {
					t.Fatalf("audit event %s carries a key", e.Action)
				}
			}
		}
		for _, a := range []string{audit.ConnectionCreate, audit.ConnectionConsent, audit.ConnectionUpdate, audit.ConnectionRotate, audit.ConnectionDelete} {
			if !seen[a] {
				t.Errorf("audit lacks %s (has %v)", a, seen)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestOAuthFlow(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, dbtest.SQLite(t))
	if _, err := f.svc.StartOAuth(ctx, f.admin, StartInput{DisplayName: "OA"}); fieldOf(err) != "privacy_consent" {
		t.Fatalf("start without consent: %v", err)
	}
	if _, err := f.svc.StartOAuth(ctx, f.contrib, StartInput{DisplayName: "OA", PrivacyConsent: true}); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("contributor started OAuth: %v", err)
	}
	start := func() string {
		u, err := f.svc.StartOAuth(ctx, f.admin, StartInput{DisplayName: "OA", PrivacyConsent: true, AllowContributors: true})
		if err != nil {
			t.Fatal(err)
		}
		pu, _ := url.Parse(u)
		q := pu.Query()
		if !strings.HasPrefix(u, f.fake.srv.URL+"/oauth2/authorize?") || q.Get("client_id") != "app-id" ||
			q.Get("response_type") != "code" || q.Get("redirect_uri") == "" || len(q.Get("state")) < 40 {
			t.Fatalf("authorize URL %s", u)
		}
		return q.Get("state")
	}
	tests := []struct {
		name      string
		p         auth.Principal
		state     func() string
		code      string
		wantField string
		wantErr   error
	}{
		{"unknown state", f.admin, func() string { return "forged" }, "good-code", "state", nil},
		{"other admin", f.admin2, start, "good-code", "", auth.ErrForbidden},
		{"bad code", f.admin, start, "bad-code", "", ErrUpstream},
	}
	for _, tt := range tests {
		_, err := f.svc.FinishOAuth(ctx, tt.p, tt.state(), tt.code, "")
		if tt.wantErr != nil && !errors.Is(err, tt.wantErr) || tt.wantField != "" && fieldOf(err) != tt.wantField {
			t.Errorf("%s: %v", tt.name, err)
		}
		if err != nil && strings.Contains(err.Error(), "app-secret") {
			t.Errorf("%s: error shows the client secret: %v", tt.name, err)
		}
	}
	state := start()
	v, err := f.svc.FinishOAuth(ctx, f.admin, state, "good-code", "")
	if err != nil {
		t.Fatal(err)
	}
	if v.AuthMethod != MethodOAuth || v.DC != "us9" || v.AccountName != "Account acc-3" || v.APIBaseURL != f.fake.srv.URL+"/3.0" ||
		!*v.AllowContributors || v.Consent.By != f.admin.Email || v.DisplayName != "OA" {
		t.Fatalf("OAuth connection = %+v", v)
	}
	if _, err := f.svc.FinishOAuth(ctx, f.admin, state, "good-code", ""); fieldOf(err) != "state" {
		t.Fatalf("state replayed: %v", err)
	}
	if auds, err := f.svc.Audiences(ctx, f.contrib, v.ID); err != nil || len(auds) != 1 {
		t.Fatalf("audiences through the OAuth token: %v %v", auds, err)
	}
	disabled, _ := NewService(f.db, Options{Vault: f.svc.vault})
	if _, err := disabled.StartOAuth(ctx, f.admin, StartInput{DisplayName: "x", PrivacyConsent: true}); !errors.Is(err, ErrOAuthDisabled) {
		t.Fatalf("unconfigured OAuth: %v", err)
	}
}

// keyRecorder is a mailchimp.Limiter that records the account key of every
// request and never makes one wait.
type keyRecorder struct {
	mu   sync.Mutex
	keys []string
}

func (k *keyRecorder) Acquire(_ context.Context, account string) (func(), error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys = append(k.keys, account)
	return func() {}, nil
}

// take returns the keys recorded since the last call.
func (k *keyRecorder) take() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	keys := k.keys
	k.keys = nil
	return keys
}

// TestRequestsShareTheAccountLimit: once a connection knows its account,
// every request made for it (rotation, a new base URL, test, audiences and
// the runs' client) is limited under the account's key, whichever credential
// it carries; a new key's one verifying request cannot be, as only its answer
// names the account.
func TestRequestsShareTheAccountLimit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, dbtest.SQLite(t))
	rec := &keyRecorder{}
	f.svc.opt.ClientConfig = func(c *mailchimp.Config) { c.MaxRetries, c.Limiter = -1, rec }
	base := f.fake.srv.URL + "/3.0"
	v, err := f.svc.Create(ctx, f.admin, CreateInput{DisplayName: "Main", APIKey: keyA, PrivacyConsent: true, APIBaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	if keys := rec.take(); len(keys) != 1 || keys[0] == accountKey("acc-1") {
		t.Fatalf("create made requests under %q, want one under the key's own limiter key", keys)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"rotate to another key of the account", func() error {
			_, err := f.svc.Update(ctx, f.admin, v.ID, Patch{APIKey: ptr(keyA2)})
			return err
		}},
		{"rotate to a key of another account (refused)", func() error {
			if _, err := f.svc.Update(ctx, f.admin, v.ID, Patch{APIKey: ptr(keyB)}); fieldOf(err) != "api_key" {
				return fmt.Errorf("rotation to another account: %v, want an api_key fault", err)
			}
			return nil
		}},
		{"change the base URL", func() error {
			_, err := f.svc.Update(ctx, f.admin, v.ID, Patch{APIBaseURL: ptr(base + "/")})
			return err
		}},
		{"test", func() error {
			res, err := f.svc.Test(ctx, f.admin, v.ID)
			if err == nil && !res.OK {
				err = errors.New(res.Error)
			}
			return err
		}},
		{"audiences", func() error {
			_, err := f.svc.Audiences(ctx, f.admin, v.ID)
			return err
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		keys := rec.take()
		if len(keys) == 0 {
			t.Errorf("%s made no request", s.name)
		}
		for _, k := range keys {
			if k != accountKey("acc-1") {
				t.Errorf("%s: a request limited under %q, want %q", s.name, k, accountKey("acc-1"))
			}
		}
	}
	cl, err := f.svc.ClientFor(ctx, v.ID)
	if err != nil || cl.Account() != accountKey("acc-1") {
		t.Fatalf("the runs' client is limited under %q (%v), want %q", cl.Account(), err, accountKey("acc-1"))
	}
}
