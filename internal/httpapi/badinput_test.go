package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/export"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// storeSnapshot is everything a bad request could have changed.
func storeSnapshot(t *testing.T, db store.Store) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	page, err := db.ListProfiles(ctx, 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range page.Profiles {
		fmt.Fprintf(&b, "profile %s %s\n", p.CustomerID, p.Attrs)
	}
	segs, err := db.ListSegments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		fmt.Fprintf(&b, "segment %d %s\n", s.ID, s.Name)
	}
	exps, err := db.ListExports(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exps {
		fmt.Fprintf(&b, "export %d %s\n", e.ID, e.Name)
	}
	events, err := db.ListAuditEvents(ctx, store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "audit events %d\n", len(events))
	return b.String()
}

// TestBadInput sends hostile and malformed requests: each is refused with a
// 4xx problem that says what is wrong, and the store is left as it was.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, dbtest.SQLite(t))
	_, admin := e.user("admin@shop.io", auth.Admin)
	ctx := context.Background()
	if _, err := e.db.UpsertProfiles(ctx, []store.ProfilePatch{
		{CustomerID: "c1", Attrs: `{"email":"ann@shop.io","age":30,"city":"Oslo"}`},
		{CustomerID: "c2", Attrs: `{"email":"bob@shop.io","age":40,"city":"Bergen"}`},
	}); err != nil {
		t.Fatal(err)
	}
	list, err := e.emu.CreateList(e.keys[0], "Shop")
	if err != nil {
		t.Fatal(err)
	}
	conn := e.want(e.do(call{method: "POST", path: "/api/v1/connections", token: admin, body: map[string]any{
		"display_name": "Shop", "api_key": e.keys[0], "privacy_consent": true, "api_base_url": e.emuTS.URL + "/3.0"}}), 201, "connection")
	var cv struct{ ID int64 }
	conn.json(t, &cv)
	seg := e.want(e.do(call{method: "POST", path: "/api/v1/segments", token: admin, body: map[string]any{
		"name": "Adults", "rule": map[string]any{"attribute": "age", "op": "gte", "value": 18}}}), 201, "segment")
	var sv struct{ ID int64 }
	seg.json(t, &sv)

	// A server with the export service, over the same store and auth.
	svc := &export.Service{Store: e.db, Connections: exportConns{e.conns}}
	ts := httptest.NewServer(New(Deps{Store: e.db, Auth: e.users, Connections: e.conns, Exports: svc}).Handler())
	t.Cleanup(ts.Close)

	deep := func(n int) string {
		return strings.Repeat(`{"not":`, n) + `{"attribute":"age","op":"eq","value":1}` + strings.Repeat(`}`, n)
	}
	goodExport := func(change func(m map[string]any)) string {
		m := map[string]any{"name": "x", "connection_id": cv.ID, "audience_id": list, "segment_ids": []int64{sv.ID},
			"mapping": map[string]any{"email": "email"}}
		change(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	tests := []struct {
		name, method, path, contentType, body string
		status                                int
		detail                                string // the message must say this
	}{
		{"oversized JSON body", "POST", "/api/v1/segments", "application/json",
			`{"name":"x","description":"` + strings.Repeat("a", 2<<20) + `","rule":{"all":[]}}`, 413, "larger than"},
		{"deeply nested rule", "POST", "/api/v1/segments", "application/json",
			`{"name":"deep","rule":` + deep(40) + `}`, 400, "16"},
		{"JSON nested past the decoder's limit", "POST", "/api/v1/segments/preview", "application/json",
			`{"rule":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, 400, "JSON"},
		{"wrong content type", "POST", "/api/v1/segments", "text/plain", `{"name":"x","rule":{"all":[]}}`, 415, "application/json"},
		{"form post to a JSON route", "POST", "/api/v1/segments", "application/x-www-form-urlencoded", `name=x`, 415, "application/json"},
		{"JSON body to the import", "POST", "/api/v1/profiles/import", "application/json", `{"customer_id":"c9"}`, 415, "text/csv"},
		{"unknown field", "POST", "/api/v1/segments", "application/json", `{"name":"x","rule":{"all":[]},"owner":"root"}`, 400, "owner"},
		{"two JSON values", "POST", "/api/v1/segments", "application/json", `{"name":"x","rule":{"all":[]}} {"name":"y"}`, 400, "exactly one"},
		{"SQL in an attribute name of a rule", "POST", "/api/v1/segments", "application/json",
			`{"name":"x","rule":{"attribute":"age') OR 1=1 --","op":"eq","value":1}}`, 400, "rule.attribute"},
		{"SQL in an attribute name of a CSV header", "POST", "/api/v1/profiles/import", "text/csv",
			"customer_id,\"email\"\"); DROP TABLE profiles;--\"\nc9,x@shop.io\n", 400, "invalid attribute name"},
		{"JSON path in an attribute name", "POST", "/api/v1/segments/preview", "application/json",
			`{"rule":{"attribute":"$.email","op":"is_not_empty"}}`, 400, "rule.attribute"},
		{"operator injection", "POST", "/api/v1/segments", "application/json",
			`{"name":"x","rule":{"attribute":"age","op":"eq; DELETE FROM segments","value":1}}`, 400, "rule.op"},
		{"NUL in a rule value", "POST", "/api/v1/segments", "application/json",
			`{"name":"x","rule":{"attribute":"city","op":"eq","value":"Oslo\u0000' OR '1'='1"}}`, 400, "rule.value"},
		{"merge tag injection", "POST", "/api/v1/exports", "application/json",
			goodExport(func(m map[string]any) {
				m["mapping"] = map[string]any{"email": "email", "attributes": []map[string]any{{"attribute": "city", "merge_tag": "CITY*|<script>"}}}
			}), 400, "merge_tag"},
		{"merge tag that is Mailchimp syntax", "POST", "/api/v1/exports", "application/json",
			goodExport(func(m map[string]any) {
				m["mapping"] = map[string]any{"email": "email", "attributes": []map[string]any{{"attribute": "city", "merge_tag": "*|FNAME|*"}}}
			}), 400, "merge_tag"},
		{"mapped attribute that does not exist", "POST", "/api/v1/exports", "application/json",
			goodExport(func(m map[string]any) { m["mapping"] = map[string]any{"email": "email'--"} }), 400, "mapping.email"},
		{"unknown field in an export", "POST", "/api/v1/exports", "application/json",
			goodExport(func(m map[string]any) { m["api_key"] = "steal" }), 400, "api_key"},
		{"status_if_new that would subscribe against the rules", "POST", "/api/v1/exports", "application/json",
			goodExport(func(m map[string]any) { m["status_if_new"] = "cleaned" }), 400, "status_if_new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := storeSnapshot(t, e.db)
			req, _ := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("status %d %s, want %d problem+json: %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), tt.status, b)
			}
			var p Problem
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatal(err)
			}
			all := p.Detail
			for _, fe := range p.Errors {
				all += " " + fe.Field + ": " + fe.Message
			}
			if !strings.Contains(all, tt.detail) {
				t.Errorf("the problem %q does not mention %q", all, tt.detail)
			}
			if after := storeSnapshot(t, e.db); after != before {
				t.Errorf("the store changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	// A rule value that looks like SQL is only ever a value.
	a := e.want(e.do(call{method: "POST", path: "/api/v1/segments/preview", token: admin, body: map[string]any{
		"rule": map[string]any{"attribute": "city", "op": "eq", "value": "x' OR '1'='1"}}}), 200, "preview")
	var pv struct {
		Count int64 `json:"count"`
	}
	a.json(t, &pv)
	if pv.Count != 0 {
		t.Errorf("a rule value with SQL in it matched %d profiles, want 0", pv.Count)
	}
	if bytes.Contains(a.body, []byte("syntax")) {
		t.Errorf("the preview answer mentions SQL syntax: %s", a.body)
	}
}
