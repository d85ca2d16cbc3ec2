package storetest

import (
	"context"
	"testing"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/store"
)

// TestCreateIntents: intents are noted by batch; a batch dropped with the
// last outcome of its creates is gone; the intents left are read back (the
// last noted for a contact), without those whose outcome was recorded
// since; and a noted intent is enough for a right-to-erasure request to
// reach the contact, which may exist in Mailchimp.
func (s Suite) TestCreateIntents(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t)
	e := newExport(t, db)
	upsert(t, db, pp("c1", `{"email":"a@x.io"}`), pp("c2", `{"email":"b@x.io"}`), pp("c3", `{"email":"c@x.io"}`))
	ha, hb, hc := emailaddr.Hash("a@x.io"), emailaddr.Hash("b@x.io"), emailaddr.Hash("c@x.io")
	note := func(intents ...store.Intent) int64 {
		t.Helper()
		id, err := db.AddIntents(ctx, e.ID, intents)
		if err != nil || id == 0 {
			t.Fatalf("noting intents: batch %d, %v", id, err)
		}
		return id
	}
	left := func(want map[string]string) {
		t.Helper()
		got, err := db.LeftIntents(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("left intents %v, want %v", got, want)
		}
		for h, f := range want {
			if got[h] != f {
				t.Fatalf("left intents %v, want %v", got, want)
			}
		}
	}
	apply := func(changes ...store.SyncedChange) {
		t.Helper()
		if err := db.ApplySynced(ctx, e.ID, changes); err != nil {
			t.Fatal(err)
		}
	}
	left(nil)
	note(store.Intent{Hash: ha, Email: "a@x.io", CustomerID: "c1", FieldsHash: "f1"},
		store.Intent{Hash: hb, Email: "b@x.io", CustomerID: "c2", FieldsHash: "f2"})
	left(map[string]string{ha: "f1", hb: "f2"})
	second := note(store.Intent{Hash: hb, Email: "b@x.io", CustomerID: "c2", FieldsHash: "f3"})
	left(map[string]string{ha: "f1", hb: "f3"})
	third := note(store.Intent{Hash: hc, Email: "c@x.io", CustomerID: "c3", FieldsHash: "f4"})
	left(map[string]string{ha: "f1", hb: "f3", hc: "f4"})
	// A batch dropped with its creates' last outcome is gone.
	rowC := store.Synced{Hash: hc, Email: "c@x.io", CustomerID: "c3", FieldsHash: "f5"}
	apply(store.SyncedChange{Hash: hc, Set: &rowC}, store.SyncedChange{DropIntents: third})
	left(map[string]string{ha: "f1", hb: "f3"})
	// A tag change is not an outcome of the create.
	apply(store.SyncedChange{Hash: ha, AddTags: 1})
	left(map[string]string{ha: "f1", hb: "f3"})
	// A contact recorded in the audience settles its intents.
	rowA := store.Synced{Hash: ha, Email: "a@x.io", CustomerID: "c1", InAudience: true, InExport: true, FieldsHash: "f1", Status: "subscribed", CreatedByUs: true}
	apply(store.SyncedChange{Hash: ha, Set: &rowA})
	left(map[string]string{hb: "f3"})
	// A rejection settles the intent for the fields rejected only: the
	// first batch's intent of b@x.io is left.
	rowB := store.Synced{Hash: hb, Email: "b@x.io", CustomerID: "c2", RejectedHash: "f3"}
	apply(store.SyncedChange{Hash: hb, Set: &rowB})
	left(map[string]string{hb: "f2"})
	// Dropping a batch twice, or one tidied away, is no error.
	apply(store.SyncedChange{DropIntents: second}, store.SyncedChange{DropIntents: third})
	left(map[string]string{hb: "f2"})
	// c2's contact was sent and never answered: erasing c2 reaches it,
	// and its intents are gone.
	er, err := db.CreateErasure(ctx, "c2", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if len(er.Audiences) != 1 || er.Audiences[0].AudienceID != "aud" || er.Audiences[0].Email != "b@x.io" {
		t.Fatalf("erasure targets %+v, want b@x.io in aud", er.Audiences)
	}
	left(nil)
}
