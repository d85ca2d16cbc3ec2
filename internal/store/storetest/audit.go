package storetest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store"
)

// TestAuditKinds checks the audit log's filters: by kinds (object types,
// any of several), with paging, an object id and an action on top, and
// that the detail (old and new rules, counts) comes back as written.
func (s Suite) TestAuditKinds(t *testing.T) {
	db := s.Open(t)
	ctx := context.Background()
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	events := []store.AuditEvent{
		{Action: "segment.create", ObjectType: "segment", ObjectID: "1", Detail: map[string]any{"rule": map[string]any{"all": []any{}}}},
		{Action: "profile.import", ObjectType: "profile", Detail: map[string]any{"imported": float64(3), "via": "api"}},
		{Action: "export.update", ObjectType: "export", ObjectID: "7"},
		{Action: "segment.update", ObjectType: "segment", ObjectID: "1", Detail: map[string]any{"old_rule": "a", "rule": "b"}},
		{Action: "profile.delete", ObjectType: "profile", ObjectID: "c1"},
		{Action: "user.create", ObjectType: "user", ObjectID: "2"},
		{Action: "segment.delete", ObjectType: "segment", ObjectID: "2"},
	}
	for i := range events {
		events[i].At, events[i].ActorEmail = at.Add(time.Duration(i)*time.Second), "ann@example.org"
		if err := db.AddAuditEvent(ctx, &events[i]); err != nil {
			t.Fatal(err)
		}
	}
	actions := func(es []store.AuditEvent) []string {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.Action
		}
		return out
	}
	tests := []struct {
		name string
		f    store.AuditFilter
		want []string
	}{
		{"one kind", store.AuditFilter{Kinds: []string{"segment"}}, []string{"segment.delete", "segment.update", "segment.create"}},
		{"two kinds", store.AuditFilter{Kinds: []string{"profile", "export"}}, []string{"profile.delete", "export.update", "profile.import"}},
		{"kind and page", store.AuditFilter{Kinds: []string{"segment"}, Limit: 1, BeforeID: events[6].ID}, []string{"segment.update"}},
		{"kind and object", store.AuditFilter{Kinds: []string{"segment", "profile"}, ObjectID: "1"}, []string{"segment.update", "segment.create"}},
		{"kind and action", store.AuditFilter{Kinds: []string{"segment", "user"}, Action: "user.create"}, []string{"user.create"}},
		{"unused kind", store.AuditFilter{Kinds: []string{"source"}}, []string{}},
		{"every kind", store.AuditFilter{Limit: 3}, []string{"segment.delete", "user.create", "profile.delete"}},
	}
	for _, tt := range tests {
		es, err := db.ListAuditEvents(ctx, tt.f)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := actions(es); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	es, err := db.ListAuditEvents(ctx, store.AuditFilter{Kinds: []string{"segment"}, Action: "segment.update"})
	if err != nil || len(es) != 1 {
		t.Fatalf("segment.update: %v, %v", es, err)
	}
	if e := es[0]; e.Detail["old_rule"] != "a" || e.Detail["rule"] != "b" || !e.At.Equal(events[3].At) || e.ActorEmail != "ann@example.org" {
		t.Errorf("segment.update read back as %+v", e)
	}
}

// TestAuditMigrationRetypes runs the re-typing of migration 0011 over
// events recorded the way segsync did before it: an applied pull on its
// source and an erasure on itself become kind profile, the old object id
// kept in the detail.
func (s Suite) TestAuditMigrationRetypes(t *testing.T) {
	db := s.Open(t)
	ctx := context.Background()
	old := []store.AuditEvent{
		{Action: "profile.import", ObjectType: "source", ObjectID: "5", Detail: map[string]any{"source": "crm", "new": 2}},
		{Action: "profile.erase", ObjectType: "erasure", ObjectID: "9", Detail: map[string]any{"customer_id": "c1", "audiences": []any{}}},
		{Action: "source.update", ObjectType: "source", ObjectID: "5"},
	}
	for i := range old {
		if err := db.AddAuditEvent(ctx, &old[i]); err != nil {
			t.Fatal(err)
		}
	}
	sql, err := os.ReadFile(filepath.Join("..", db.Dialect(), "migrations", "0011_audit_kinds.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for stmt := range strings.SplitSeq(string(sql), ";") {
		if stmt = strings.TrimSpace(stmt); strings.HasPrefix(stmt, "UPDATE") {
			if _, err := db.W.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
	es, err := db.ListAuditEvents(ctx, store.AuditFilter{Kinds: []string{"profile"}})
	if err != nil || len(es) != 2 {
		t.Fatalf("profile events after the migration: %+v, %v", es, err)
	}
	if e := es[0]; e.ObjectID != "c1" || e.Detail["erasure"] != 9.0 || e.Detail["customer_id"] != "c1" {
		t.Errorf("erasure event %+v", e)
	}
	if e := es[1]; e.ObjectID != "" || e.Detail["source_id"] != 5.0 || e.Detail["source"] != "crm" || e.Detail["new"] != 2.0 {
		t.Errorf("pull event %+v", e)
	}
	if es, err := db.ListAuditEvents(ctx, store.AuditFilter{Kinds: []string{"source"}}); err != nil || len(es) != 1 || es[0].Action != "source.update" {
		t.Errorf("source events after the migration: %+v, %v", es, err)
	}
}
