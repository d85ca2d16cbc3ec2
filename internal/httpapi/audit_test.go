package httpapi

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
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
