package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// fuzzRoutes are the JSON-decoding routes the fuzzers send bodies to.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/api/v1/segments"},
	{"POST", "/api/v1/segments/preview"},
	{"PUT", "/api/v1/segments/1"},
	{"POST", "/api/v1/exports"},
	{"POST", "/api/v1/connections"},
	{"POST", "/api/v1/users"},
	{"POST", "/api/v1/tokens"},
	{"POST", "/api/v1/session"},
	{"POST", "/api/v1/exports/1/runs"},
}

// FuzzDecodeJSON: whatever the body, decodeJSON either fills the value or
// returns an error the adapter turns into a 4xx problem naming what is
// wrong; it never panics and never blames the server.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"x","rule":{"all":[]}}`, `{"name":3}`, `{"rules":1}`, `{} {}`, `[`, ``, `null`, `{"name":"\u0000"}`,
		`{"name":"a","description":"` + strings.Repeat("x", 100) + `"}`, strings.Repeat(`{"all":[`, 50)} {
		f.Add(s, "application/json")
	}
	f.Add(`{"a":1}`, "text/plain")
	f.Add(`{"a":1}`, "application/json; charset=utf-8")
	f.Fuzz(func(t *testing.T, body, contentType string) {
		r := httptest.NewRequest("POST", "/x", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		var in segmentInput
		err := decodeJSON(httptest.NewRecorder(), r, &in)
		if err == nil {
			return
		}
		p, internal := errorProblem(err)
		if internal || p.Status < 400 || p.Status >= 500 || p.Detail == "" {
			t.Fatalf("body %q (%s): problem %+v (internal %v)", body, contentType, p, internal)
		}
	})
}

// FuzzJSONRoutes sends any body to the JSON routes of a server over a real
// store: the answer is never a 5xx, always JSON, and a refusal is a
// problem document.
func FuzzJSONRoutes(f *testing.F) {
	f.Add(0, `{"name":"a","rule":{"attribute":"age","op":"gt","value":1}}`)
	f.Add(1, `{"rule":{"any":[{"attribute":"city","op":"in","value":["x'); DROP TABLE profiles;--"]}]}}`)
	f.Add(2, `{"name":"b","rule":{"not":{"attribute":"age","op":"between","value":[1,"2"]}}}`)
	f.Add(3, `{"name":"e","mapping":{"email":"email","attributes":[{"attribute":"x","merge_tag":"<script>"}]}}`)
	f.Add(4, `{"display_name":"m","api_key":"k-us1","privacy_consent":true}`)
	f.Add(5, `{"email":"a@b.c","role":"root"}`)
	f.Add(6, `{"name":"t","expires_at":"never"}`)
	f.Add(7, `{"email":"a@b.c","password":"x"}`)
	f.Add(8, `{"dry_run":"yes"}`)
	f.Add(0, strings.Repeat(`{"all":[`, 40)+`{"attribute":"age","op":"eq","value":1}`+strings.Repeat(`]}`, 40))
	db := dbtest.SQLite(f)
	if _, err := db.UpsertProfiles(context.Background(), []store.ProfilePatch{{CustomerID: "c1", Attrs: `{"age":30,"city":"Oslo","email":"a@shop.io"}`}}); err != nil {
		f.Fatal(err)
	}
	srv := New(Deps{Store: db, Loopback: true}).Handler()
	f.Fuzz(func(t *testing.T, route int, body string) {
		if route < 0 {
			route = -route
		}
		rt := fuzzRoutes[route%len(fuzzRoutes)]
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable && rec.Code != http.StatusNotImplemented {
			t.Fatalf("%s %s %q: %d %s", rt.method, rt.path, body, rec.Code, rec.Body.Bytes())
		}
		ct := rec.Header().Get("Content-Type")
		if rec.Code >= 400 && ct != "application/problem+json" {
			t.Fatalf("%s %s %q: %d with content type %q", rt.method, rt.path, body, rec.Code, ct)
		}
		if b := bytes.TrimSpace(rec.Body.Bytes()); len(b) > 0 && strings.Contains(ct, "json") && !json.Valid(b) {
			t.Fatalf("%s %s %q: invalid JSON answer %q", rt.method, rt.path, body, b)
		}
	})
}
