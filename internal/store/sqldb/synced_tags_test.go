package sqldb_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// TestApplySyncedTagOrder checks that batched tag writes equal applying
// the changes one by one: per contact in order, across many contacts and
// statements.
func TestApplySyncedTagOrder(t *testing.T) {
	const a, b, c = 1, 2, 4
	type step struct {
		hash        string
		add, remove uint64
	}
	tests := []struct {
		name    string
		initial map[string]uint64
		steps   []step
		want    map[string]uint64
	}{
		{"add then remove the same bit", map[string]uint64{"h1": 0}, []step{{"h1", a, 0}, {"h1", 0, a}}, map[string]uint64{"h1": 0}},
		{"remove then add the same bit", map[string]uint64{"h1": a}, []step{{"h1", 0, a}, {"h1", a, 0}}, map[string]uint64{"h1": a}},
		{"interleaved contacts", map[string]uint64{"h1": a, "h2": b},
			[]step{{"h1", b, 0}, {"h2", 0, b}, {"h1", 0, a}, {"h2", c, 0}, {"h1", c, b}},
			map[string]uint64{"h1": c, "h2": c}},
		{"orders differ between contacts", map[string]uint64{"h1": 0, "h2": a},
			[]step{{"h1", a, 0}, {"h2", 0, a}, {"h2", a, 0}, {"h1", 0, a}},
			map[string]uint64{"h1": 0, "h2": a}},
		{"add and remove in one change", map[string]uint64{"h1": a | b}, []step{{"h1", c, a}}, map[string]uint64{"h1": b | c}},
		{"unknown contact is ignored", map[string]uint64{"h1": 0}, []step{{"zz", a, 0}, {"h1", b, 0}}, map[string]uint64{"h1": b}},
	}
	// Many contacts: more than one full statement, with a second round.
	many := map[string]uint64{}
	var manySteps []step
	wantMany := map[string]uint64{}
	for i := range 1203 {
		h := fmt.Sprintf("m%05d", i)
		many[h] = b
		manySteps = append(manySteps, step{h, a, 0})
		wantMany[h] = a | b
		if i%3 == 0 {
			manySteps = append(manySteps, step{h, 0, b})
			wantMany[h] = a
		}
	}
	tests = append(tests, struct {
		name    string
		initial map[string]uint64
		steps   []step
		want    map[string]uint64
	}{"1203 contacts", many, manySteps, wantMany})

	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newExport(t, db)
				var init []store.SyncedChange
				for h, tags := range tt.initial {
					init = append(init, store.SyncedChange{Hash: h, Set: &store.Synced{Email: h + "@x.io", InAudience: true, Tags: tags}})
				}
				if err := db.ApplySynced(ctx, e.ID, init); err != nil {
					t.Fatal(err)
				}
				var changes []store.SyncedChange
				for _, s := range tt.steps {
					changes = append(changes, store.SyncedChange{Hash: s.hash, AddTags: s.add, RemoveTags: s.remove})
				}
				if err := db.ApplySynced(ctx, e.ID, changes); err != nil {
					t.Fatal(err)
				}
				got := map[string]uint64{}
				if err := db.StreamSynced(ctx, e.ID, func(s store.Synced) error { got[s.Hash] = s.Tags; return nil }); err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("%d rows, want %d", len(got), len(tt.want))
				}
				for h, w := range tt.want {
					if got[h] != w {
						t.Errorf("tags of %s = %b, want %b", h, got[h], w)
					}
				}
			})
		}
	})
}

func TestSyncedOtherStatus(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		e := newExport(t, db)
		other := newExport(t, db)
		set := func(exportID int64, hash, status string, inAudience bool) {
			t.Helper()
			err := db.ApplySynced(ctx, exportID, []store.SyncedChange{{Hash: hash, Set: &store.Synced{Email: hash + "@x.io", InAudience: inAudience, Status: status}}})
			if err != nil {
				t.Fatal(err)
			}
		}
		check := func(want bool) {
			t.Helper()
			got, err := db.SyncedOtherStatus(ctx, e.ID, "subscribed")
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("SyncedOtherStatus = %v, want %v", got, want)
			}
		}
		check(false) // no rows
		set(e.ID, "a1", "subscribed", true)
		set(e.ID, "a2", "creating", false) // not in the audience
		set(other.ID, "a3", "unsubscribed", true)
		check(false)
		set(e.ID, "a4", "archived", true)
		check(true)
		// Back to subscribed: the contact leaves the partial index.
		set(e.ID, "a4", "subscribed", true)
		check(false)
		if err := db.UpdateSyncedStatuses(ctx, e.ID, map[string]string{"a1": "cleaned"}); err != nil {
			t.Fatal(err)
		}
		check(true)
	})
}

// TestApplySyncedNewRowTags checks the tags of rows inserted by a batch,
// whose lone tag change is written into the insert: a contact with more
// changes in the batch, or a row that exists, gets them in order.
func TestApplySyncedNewRowTags(t *testing.T) {
	const a, b = 1, 2
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		e := newExport(t, db)
		set := func(h string, add, remove uint64) store.SyncedChange {
			return store.SyncedChange{Hash: h, Set: &store.Synced{Email: h + "@x.io", InAudience: true}, AddTags: add, RemoveTags: remove}
		}
		if err := db.ApplySynced(ctx, e.ID, []store.SyncedChange{set("old", b, 0)}); err != nil {
			t.Fatal(err)
		}
		changes := []store.SyncedChange{
			set("lone", a, 0),
			set("twice", 0, a), set("twice", a, 0),
			set("then-removed", a, 0), {Hash: "then-removed", RemoveTags: a},
			set("old", a, 0),
		}
		if err := db.ApplySynced(ctx, e.ID, changes); err != nil {
			t.Fatal(err)
		}
		want := map[string]uint64{"lone": a, "twice": a, "then-removed": 0, "old": a | b}
		got := map[string]uint64{}
		if err := db.StreamSynced(ctx, e.ID, func(s store.Synced) error { got[s.Hash] = s.Tags; return nil }); err != nil {
			t.Fatal(err)
		}
		for h, w := range want {
			if got[h] != w {
				t.Errorf("tags of %s = %b, want %b", h, got[h], w)
			}
		}
	})
}

// TestApplySyncedMixedRows writes rows of several kinds interleaved in one
// batch, more of one kind than a statement holds: the upserts bind what a
// statement's rows share once, so each row must come back with its own
// columns and its kind's, new or updated.
func TestApplySyncedMixedRows(t *testing.T) {
	kinds := []store.Synced{
		{InAudience: true, InExport: true, CreatedByUs: true, Status: "subscribed"},
		{InAudience: true, InExport: false, Status: "unsubscribed"},
		{InAudience: false, InExport: true, RejectedHash: "r1"},
		{InAudience: true, InExport: true, ArchivedByUs: true, Status: "archived"},
	}
	row := func(i, kind int, round string) store.SyncedChange {
		s := kinds[kind]
		h := fmt.Sprintf("h%05d", i)
		s.Hash, s.Email, s.CustomerID = h, h+"@x.io", fmt.Sprintf("c%d", i)
		if i%2 == 0 { // a new customer: the row's whole key is written
			s.CustomerID += round
		}
		s.FieldsHash, s.Tags = "f"+round+h, uint64(i%7)
		return store.SyncedChange{Hash: h, Set: &s}
	}
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		e := newExport(t, db)
		want := map[string]store.Synced{}
		for r, round := range []string{"a", "b"} {
			var changes []store.SyncedChange
			for i := range 530 {
				kind := 0 // mostly one kind, as a first run's creates are
				if i%5 == 1 || i%11 == 0 {
					kind = (i + r) % len(kinds)
				}
				c := row(i, kind, round)
				changes = append(changes, c)
				w := *c.Set
				if r == 1 { // an update keeps the tags it had
					w.Tags = want[c.Hash].Tags
				}
				want[c.Hash] = w
			}
			if err := db.ApplySynced(ctx, e.ID, changes); err != nil {
				t.Fatal(err)
			}
		}
		n := 0
		if err := db.StreamSynced(ctx, e.ID, func(s store.Synced) error {
			n++
			if w := want[s.Hash]; s != w {
				t.Errorf("%s: got %+v, want %+v", s.Hash, s, w)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n != len(want) {
			t.Errorf("%d rows, want %d", n, len(want))
		}
	})
}
