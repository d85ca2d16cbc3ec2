package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
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

// FuzzJSONRoutes sends any body to the JSON routes of a whole server (auth,
// connections, exports, runs, sources) over a real store and an emulator,
// with the objects the routes name present, so that every route decodes
// the body: the answer is never a 5xx (a 503 would mean the route was not
// configured and the body never read), always JSON, and a refusal is a
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
	e := newExportEnv(f, db, emulator.Options{})
	// The objects the routes act on: segment 1 (PUT) and export 1 (runs).
	var conn, seg, exp struct {
		ID int64 `json:"id"`
	}
	e.call(auth.Admin, "POST", "/api/v1/connections", map[string]any{"display_name": "Shop", "api_key": e.emu.Key(),
		"api_base_url": e.emu.URL, "privacy_consent": true}, http.StatusCreated, &conn)
	e.call(auth.Admin, "POST", "/api/v1/segments", map[string]any{"name": "Adults", "rule": map[string]any{"attribute": "age", "op": "gte", "value": 18}},
		http.StatusCreated, &seg)
	e.call(auth.Admin, "POST", "/api/v1/exports", map[string]any{"name": "shop", "connection_id": conn.ID, "audience_id": e.list,
		"segment_ids": []int64{seg.ID}, "mapping": map[string]any{"email": "email"}, "schedule": "off"}, http.StatusCreated, &exp)
	if seg.ID != 1 || exp.ID != 1 {
		f.Fatalf("segment %d, export %d: the routes name 1", seg.ID, exp.ID)
	}
	srv := e.ts.Config.Handler
	f.Fuzz(func(t *testing.T, route int, body string) {
		if route < 0 {
			route = -route
		}
		rt := fuzzRoutes[route%len(fuzzRoutes)]
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.tokens[auth.Admin])
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
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
