package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

func TestAuditLogAPI(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, dbtest.SQLite(t))
	p, admin := e.user("admin@example.org", auth.Admin)
	s := New(Deps{Store: e.db, Auth: e.users, Audit: audit.New(e.db, nil)})
	for i := range 3 {
		r := httptest.NewRequest("POST", "/api/v1/exports", nil)
		r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		s.recordAudit(r, audit.ExportCreate, "export", i+1, map[string]any{"name": fmt.Sprint("e", i), "api_key": "never"})
	}
	type page struct {
		Events     []store.AuditEvent `json:"events"`
		NextBefore int64              `json:"next_before"`
	}
	var first, second page
	e.want(e.do(call{method: "GET", path: "/api/v1/audit?action=export.create&limit=2", token: admin}), 200, "first page").json(t, &first)
	if len(first.Events) != 2 || first.NextBefore == 0 || first.Events[0].ObjectID != "3" || first.Events[0].ActorEmail != p.Email {
		t.Fatalf("first page %+v", first)
	}
	if _, ok := first.Events[0].Detail["api_key"]; ok || first.Events[0].Detail["name"] != "e2" {
		t.Fatalf("detail %v", first.Events[0].Detail)
	}
	e.want(e.do(call{method: "GET", path: fmt.Sprintf("/api/v1/audit?action=export.create&limit=2&before=%d", first.NextBefore), token: admin}), 200, "second page").json(t, &second)
	if len(second.Events) != 1 || second.Events[0].ObjectID != "1" || second.NextBefore != 0 {
		t.Fatalf("second page %+v", second)
	}
	for _, bad := range []string{"?before=x", "?limit=0", "?limit=5000"} {
		e.want(e.do(call{method: "GET", path: "/api/v1/audit" + bad, token: admin}), 400, "audit"+bad)
	}
}

// TestAuditOfWhoIsSent checks that the changes deciding who is sent to
// Mailchimp reach the audit log through the API (segment changes with the
// rule before and after, profile imports with counts, profile deletes by
// customer id, never an address) and that ?kind filters them.
func TestAuditOfWhoIsSent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := newAuthEnv(t, db)
		_, admin := e.user("admin@example.org", auth.Admin)
		csv := "customer_id,email,age\nc1,ann@example.org,31\nc2,bob@example.org,17\nc3,cy@example.org,x\n,nobody@example.org,4\n"
		req, _ := http.NewRequest("POST", e.ts.URL+"/api/v1/profiles/import", strings.NewReader(csv))
		req.Header.Set("Content-Type", "text/csv")
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("import: %v %v", resp, err)
		}
		resp.Body.Close()
		var seg struct {
			ID int64 `json:"id"`
		}
		e.want(e.do(call{method: "POST", path: "/api/v1/segments", token: admin,
			body: map[string]any{"name": "Adults", "rule": map[string]any{"attribute": "age", "op": "gte", "value": 18}}}), 201, "create segment").json(t, &seg)
		e.want(e.do(call{method: "PUT", path: fmt.Sprintf("/api/v1/segments/%d", seg.ID), token: admin,
			body: map[string]any{"name": "Adults", "rule": map[string]any{"attribute": "age", "op": "gte", "value": 21}}}), 200, "update segment")
		e.want(e.do(call{method: "DELETE", path: "/api/v1/profiles/c2", token: admin}), 204, "delete profile")

		type page struct {
			Events []store.AuditEvent `json:"events"`
		}
		list := func(query string) []string {
			var p page
			e.want(e.do(call{method: "GET", path: "/api/v1/audit?" + query, token: admin}), 200, query).json(t, &p)
			var out []string
			for _, ev := range p.Events {
				out = append(out, ev.Action+" "+ev.ObjectID)
			}
			return out
		}
		sid := fmt.Sprint(seg.ID)
		tests := []struct{ query, want string }{
			{"kind=segment", "segment.update " + sid + ",segment.create " + sid},
			{"kind=profile", "profile.delete c2,profile.import "},
			{"kind=profile,segment", "profile.delete c2,segment.update " + sid + ",segment.create " + sid + ",profile.import "},
			{"kind=segment&action=segment.create", "segment.create " + sid},
			{"kind=export", ""},
		}
		for _, tt := range tests {
			if got := strings.Join(list(tt.query), ","); got != tt.want {
				t.Errorf("%s: %s, want %s", tt.query, got, tt.want)
			}
		}
		var p page
		e.want(e.do(call{method: "GET", path: "/api/v1/audit?kind=profile,segment", token: admin}), 200, "audit").json(t, &p)
		upd, imp := p.Events[1], p.Events[3]
		if imp.ActorEmail != "admin@example.org" || imp.Detail["via"] != "api" || imp.Detail["received"] != 4.0 || imp.Detail["imported"] != 3.0 ||
			imp.Detail["rejected"] != 1.0 || imp.Detail["complete"] != true || imp.Detail["format"] != "csv" {
			t.Errorf("import event %+v", imp)
		}
		if old, _ := upd.Detail["old_rule"].(map[string]any); old["value"] != 18.0 || upd.Detail["rule"].(map[string]any)["value"] != 21.0 {
			t.Errorf("segment update event %+v", upd)
		}
		if b, _ := json.Marshal(p.Events); strings.Contains(string(b), "ann@") || strings.Contains(string(b), "bob@") {
			t.Errorf("an address reached the audit log: %s", b)
		}

		a := e.want(e.do(call{method: "GET", path: "/api/v1/audit?kind=segment,segmnt", token: admin}), 400, "unknown kind")
		if !strings.Contains(string(a.body), `"field":"kind"`) || !strings.Contains(a.header.Get("Content-Type"), "problem+json") {
			t.Errorf("unknown kind: %s %s", a.header.Get("Content-Type"), a.body)
		}
	})
}

// TestOpenAPIAuditKinds keeps the document's kinds those of package audit.
func TestOpenAPIAuditKinds(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	var get struct {
		Parameters []struct {
			Name   string `json:"name"`
			Schema struct {
				Items struct {
					Enum []string `json:"enum"`
				} `json:"items"`
			} `json:"schema"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(New(Deps{}).openapi, &doc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(doc.Paths["/api/v1/audit"]["get"], &get); err != nil {
		t.Fatal(err)
	}
	for _, p := range get.Parameters {
		if p.Name == "kind" {
			if !slices.Equal(p.Schema.Items.Enum, audit.Kinds) {
				t.Errorf("the OpenAPI document's kinds %v are not audit.Kinds %v", p.Schema.Items.Enum, audit.Kinds)
			}
			return
		}
	}
	t.Error("GET /api/v1/audit does not document the parameter kind")
}
