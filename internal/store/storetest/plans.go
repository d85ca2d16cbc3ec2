package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
)

// TestPlanState: what incremental runs plan from. The profile mark
// follows writes and deletions; the plan state round-trips and keeps a
// requested full re-sync; ChangedHashes names the addresses of profiles
// written after a mark, and those the synced state has under their
// customer ids; the member and synced streams narrow to given addresses.
func (s Suite) TestPlanState(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t)
	e := newExport(t, db)
	if _, found, err := db.PlanState(ctx, e.ID); err != nil || found {
		t.Fatalf("PlanState of a new export = %v, %v", found, err)
	}
	upsert(t, db, pp("a", `{"email":"a@x.io","n":1}`), pp("b", `{"email":"b@x.io","n":2}`), pp("c", `{"email":"c@x.io","n":3}`))
	m1, err := db.ProfileMark(ctx)
	if err != nil || m1.Through == 0 || m1.Now.IsZero() {
		t.Fatalf("ProfileMark = %+v, %v", m1, err)
	}
	// b keeps its contact under its old address in the synced state.
	if err := db.ApplySynced(ctx, e.ID, []store.SyncedChange{{Hash: emailaddr.Hash("old@x.io"), Set: &store.Synced{
		Hash: emailaddr.Hash("old@x.io"), Email: "old@x.io", CustomerID: "b", InAudience: true, InExport: true}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.ChangedHashes(ctx, e.ID, "email", m1.Through); err != nil || len(got) != 0 {
		t.Fatalf("ChangedHashes with nothing written since = %v, %v", got, err)
	}
	time.Sleep(2 * time.Millisecond)
	upsert(t, db, pp("b", `{"email":"B@x.io ","n":2}`), pp("d", `{"email":"d@x.io","n":4}`))
	got, err := db.ChangedHashes(ctx, e.ID, "email", m1.Through)
	want := []string{emailaddr.Hash("b@x.io"), emailaddr.Hash("d@x.io"), emailaddr.Hash("old@x.io")}
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ChangedHashes = %v, %v; want %v", got, err, want)
	}
	m2, _ := db.ProfileMark(ctx)
	if m2.Through <= m1.Through || m2.Deletions != m1.Deletions {
		t.Fatalf("mark after writes %+v, before %+v", m2, m1)
	}
	if err := db.DeleteProfile(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if m3, _ := db.ProfileMark(ctx); m3.Deletions == m2.Deletions {
		t.Fatalf("a deletion left the deletion counter at %d", m3.Deletions)
	}

	// Narrowed streams.
	rule, err := segment.Parse([]byte(`{"attribute":"n","op":"gte","value":2}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	only := []string{emailaddr.Hash("a@x.io"), emailaddr.Hash("b@x.io"), emailaddr.Hash("old@x.io")}
	for _, rules := range [][]*segment.Rule{{rule}, {rule, rule}} {
		var ids []string
		if err := db.StreamMembersOfHashes(ctx, rules, "email", nil, only, func(m store.HashedMember) error {
			ids = append(ids, m.CustomerID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, []string{"b"}) {
			t.Fatalf("%d rules: members of the hashes = %v, want [b] (a is not a member, d not asked for)", len(rules), ids)
		}
	}
	var synced []string
	if err := db.StreamSyncedOfHashes(ctx, e.ID, only, func(s store.Synced) error { synced = append(synced, s.Email); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(synced, []string{"old@x.io"}) {
		t.Fatalf("synced rows of the hashes = %v", synced)
	}

	// The plan state round-trips; a full re-sync request survives a save.
	st := store.PlanState{Fingerprint: "fp", Through: m2.Through, Deletions: 3, FullAt: m2.Now.Truncate(time.Microsecond), Duplicates: []string{"h1", "h2"}}
	if err := db.SavePlanState(ctx, e.ID, st); err != nil {
		t.Fatal(err)
	}
	back, found, err := db.PlanState(ctx, e.ID)
	if err != nil || !found || back.Fingerprint != "fp" || back.Through != st.Through || back.Deletions != 3 || !back.FullAt.Equal(st.FullAt) ||
		!slices.Equal(back.Duplicates, st.Duplicates) || !back.FullRequestedAt.IsZero() {
		t.Fatalf("PlanState = %+v, %v, %v; saved %+v", back, found, err, st)
	}
	if err := db.RequestFullResync(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	st.Duplicates = nil
	if err := db.SavePlanState(ctx, e.ID, st); err != nil {
		t.Fatal(err)
	}
	back, _, _ = db.PlanState(ctx, e.ID)
	if back.FullRequestedAt.Before(st.FullAt) || len(back.Duplicates) != 0 {
		t.Fatalf("after a request and a save: %+v", back)
	}
	if err := db.DeleteExport(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := db.PlanState(ctx, e.ID); found {
		t.Fatal("the plan state outlived its export")
	}
}
