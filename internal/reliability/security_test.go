package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/cli"
	"github.com/segsync/segsync/internal/httpapi"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/store/sqlite"
	"github.com/segsync/segsync/internal/web"
)

const (
	secAdminEmail    = "root@shop.io"
	secAdminPassword = "correct horse battery staple"
)

// capture records every request and answer a client saw.
type capture struct {
	mu  sync.Mutex
	buf bytes.Buffer
	rt  http.RoundTripper
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	c.mu.Lock()
	fmt.Fprintf(&c.buf, "%s %s -> %d\n", r.Method, r.URL.Path, resp.StatusCode)
	_ = resp.Header.Write(&c.buf)
	c.buf.Write(b)
	c.buf.WriteByte('\n')
	c.mu.Unlock()
	return resp, nil
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// browser is a signed-in client of a serve process.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func (b *browser) do(method, path, contentType string, body string, hdr map[string]string) (int, []byte) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if b.csrf != "" && method != http.MethodGet {
		req.Header.Set("X-CSRF-Token", b.csrf)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (b *browser) json(method, path string, in any, want int, out any) {
	b.t.Helper()
	body, _ := json.Marshal(in)
	status, got := b.do(method, path, "application/json", string(body), nil)
	if status != want {
		b.t.Fatalf("%s %s: %d, want %d: %s", method, path, status, want, got)
	}
	if out != nil {
		if err := json.Unmarshal(got, out); err != nil {
			b.t.Fatalf("%s %s: %v: %s", method, path, err, got)
		}
	}
}

func signIn(t *testing.T, base string, rec *capture, jar http.CookieJar, email, password string) *browser {
	t.Helper()
	if jar == nil {
		jar, _ = cookiejar.New(nil)
	}
	b := &browser{t: t, base: base, c: &http.Client{Jar: jar, Transport: rec,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	status, body := b.do("POST", "/login", "application/x-www-form-urlencoded",
		url.Values{"email": {email}, "password": {password}}.Encode(), nil)
	if status != http.StatusSeeOther {
		t.Fatalf("sign-in of %s: %d %s", email, status, body)
	}
	var me struct {
		CSRF string `json:"csrf_token"`
	}
	b.json("GET", "/api/v1/me", nil, 200, &me)
	b.csrf = me.CSRF
	return b
}

// startServeInProcess runs `segsync serve` (the real command) in this
// process and returns its base URL and its log.
func startServeInProcess(t *testing.T, dataDir string, env map[string]string) (string, *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	io := cli.IO{Stdin: strings.NewReader(""), Stdout: logs, Stderr: logs, Getenv: func(k string) string { return env[k] }}
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--data", dataDir, "--log-level", "debug"}, io)
	}()
	t.Cleanup(func() { cancel(); <-done })
	addr := regexp.MustCompile(`msg=listening addr=(http://127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := addr.FindStringSubmatch(logs.String()); m != nil {
			return m[1], logs
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d: %s", code, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("serve never listened: %s", logs.String())
	return "", nil
}

// TestSecretsNeverLeakThroughServe drives `segsync serve` through a whole
// life, with faults: a connection made with a key (and one refused with a
// wrong key), profiles, a segment, an export, a run, the key revoked, a
// failed run and a failed connection test. Then it opens every page and
// every readable API route as admin, contributor and viewer, and greps all
// answers, the log, the metrics and the audit log for the keys. On the way
// it checks the browser-facing defences: cross-origin form posts, session
// fixation, logout and sign-in throttling.
func TestSecretsNeverLeakThroughServe(t *testing.T) {
	t.Parallel()
	emu := emulator.New(emulator.Options{FailRate: 0.05, Seed: 3})
	key := emu.Keys()[0]
	wrongKey := emulator.GenerateKey("us1")
	g := newGate(emu.Handler())
	mts := httptest.NewServer(g)
	t.Cleanup(mts.Close)
	list, err := emu.CreateList(key, "Shop")
	if err != nil {
		t.Fatal(err)
	}
	_ = emu.AddMergeField(list, "FNAME", "First", "text")

	dataDir := t.TempDir()
	base, logs := startServeInProcess(t, dataDir, map[string]string{
		"SEGSYNC_ADMIN_EMAIL": secAdminEmail, "SEGSYNC_ADMIN_PASSWORD": secAdminPassword, "SEGSYNC_SECRET_KEY": vaultKey})
	rec := &capture{rt: http.DefaultTransport}

	// Session fixation: a session id planted before sign-in is not kept.
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(base)
	jar.SetCookies(u, []*http.Cookie{{Name: httpapi.SessionCookie, Value: "planted-by-an-attacker", Path: "/"}})
	admin := signIn(t, base, rec, jar, secAdminEmail, secAdminPassword)
	for _, c := range admin.c.Jar.Cookies(u) {
		if c.Name == httpapi.SessionCookie && c.Value == "planted-by-an-attacker" {
			t.Error("the planted session id survived the sign-in")
		}
	}

	// A wrong key is refused without being repeated.
	status, body := admin.do("POST", "/api/v1/connections", "application/json",
		fmt.Sprintf(`{"display_name":"Bad","api_key":%q,"privacy_consent":true,"api_base_url":%q}`, wrongKey, mts.URL+"/3.0"), nil)
	if status != 400 {
		t.Fatalf("a wrong key: %d %s", status, body)
	}
	var conn struct{ ID int64 }
	admin.json("POST", "/api/v1/connections", map[string]any{"display_name": "Shop", "api_key": key, "privacy_consent": true,
		"allow_contributors": true, "api_base_url": mts.URL + "/3.0"}, 201, &conn)

	var csv strings.Builder
	csv.WriteString("customer_id,email,first,age\n")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&csv, "c%d,p%d@shop.io,F%d,%d\n", i, i, i, 18+i%50)
	}
	if status, body := admin.do("POST", "/api/v1/profiles/import", "text/csv", csv.String(), nil); status != 200 {
		t.Fatalf("import: %d %s", status, body)
	}
	var seg struct{ ID int64 }
	admin.json("POST", "/api/v1/segments", map[string]any{"name": "Adults", "rule": map[string]any{"attribute": "age", "op": "gte", "value": 21}}, 201, &seg)
	var exp struct{ ID int64 }
	admin.json("POST", "/api/v1/exports", map[string]any{"name": "Shop", "connection_id": conn.ID, "audience_id": list,
		"segment_ids": []int64{seg.ID}, "mapping": map[string]any{"email": "email", "first_name": "first"}, "schedule": "off"}, 201, &exp)
	var runID int64
	runOnce := func() map[string]any {
		var run struct{ ID int64 }
		admin.json("POST", fmt.Sprintf("/api/v1/exports/%d/runs", exp.ID), map[string]any{"dry_run": false}, 202, &run)
		runID = run.ID
		deadline := time.Now().Add(60 * time.Second)
		for {
			var got map[string]any
			admin.json("GET", fmt.Sprintf("/api/v1/runs/%d", run.ID), nil, 200, &got)
			if got["finished_at"] != nil {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d did not finish: %v", run.ID, got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := runOnce(); got["status"] != "succeeded" {
		t.Fatalf("first run: %v", got)
	}
	cs, _ := emu.Contacts(list)
	if len(cs) == 0 {
		t.Fatal("the run sent nothing")
	}
	// The key is revoked: the next run fails, and the connection says why.
	g.revoke(true)
	admin.do("POST", "/api/v1/profiles/import", "text/csv", "customer_id,first\nc30,Changed\n", nil)
	if got := runOnce(); got["status"] != "failed" || !strings.Contains(fmt.Sprint(got["error"]), "credential") {
		t.Fatalf("run with a revoked key: %v", got)
	}
	var cv map[string]any
	admin.json("GET", fmt.Sprintf("/api/v1/connections/%d", conn.ID), nil, 200, &cv)
	if !strings.Contains(fmt.Sprint(cv["last_test_error"]), "API Key Invalid") {
		t.Errorf("the connection does not show the refused key: %v", cv)
	}
	if status, page := admin.do("GET", fmt.Sprintf("/connections/%d", conn.ID), "", "", nil); status != 200 || !strings.Contains(string(page), "API Key Invalid") {
		t.Errorf("the connection page does not show the refused key (%d)", status)
	}
	admin.do("POST", fmt.Sprintf("/api/v1/connections/%d/test", conn.ID), "application/json", "{}", nil)

	// Everyone opens everything they can read.
	for _, u := range []struct{ email, role string }{{"vera@shop.io", "viewer"}, {"carl@shop.io", "contributor"}} {
		admin.json("POST", "/api/v1/users", map[string]any{"email": u.email, "role": u.role, "password": "a long enough password"}, 201, nil)
	}
	users := []*browser{admin, signIn(t, base, rec, nil, "vera@shop.io", "a long enough password"), signIn(t, base, rec, nil, "carl@shop.io", "a long enough password")}
	fill := strings.NewReplacer("{customer_id}", "c1", "{$}", "")
	idFor := func(path string) string {
		switch {
		case strings.Contains(path, "/segments/"):
			return fmt.Sprint(seg.ID)
		case strings.Contains(path, "/exports/"):
			return fmt.Sprint(exp.ID)
		case strings.Contains(path, "/runs/"):
			return fmt.Sprint(runID)
		case strings.Contains(path, "/connections/"):
			return fmt.Sprint(conn.ID)
		}
		return "1"
	}
	var paths []string
	ui, err := web.New(web.Deps{API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range ui.Routes() {
		if rt.Method == http.MethodGet {
			paths = append(paths, rt.Pattern)
		}
	}
	for _, rt := range httpapi.New(httpapi.Deps{}).Routes() {
		if rt.Method == http.MethodGet && !strings.Contains(rt.Pattern, "oauth") {
			paths = append(paths, rt.Pattern)
		}
	}
	opened := 0
	for _, b := range users {
		for _, p := range paths {
			p = strings.ReplaceAll(fill.Replace(p), "{id}", idFor(p))
			if status, _ := b.do("GET", p, "", "", nil); status == 200 {
				opened++
			}
		}
		b.do("GET", fmt.Sprintf("/api/v1/runs/%d/rejections", runID), "", "", map[string]string{"Accept": "text/csv"})
	}
	if opened < len(paths) {
		t.Fatalf("only %d pages and routes opened with 200 (of %d per user): the leak check would be thin", opened, 3*len(paths))
	}

	// An expired session is refused: the viewer's session runs out (its
	// expiry moved into the past in the store the server uses).
	viewer := users[1]
	db, err := sqlite.Open(context.Background(), dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.W.Exec(`UPDATE sessions SET expires_at = 1 WHERE user_id = (SELECT id FROM users WHERE email = 'vera@shop.io')`); err != nil {
		t.Fatal(err)
	}
	if status, _ := viewer.do("GET", "/api/v1/me", "", "", nil); status != http.StatusUnauthorized {
		t.Errorf("an expired session answered %d, want 401", status)
	}
	if status, _ := viewer.do("GET", "/segments", "", "", nil); status != http.StatusSeeOther && status != http.StatusFound {
		t.Errorf("a page with an expired session answered %d, want the sign-in redirect", status)
	}

	// Cross-origin form posts are refused and change nothing.
	before, _ := emu.Contacts(list)
	status, _ = admin.do("POST", "/connections/new", "application/x-www-form-urlencoded",
		url.Values{"display_name": {"Evil"}, "api_key": {wrongKey}, "privacy_consent": {"on"}, "csrf_token": {admin.csrf}}.Encode(),
		map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	if status != http.StatusForbidden {
		t.Errorf("a cross-origin form post answered %d, want 403", status)
	}
	status, _ = admin.do("POST", fmt.Sprintf("/exports/%d/run", exp.ID), "application/x-www-form-urlencoded", "csrf_token="+admin.csrf,
		map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	if after, _ := emu.Contacts(list); status != http.StatusForbidden || len(after) != len(before) {
		t.Errorf("a cross-origin run post answered %d", status)
	}

	// Logout ends the session for good: the old cookie no longer works.
	old := admin.c.Jar.Cookies(u)
	if status, _ := admin.do("POST", "/logout", "application/x-www-form-urlencoded", "csrf_token="+admin.csrf, nil); status != http.StatusSeeOther {
		t.Errorf("logout: %d", status)
	}
	replay := &http.Client{Transport: rec}
	req, _ := http.NewRequest("GET", base+"/api/v1/me", nil)
	for _, c := range old {
		req.AddCookie(c)
	}
	if resp, err := replay.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the session cookie still works after logout: %v %v", resp.StatusCode, err)
	}

	// Sign-in throttling: guessing one account's password is stopped.
	throttled := false
	for i := 0; i < 30 && !throttled; i++ {
		req, _ := http.NewRequest("POST", base+"/api/v1/session", strings.NewReader(`{"email":"vera@shop.io","password":"guess `+fmt.Sprint(i)+`"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := replay.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		throttled = resp.StatusCode == http.StatusTooManyRequests
	}
	if !throttled {
		t.Error("30 wrong passwords in a row were never throttled")
	}

	// The grep: answers, pages, the log, metrics (read above as /metrics)
	// and the audit log (read above as /api/v1/audit).
	all := rec.String() + logs.String()
	t.Logf("opened %d pages and routes with 200 (%d paths × 3 roles); grepped %d bytes of answers and logs", opened, len(paths), len(all))
	if !strings.Contains(all, "segsync_http_requests_total") || !strings.Contains(all, "connection.create") && !strings.Contains(all, "connection") {
		t.Fatal("the metrics or the audit log were not read: the leak check would be vacuous")
	}
	for name, secret := range map[string]string{"the API key": key, "the wrong API key": wrongKey, "the vault key": vaultKey,
		"the admin password": secAdminPassword, "a user password": "a long enough password"} {
		needles := []string{secret}
		if hex, _, ok := strings.Cut(secret, "-"); ok && len(hex) >= 16 {
			needles = append(needles, hex)
		}
		for _, n := range needles {
			if i := strings.Index(all, n); i >= 0 {
				t.Errorf("%s appears in the output: …%s…", name, strings.ReplaceAll(all[max(0, i-120):i], "\n", " "))
			}
		}
	}
}
