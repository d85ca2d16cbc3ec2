package storetest

import (
	"context"
	"testing"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/store"
)

// TestCreateIntents: an intent is kept until the first recorded outcome
// of its contact (a Set), and a noted intent is enough for a right-to-
// erasure request to reach the contact, which may exist in Mailchimp.
func (s Suite) TestCreateIntents(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t)
	e := newExport(t, db)
	upsert(t, db, pp("c1", `{"email":"a@x.io"}`), pp("c2", `{"email":"b@x.io"}`))
	ha, hb := emailaddr.Hash("a@x.io"), emailaddr.Hash("b@x.io")
	if earlier, err := db.AddIntents(ctx, e.ID, []store.Intent{
		{Hash: ha, Email: "a@x.io", CustomerID: "c1", FieldsHash: "f1"},
		{Hash: hb, Email: "b@x.io", CustomerID: "c2", FieldsHash: "f2"},
	}); err != nil || len(earlier) != 0 {
		t.Fatalf("first intents: earlier %v, %v", earlier, err)
	}
	// fieldsOf notes an intent for h again and returns the one before.
	fieldsOf := func(h, email, fields string) string {
		t.Helper()
		customer := map[string]string{"a@x.io": "c1", "b@x.io": "c2"}[email]
		earlier, err := db.AddIntents(ctx, e.ID, []store.Intent{{Hash: h, Email: email, CustomerID: customer, FieldsHash: fields}})
		if err != nil {
			t.Fatal(err)
		}
		return earlier[h]
	}
	if got := fieldsOf(hb, "b@x.io", "f3"); got != "f2" {
		t.Fatalf("intent of b@x.io noted again: earlier %q, want f2", got)
	}
	if got := fieldsOf(hb, "b@x.io", "f3"); got != "f3" {
		t.Fatalf("intent of b@x.io noted a third time: earlier %q, want f3", got)
	}
	// A tag change is not an outcome of the create; a Set is.
	if err := db.ApplySynced(ctx, e.ID, []store.SyncedChange{{Hash: ha, AddTags: 1}}); err != nil {
		t.Fatal(err)
	}
	if got := fieldsOf(ha, "a@x.io", "f1"); got != "f1" {
		t.Fatalf("intent after a tag change: %q, want f1", got)
	}
	row := store.Synced{Hash: ha, Email: "a@x.io", CustomerID: "c1", InAudience: true, InExport: true, FieldsHash: "f1", Status: "subscribed", CreatedByUs: true}
	if err := db.ApplySynced(ctx, e.ID, []store.SyncedChange{{Hash: ha, Set: &row}}); err != nil {
		t.Fatal(err)
	}
	if got := fieldsOf(ha, "a@x.io", "f1"); got != "" {
		t.Fatalf("intent after the outcome was recorded: %q, want none", got)
	}
	// c2's contact was sent and never answered: erasing c2 reaches it.
	er, err := db.CreateErasure(ctx, "c2", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if len(er.Audiences) != 1 || er.Audiences[0].AudienceID != "aud" || er.Audiences[0].Email != "b@x.io" {
		t.Fatalf("erasure targets %+v, want b@x.io in aud", er.Audiences)
	}
	if got := fieldsOf(hb, "b@x.io", "f3"); got != "" {
		t.Fatalf("intent after the erasure: %q, want none", got)
	}
}
