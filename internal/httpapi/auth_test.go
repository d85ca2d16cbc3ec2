package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// lockedBuffer collects log output from concurrent goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// authEnv is a server with real authentication and connections over a fresh
// store, an in-process Mailchimp emulator, and a record of every response
// and log line (for the secret-leak checks).
type authEnv struct {
	t     *testing.T
	db    *sqldb.DB
	ts    *httptest.Server
	emu   *emulator.Emulator
	emuTS *httptest.Server
	keys  []string
	logs  *lockedBuffer
	users *auth.Service
	conns *connection.Service

	mu       sync.Mutex
	captured bytes.Buffer // every response's headers and body
}

func newAuthEnv(t *testing.T, db *sqldb.DB) *authEnv {
	t.Helper()
	e := &authEnv{t: t, db: db, logs: &lockedBuffer{}}
	e.keys = []string{emulator.GenerateKey("us6"), emulator.GenerateKey("us6")}
	e.emu = emulator.New(emulator.Options{APIKeys: e.keys})
	e.emuTS = httptest.NewServer(e.emu.Handler())
	t.Cleanup(e.emuTS.Close)

	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	auditLog := audit.New(db, log)
	e.users = auth.NewService(db, auditLog, log, auth.Options{Password: auth.PasswordParams{Memory: 64, Time: 1, Threads: 1}})
	var handler http.Handler
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(e.ts.Close)
	vault, err := connection.NewVault(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e.conns, err = connection.NewService(db, connection.Options{Vault: vault, Audit: auditLog, Log: log,
		ClientConfig: func(c *mailchimp.Config) { c.Logger = log; c.MaxRetries = -1 },
		OAuth: connection.OAuthSettings{ClientID: "segsync-test-app", ClientSecret: "app-secret-never-shown",
			LoginURL: e.emuTS.URL, RedirectURL: e.ts.URL + "/oauth/mailchimp/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	handler = New(Deps{Store: db, Log: log, Auth: e.users, Connections: e.conns, Audit: auditLog}).Handler()
	return e
}

// user creates a user directly and returns an API token for it.
func (e *authEnv) user(email string, role auth.Role) (auth.Principal, string) {
	e.t.Helper()
	u, err := e.users.CreateUser(context.Background(), auth.SystemPrincipal, auth.NewUser{Email: email, Role: string(role), Password: "a long enough password"})
	if err != nil {
		e.t.Fatal(err)
	}
	tok, _, err := e.users.CreateToken(context.Background(), auth.SystemPrincipal, u.ID, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return auth.Principal{UserID: u.ID, Email: u.Email, Role: role}, tok
}

type call struct {
	method, path, token string
	body                any
	header              http.Header
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decoding %s: %v", a.body, err)
	}
}

func (e *authEnv) do(c call) answer {
	e.t.Helper()
	var body io.Reader
	if c.body != nil {
		b, err := json.Marshal(c.body)
		if err != nil {
			e.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(c.method, e.ts.URL+c.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	resp.Header.Write(&e.captured)
	e.captured.Write(b)
	e.mu.Unlock()
	return answer{resp.StatusCode, resp.Header, b}
}

// want checks the status of an answer.
func (e *authEnv) want(a answer, status int, what string) answer {
	e.t.Helper()
	if a.status != status {
		e.t.Fatalf("%s: status %d, want %d: %s", what, a.status, status, a.body)
	}
	return a
}

// assertNoSecrets greps every captured response and log line for secrets.
func (e *authEnv) assertNoSecrets(secrets ...string) {
	e.t.Helper()
	e.mu.Lock()
	responses := e.captured.String()
	e.mu.Unlock()
	logs := e.logs.String()
	if responses == "" || logs == "" {
		e.t.Fatal("nothing captured: the leak check would be vacuous")
	}
	for _, s := range secrets {
		needles := []string{s}
		if hex, _, _ := strings.Cut(s, "-"); len(hex) >= 16 {
			needles = append(needles, hex) // an API key's secret part alone
		}
		for _, needle := range needles {
			if strings.Contains(responses, needle) {
				e.t.Errorf("a response contains the secret %.6s…", needle)
			}
			if strings.Contains(logs, needle) {
				e.t.Errorf("the log contains the secret %.6s…", needle)
			}
		}
	}
}

func TestSessionsOverHTTP(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, dbtest.SQLite(t))
	e.user("ann@example.org", auth.Contributor)
	login := func(planted string, header http.Header) (answer, *http.Cookie) {
		h := http.Header{}
		for k, v := range header {
			h[k] = v
		}
		if planted != "" {
			h.Set("Cookie", SessionCookie+"="+planted)
		}
		a := e.do(call{method: "POST", path: "/api/v1/session", body: loginRequest{"ann@example.org", "a long enough password"}, header: h})
		e.want(a, 200, "login")
		for _, c := range (&http.Response{Header: a.header}).Cookies() {
			if c.Name == SessionCookie {
				return a, c
			}
		}
		t.Fatal("login set no session cookie")
		return a, nil
	}
	a, c := login("planted-by-an-attacker", nil)
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.Value == "planted-by-an-attacker" {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Lax, not Secure over plain HTTP, a fresh value", c)
	}
	var m me
	a.json(t, &m)
	if m.CSRFToken == "" || m.Role != auth.Contributor {
		t.Fatalf("login answer %+v", m)
	}
	_, tlsCookie := login("", http.Header{"X-Forwarded-Proto": {"https"}})
	if !tlsCookie.Secure {
		t.Fatal("cookie not Secure behind TLS")
	}
	if tlsCookie.Value == c.Value {
		t.Fatal("two sign-ins share a session id")
	}

	cookie := http.Header{"Cookie": {SessionCookie + "=" + c.Value}}
	withCSRF := func(extra ...string) http.Header {
		h := http.Header{"Cookie": cookie["Cookie"], CSRFHeader: {m.CSRFToken}}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	e.want(e.do(call{method: "GET", path: "/api/v1/me", header: cookie}), 200, "me with the session")
	e.want(e.do(call{method: "GET", path: "/api/v1/me", header: http.Header{"Cookie": {SessionCookie + "=planted-by-an-attacker"}}}), 401, "me with the planted id")
	tests := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"no CSRF token", cookie, 403},
		{"wrong CSRF token", http.Header{"Cookie": cookie["Cookie"], CSRFHeader: {"nope"}}, 403},
		{"cross-site", withCSRF("Sec-Fetch-Site", "cross-site"), 403},
		{"foreign origin", withCSRF("Origin", "https://evil.example"), 403},
		{"same origin with token", withCSRF("Sec-Fetch-Site", "same-origin"), 201},
	}
	for _, tt := range tests {
		a := e.do(call{method: "POST", path: "/api/v1/tokens", body: map[string]string{"name": "x"}, header: tt.header})
		if a.status != tt.want {
			t.Errorf("%s: %d, want %d: %s", tt.name, a.status, tt.want, a.body)
		}
	}
	// Bearer tokens need no CSRF token.
	_, tok := e.user("bob@example.org", auth.Viewer)
	e.want(e.do(call{method: "POST", path: "/api/v1/tokens", token: tok, body: map[string]string{}}), 201, "token by bearer")
	e.want(e.do(call{method: "GET", path: "/api/v1/me", token: tok + "x"}), 401, "wrong bearer")

	e.want(e.do(call{method: "DELETE", path: "/api/v1/session", header: withCSRF()}), 204, "logout")
	e.want(e.do(call{method: "GET", path: "/api/v1/me", header: cookie}), 401, "me after logout")
}

func TestLoginThrottlingOverHTTP(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, dbtest.SQLite(t))
	e.user("ann@example.org", auth.Admin)
	for i := 0; i < 5; i++ {
		e.want(e.do(call{method: "POST", path: "/api/v1/session", body: loginRequest{"ann@example.org", "guess number " + string(rune('a'+i))}}), 401, "wrong password")
	}
	a := e.do(call{method: "POST", path: "/api/v1/session", body: loginRequest{"ann@example.org", "a long enough password"}})
	e.want(a, 429, "sign-in after five failures")
	if a.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}
