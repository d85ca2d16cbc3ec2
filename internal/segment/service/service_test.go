package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/segment/service"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// TestSegmentChangesAreAudited checks that every change of a segment is in
// the audit log with who made it and the rule before and after, and that
// refused changes leave no trace.
func TestSegmentChangesAreAudited(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.UpsertProfiles(ctx, []store.ProfilePatch{
			{CustomerID: "c1", Attrs: `{"country":"NL","age":31}`},
			{CustomerID: "c2", Attrs: `{"country":"BE","age":17}`},
		}); err != nil {
			t.Fatal(err)
		}
		log := audit.New(db, nil)
		svc := &service.Service{Store: db, Audit: log}
		ann := auth.Principal{UserID: 4, Email: "ann@example.org", Role: auth.Contributor}
		viewer := auth.Principal{UserID: 5, Email: "vic@example.org", Role: auth.Viewer}

		v, err := svc.Create(ctx, ann, service.Input{Name: " Dutch ", Rule: json.RawMessage(`{"attribute":"country","op":"eq","value":"nl"}`)})
		if err != nil || v.Name != "Dutch" || v.MemberCount != 1 {
			t.Fatalf("Create = %+v, %v", v, err)
		}
		if _, err := svc.Update(ctx, ann, v.ID, service.Input{Name: "Adults", Rule: json.RawMessage(`{"attribute":"age","op":"gte","value":18}`)}); err != nil {
			t.Fatal(err)
		}
		// Refused: a viewer, an unknown attribute, a missing segment.
		if _, err := svc.Create(ctx, viewer, service.Input{Name: "x", Rule: json.RawMessage(`{"all":[]}`)}); !errors.Is(err, auth.ErrForbidden) {
			t.Errorf("a viewer created a segment: %v", err)
		}
		_, err = svc.Update(ctx, ann, v.ID, service.Input{Name: "", Rule: json.RawMessage(`{"attribute":"town","op":"eq","value":"x"}`)})
		var fe fielderr.List
		if !errors.As(err, &fe) || len(fe) != 2 || fe[0].Field != "name" || fe[1].Field != "rule.attribute" {
			t.Errorf("invalid update: %v", err)
		}
		if err := svc.Delete(ctx, ann, v.ID+1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleting a missing segment: %v", err)
		}
		if err := svc.Delete(ctx, ann, v.ID); err != nil {
			t.Fatal(err)
		}

		evs, err := log.List(ctx, store.AuditFilter{Kinds: []string{"segment"}})
		if err != nil || len(evs) != 3 {
			t.Fatalf("audit: %+v, %v", evs, err)
		}
		rule := func(v any) string { b, _ := json.Marshal(v); return string(b) }
		want := []struct{ action, detail string }{
			{audit.SegmentDelete, `{"name":"Adults","old_rule":{"attribute":"age","op":"gte","value":18}}`},
			{audit.SegmentUpdate, `{"name":"Adults","old_name":"Dutch","old_rule":{"attribute":"country","op":"eq","value":"nl"},"rule":{"attribute":"age","op":"gte","value":18}}`},
			{audit.SegmentCreate, `{"name":"Dutch","rule":{"attribute":"country","op":"eq","value":"nl"}}`},
		}
		for i, w := range want {
			e := evs[i]
			if e.Action != w.action || e.ActorEmail != ann.Email || e.ActorID != ann.UserID || e.ObjectType != "segment" || e.ObjectID != strings.TrimSpace(rule(v.ID)) {
				t.Errorf("event %d = %+v, want %s of segment %d by %s", i, e, w.action, v.ID, ann.Email)
			}
			if got := rule(e.Detail); got != w.detail {
				t.Errorf("event %d detail\n got %s\nwant %s", i, got, w.detail)
			}
		}
	})
}

func TestPreviewBounds(t *testing.T) {
	db := dbtest.SQLite(t)
	svc := &service.Service{Store: db}
	p := auth.Principal{UserID: 1, Email: "a@example.org", Role: auth.Admin}
	for _, n := range []int{-1, service.MaxPreviewSample + 1} {
		var fe fielderr.List
		if _, err := svc.Preview(context.Background(), p, json.RawMessage(`{"all":[]}`), n); !errors.As(err, &fe) || fe[0].Field != "sample" {
			t.Errorf("sample %d: %v", n, err)
		}
	}
	if _, err := svc.Preview(context.Background(), p, nil, 1); err == nil || !strings.Contains(err.Error(), "rule") {
		t.Errorf("no rule: %v", err)
	}
}
