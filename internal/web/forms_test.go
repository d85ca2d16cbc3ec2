package web_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/mailchimp/emulator/emulatortest"
)

// post sends a form with the session's CSRF token and returns status and body.
func (s *session) post(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	form.Set("csrf_token", s.csrf)
	resp, err := s.c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// upload posts a form with one file (the field "file") and the session's
// CSRF token, as multipart/form-data, and returns status and body.
func (s *session) upload(t *testing.T, u string, fields url.Values, name, content string) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("csrf_token", s.csrf)
	for k, vs := range fields {
		for _, v := range vs {
			_ = mw.WriteField(k, v)
		}
	}
	fw, _ := mw.CreateFormFile("file", name)
	_, _ = io.WriteString(fw, content)
	_ = mw.Close()
	resp, err := s.c.Post(u, mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// get fetches a page and fails unless it is 200.
func (s *session) get(t *testing.T, u string) string {
	t.Helper()
	resp, err := s.c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	return string(b)
}

// invalid reports whether the form control named name is marked invalid.
func invalid(body, name string) bool {
	return regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `"[^>]*aria-invalid="true"`).MatchString(body)
}

// TestFormsShowErrorsNextToFields posts forms the API refuses and checks
// that each fault is shown at its field, in plain words, without echoing a
// credential.
func TestFormsShowErrorsNextToFields(t *testing.T) {
	mc := emulatortest.Start(t, emulator.Options{})
	if _, err := mc.CreateList(mc.Key(), "Newsletter"); err != nil {
		t.Fatal(err)
	}
	base := startServe(t)
	admin := signInHTTP(t, base, adminEmail, adminPassword)

	// A connection without consent: the error is at the box, the key is gone.
	status, body := admin.post(t, base+"/connections/new", url.Values{"display_name": {"Main"}, "api_key": {mc.Key()},
		"api_base_url": {mc.URL}, "method": {"api_key"}})
	if status != http.StatusBadRequest || !invalid(body, "privacy_consent") || !strings.Contains(body, "I agree") {
		t.Errorf("connection without consent: %d, consent not marked:\n%s", status, body)
	}
	if strings.Contains(body, mc.Key()) {
		t.Error("the refused connection form shows the API key")
	}
	status, body = admin.post(t, base+"/connections/new", url.Values{"display_name": {""}, "privacy_consent": {"on"}, "method": {"api_key"}})
	if status != http.StatusBadRequest || !invalid(body, "display_name") || !invalid(body, "api_key") || !strings.Contains(body, "Please fill this in.") {
		t.Errorf("connection without name and key: %d:\n%s", status, body)
	}
	status, _ = admin.post(t, base+"/connections/new", url.Values{"display_name": {"Main"}, "api_key": {mc.Key()},
		"api_base_url": {mc.URL}, "privacy_consent": {"on"}, "method": {"api_key"}})
	if status != http.StatusSeeOther {
		t.Fatalf("saving a connection: %d", status)
	}
	if status, _ = admin.post(t, base+"/profiles/import", url.Values{}); status != http.StatusBadRequest {
		t.Errorf("an import without a file: %d", status)
	}

	// An NDJSON upload, streamed through the form, with its report.
	{
		status, page := admin.upload(t, base+"/profiles/import", url.Values{"key": {"id"}, "mode": {"upsert"}}, "people.ndjson",
			`{"id":"n1","email":"nia@shop.io","vip":true}`+"\n"+`{"id":"n2","email":"ned@shop.io"}`+"\n"+`not json`+"\n")
		if status != http.StatusOK || !strings.Contains(page, "Import of people.ndjson") ||
			!regexp.MustCompile(`(?s)>2</span><span class="stat-l">new`).MatchString(page) || !strings.Contains(page, "<td>3</td>") {
			t.Errorf("NDJSON upload: %d\n%s", status, page)
		}
	}
	// A form without its token is refused, upload or not.
	{
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("file", "people.csv")
		_, _ = io.WriteString(fw, "customer_id\nx1\n")
		_ = mw.Close()
		resp, err := admin.c.Post(base+"/profiles/import", mw.FormDataContentType(), &buf)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("an upload without the CSRF token: %d, want 403", resp.StatusCode)
		}
		resp, err = admin.c.PostForm(base+"/tokens", url.Values{"name": {"forged"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("a form without the CSRF token: %d, want 403", resp.StatusCode)
		}
		// Even with the token, a browser's post from another site is refused.
		req, _ := http.NewRequest(http.MethodPost, base+"/tokens", strings.NewReader(url.Values{"name": {"x"}, "csrf_token": {admin.csrf}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if resp, err = admin.c.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("a cross-site post: %d, want 403", resp.StatusCode)
		}
	}

	// A segment without a name, over an attribute nobody has.
	status, body = admin.post(t, base+"/segments/new", url.Values{"name": {""}, "g0.match": {"all"},
		"g0.c0.attr": {"nope"}, "g0.c0.op": {"eq"}, "g0.c0.value": {"x"}, "do": {"save"}})
	if status != http.StatusBadRequest || !invalid(body, "name") || !invalid(body, "g0.c0.attr") {
		t.Errorf("segment without name over an unknown attribute: %d:\n%s", status, body)
	}
	// A value the attribute cannot hold is caught before the API.
	status, body = admin.post(t, base+"/segments/count", url.Values{"g0.match": {"all"},
		"g0.c0.attr": {"nope"}, "g0.c0.op": {"between"}, "g0.c0.value": {"1"}})
	if status != http.StatusOK || !invalid(body, "g0.c0.value") || !strings.Contains(body, "two values") {
		t.Errorf("between with one value: %d:\n%s", status, body)
	}

	// An export without segments, to an audience that does not exist.
	status, body = admin.post(t, base+"/exports/new", url.Values{"name": {"Weekly"}, "connection_id": {"1"},
		"audience_id": {"other"}, "audience_id_typed": {"nosuchlist"}, "mapping.email": {"email"},
		"status_if_new": {"subscribed"}, "on_leave": {"untag"}, "schedule_kind": {"refresh"}, "do": {"save"}})
	if status != http.StatusBadRequest || !strings.Contains(body, "Choose at least one segment") {
		t.Errorf("export without segments: %d:\n%s", status, body)
	}
	// The form keeps what was typed.
	if !strings.Contains(body, `value="Weekly"`) {
		t.Error("the refused export form lost its name")
	}

	// Testing, then deleting a connection an export uses: the page asks to
	// detach, deleting without is refused, detaching deletes.
	listID := mc.ListIDs(mc.Key())[0]
	for _, call := range []struct{ path, ct, body string }{
		{"/api/v1/profiles/import", "text/csv", "customer_id,email\nc1,ann@shop.io\n"},
		{"/api/v1/segments", "application/json", `{"name":"All","rule":{"attribute":"email","op":"is_not_empty"}}`},
		{"/api/v1/exports", "application/json", `{"name":"Weekly","connection_id":1,"audience_id":"` + listID + `","segment_ids":[1],"mapping":{"email":"email"},"schedule":"0 6 * * 1"}`},
	} {
		if status, body := admin.api(t, http.MethodPost, base+call.path, call.ct, call.body); status >= 300 {
			t.Fatalf("POST %s: %d %s", call.path, status, body)
		}
	}
	// After a run the catalogue holds Mailchimp's statuses: the segment
	// builder offers them, the export's mapping does not (they are never sent).
	if status, body := admin.api(t, http.MethodPost, base+"/api/v1/exports/1/runs", "application/json", `{}`); status != http.StatusAccepted {
		t.Fatalf("running the export: %d %s", status, body)
	}
	statusAttr := "mailchimp." + listID + ".status"
	waitUntil(t, 30*time.Second, "the run's statuses in the catalogue", func() bool {
		return strings.Contains(admin.get(t, base+"/segments/new"), `<option value="`+statusAttr+`"`)
	})
	if body = admin.get(t, base+"/exports/1/edit"); strings.Contains(body, statusAttr) {
		t.Errorf("the export form offers %s for the mapping", statusAttr)
	}
	// Editing loads what was saved: the rule into the builder, the export
	// into its form; saving the edit keeps the rest.
	if body = admin.get(t, base+"/segments/1/edit"); !regexp.MustCompile(`<option value="email" selected>`).MatchString(body) ||
		!strings.Contains(body, `value="is_not_empty" selected`) || !strings.Contains(body, `value="All"`) {
		t.Errorf("the segment editor did not load the rule:\n%s", body)
	}
	body = admin.get(t, base+"/exports/1/edit")
	for _, want := range []string{`value="Weekly"`, `value="0 6 * * 1"`, `value="cron" checked`, `name="segment_ids" value="1" checked`} {
		if !strings.Contains(body, want) {
			t.Errorf("the export editor lacks %s", want)
		}
	}
	if status, body = admin.post(t, base+"/exports/1/edit", url.Values{"name": {"Weekly newsletter"}, "connection_id": {"1"},
		"audience_id": {listID}, "segment_ids": {"1"}, "mapping.email": {"email"}, "status_if_new": {"pending"},
		"on_leave": {"untag"}, "schedule_kind": {"off"}, "do": {"save"}}); status != http.StatusSeeOther {
		t.Errorf("saving the edited export: %d\n%s", status, body)
	}
	if body = admin.get(t, base+"/exports/1"); !strings.Contains(body, "Weekly newsletter") || !strings.Contains(body, "On demand only") || !strings.Contains(body, "Pending") {
		t.Errorf("the export page does not show the edit:\n%s", body)
	}
	if status, _ = admin.post(t, base+"/connections/1/test", url.Values{}); status != http.StatusSeeOther {
		t.Errorf("testing the connection: %d", status)
	}
	if body = admin.get(t, base+"/connections/1"); !strings.Contains(body, `badge good`) {
		t.Errorf("the tested connection does not show OK:\n%s", body)
	}
	if body = admin.get(t, base+"/connections/1/delete"); !strings.Contains(body, "1 export uses this connection") || !strings.Contains(body, "Detach and delete") {
		t.Errorf("the delete page does not ask to detach:\n%s", body)
	}
	if status, body = admin.post(t, base+"/connections/1/delete", url.Values{"detach": {"false"}}); status != http.StatusOK || !strings.Contains(body, `class="alert"`) {
		t.Errorf("deleting a used connection without detaching: %d\n%s", status, body)
	}
	if status, _ = admin.post(t, base+"/connections/1/delete", url.Values{"detach": {"true"}}); status != http.StatusSeeOther {
		t.Errorf("detach and delete: %d", status)
	}
	if body = admin.get(t, base+"/exports"); !strings.Contains(body, "No connection") {
		t.Errorf("the detached export is not shown as such:\n%s", body)
	}
	if body = admin.get(t, base+"/status?status=failed"); !strings.Contains(body, "No runs match") {
		t.Errorf("the status filter shows runs that did not fail:\n%s", body)
	}
	// A detached export cannot run; the page says why.
	if status, _ = admin.post(t, base+"/exports/1/run", url.Values{"dry_run": {"false"}}); status != http.StatusSeeOther {
		t.Errorf("running a detached export: %d", status)
	}
	if body = admin.get(t, base+"/exports/1"); !strings.Contains(body, "flash-error") {
		t.Errorf("running a detached export shows no problem:\n%s", body)
	}
	if status, _ = admin.post(t, base+"/exports/1/delete", url.Values{}); status != http.StatusSeeOther {
		t.Errorf("deleting the export: %d", status)
	}
	if body = admin.get(t, base+"/exports"); !strings.Contains(body, "No exports yet") {
		t.Error("the deleted export is still listed")
	}

	// Pages that do not exist are pages for browsers and problems for the API.
	for _, tc := range []struct{ path, accept, want string }{
		{"/no/such/page", "text/html", "text/html"},
		{"/api/v1/no-such-thing", "text/html", "application/problem+json"},
		{"/no/such/page", "application/json", "application/problem+json"},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+tc.path, nil)
		req.Header.Set("Accept", tc.accept)
		resp, err := admin.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(ct, tc.want) {
			t.Errorf("GET %s (Accept %s): %d %s, want 404 %s", tc.path, tc.accept, resp.StatusCode, ct, tc.want)
		}
	}

	// Changing one's password: both entries must agree; then every session
	// ends and the new password signs in.
	status, body = admin.post(t, base+"/account/password", url.Values{"password": {"a new password 9"}, "password_again": {"a new password 8"}})
	if status != http.StatusBadRequest || !invalid(body, "password_again") {
		t.Errorf("differing passwords: %d:\n%s", status, body)
	}
	status, body = admin.post(t, base+"/account/password", url.Values{"current_password": {adminPassword}, "password": {"short"}, "password_again": {"short"}})
	if status != http.StatusBadRequest || !invalid(body, "password") {
		t.Errorf("a too short password: %d:\n%s", status, body)
	}
	status, body = admin.post(t, base+"/account/password", url.Values{"current_password": {"wrong one!"}, "password": {"a new password 9"}, "password_again": {"a new password 9"}})
	if status != http.StatusBadRequest || !invalid(body, "current_password") {
		t.Errorf("a wrong current password: %d:\n%s", status, body)
	}
	if status, body = admin.post(t, base+"/account/password", url.Values{"current_password": {adminPassword}, "password": {"a new password 9"}, "password_again": {"a new password 9"}}); status != http.StatusSeeOther {
		t.Fatalf("changing the password: %d\n%s", status, body)
	}
	if status, _ = admin.post(t, base+"/tokens", url.Values{"name": {"after"}}); status != http.StatusSeeOther {
		t.Errorf("the old session still works after the password change (%d)", status)
	}
	signInHTTP(t, base, adminEmail, "a new password 9")
}
