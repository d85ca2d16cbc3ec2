package syncer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/syncer"
)

// TestIncrementalRuns: after a complete run, a run plans only the profiles
// changed since (and the contacts they touch), with the same outcome as a
// full plan; a deletion, a changed rule and a requested full re-sync make
// the next run plan every profile.
func TestIncrementalRuns(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		w := newWorld(t, db, emulator.Options{})
		var ps []person
		// Even: gold, spending little; odd: silver big spenders. c07 is both.
		for i := range 60 {
			p := person{id: fmt.Sprintf("c%02d", i), email: fmt.Sprintf("u%d@shop.io", i), first: "F", last: "L", tier: "gold", spend: i * 5}
			if i%2 == 1 {
				p.tier, p.spend = "silver", 500+i
			}
			ps = append(ps, p)
		}
		ps[7].tier = "gold"
		w.upsert(ps...)
		gold := w.segment("Gold", `{"attribute":"tier","op":"eq","value":"gold"}`)
		big := w.segment("Big spenders", `{"attribute":"spend","op":"gte","value":500}`)
		conn := int64(1)
		w.exp = store.Export{Name: "x", ConnectionID: &conn, AudienceID: w.list, SegmentIDs: []int64{gold, big}, TagPrefix: "seg:",
			Mapping:     store.Mapping{Email: "email", FirstName: "first", LastName: "last", Attributes: []store.AttributeMap{{Attribute: "spend", MergeTag: "SPEND"}}},
			StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
		if err := db.CreateExport(ctx, &w.exp); err != nil {
			t.Fatal(err)
		}
		planned := func(res syncer.Result, incremental bool, profiles int64) {
			t.Helper()
			if (res.Counts.Incremental == 1) != incremental || res.Counts.Profiles != profiles {
				t.Fatalf("run planned %d profiles, incremental %d; want %d, %v (%+v)", res.Counts.Profiles, res.Counts.Incremental, profiles, incremental, res.Counts)
			}
		}
		planned(w.run(false), false, 60)
		w.check(w.expected(nil, nil))
		// Once the full run was over, the address table was filled in the
		// background; incremental runs find their members in it.
		dbtest.WaitAddressesFilled(t, db, "email")

		res := w.run(false)
		planned(res, true, 0)
		if res.Counts.WriteCalls != 0 {
			t.Fatalf("a run with no change made %d write calls", res.Counts.WriteCalls)
		}

		// A field change, a profile joining a segment, one leaving them
		// all, an address change, and two profiles now sharing an address.
		ps[0].first, ps[1].tier, ps[2].tier, ps[3].email, ps[5].email = "Changed", "gold", "silver", "moved3@shop.io", "u7@shop.io"
		w.upsert(ps[0], ps[1], ps[2], ps[3], ps[5])
		res = w.run(false)
		if res.Counts.Incremental != 1 || res.Counts.Profiles != 5 || res.Counts.EmailChanged != 1 || res.Counts.Duplicates != 1 {
			t.Fatalf("incremental run after five changes = %+v", res.Counts)
		}
		left := map[string]want{
			"u2@shop.io": {status: "subscribed", fields: map[string]string{"FNAME": "F", "LNAME": "L", "SPEND": "10"}},
			"u5@shop.io": {status: "subscribed", fields: map[string]string{"FNAME": "F", "LNAME": "L", "SPEND": "505"}},
		}
		w.check(w.expected(nil, left))

		// u7@shop.io merges c05 (newer: its fields win; silver) and c07
		// (gold). When c07 moves to another address, the contact must lose
		// the gold tag although its synced customer, c05, did not change:
		// merged addresses are planned by every run.
		ps[7].email = "u7b@shop.io"
		w.upsert(ps[7])
		planned(w.run(false), true, 2)
		w.check(w.expected(nil, left))

		// A deleted profile: the next run plans fully and its contact leaves.
		if err := db.DeleteProfile(ctx, ps[10].id); err != nil {
			t.Fatal(err)
		}
		delete(w.people, ps[10].id)
		res = w.run(false)
		if res.Counts.Incremental != 0 || res.Counts.Left != 1 {
			t.Fatalf("run after a deletion = %+v", res.Counts)
		}
		planned(w.run(false), true, 0)

		// A changed rule.
		sg, err := db.GetSegment(ctx, big)
		if err != nil {
			t.Fatal(err)
		}
		if sg.Rule, err = segment.Parse([]byte(`{"attribute":"spend","op":"gte","value":1100}`), nil); err != nil {
			t.Fatal(err)
		}
		if err := db.UpdateSegment(ctx, &sg); err != nil {
			t.Fatal(err)
		}
		res = w.run(false)
		if res.Counts.Incremental != 0 || res.Counts.TagsRemoved == 0 {
			t.Fatalf("run after a rule change = %+v", res.Counts)
		}
		planned(w.run(false), true, 0)

		// A full re-sync on request.
		if err := db.RequestFullResync(ctx, w.exp.ID); err != nil {
			t.Fatal(err)
		}
		if res := w.run(false); res.Counts.Incremental != 0 || res.Counts.Profiles < 30 {
			t.Fatalf("run after a full re-sync request = %+v", res.Counts)
		}
		planned(w.run(false), true, 0)
	})
}

// TestIncrementalRefreshWidensScope: contacts whose status the refresh
// finds changed join an incremental run's scope after its plan pass; the
// send pass reads their profiles too (next to the members the plan pass
// kept), so they are neither taken for leavers nor untagged.
func TestIncrementalRefreshWidensScope(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db, emulator.Options{})
		ps := w.goldPeople(20)
		w.run(false)
		if res := w.run(false); res.Counts.Incremental != 1 || res.Counts.Profiles != 0 {
			t.Fatalf("steady state = %+v", res.Counts)
		}
		for _, e := range []string{"u4@shop.io", "u15@shop.io"} {
			if err := w.srv.Unsubscribe(w.list, e); err != nil {
				t.Fatal(err)
			}
		}
		ps[9].first = "G" // something to send, so the run refreshes statuses
		w.upsert(ps[9])
		res := w.run(false)
		if c := res.Counts; c.Incremental != 1 || c.Profiles != 3 || c.Updated != 1 || c.Left != 0 || c.TagsRemoved != 0 {
			t.Fatalf("run after a change and two unsubscribes = %+v", c)
		}
	})
}

// membersCounter is the store as a run's source, counting its narrowed
// member reads.
type membersCounter struct {
	*sqldb.DB
	reads int
}

func (c *membersCounter) StreamMembersOfHashes(ctx context.Context, rules []*segment.Rule, emailAttr string, names, hashes []string, fn func(store.HashedMember) error) error {
	c.reads++
	return c.DB.StreamMembersOfHashes(ctx, rules, emailAttr, names, hashes, fn)
}

// TestIncrementalMembersUncached: when an incremental run's members are
// too large to keep between its passes, the passes after the first read
// them again by address, with the same outcome.
func TestIncrementalMembersUncached(t *testing.T) {
	syncer.SetMaxCachedMembers(t, 0)
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db, emulator.Options{})
		src := &membersCounter{DB: db}
		w.src = src
		ps := w.goldPeople(20)
		if res := w.run(false); res.Counts.Created != 20 {
			t.Fatalf("first run = %+v", res.Counts)
		}

		// A field change, an address change, one leaving the segment, and
		// two profiles now sharing an address.
		ps[1].first, ps[2].email, ps[3].tier, ps[5].email = "G", "moved2@shop.io", "silver", "u6@shop.io"
		w.upsert(ps[1], ps[2], ps[3], ps[5])
		*src = membersCounter{DB: db}
		res := w.run(false)
		// The counts of the same run with its members kept in memory.
		if c := res.Counts; c.Incremental != 1 || c.Profiles != 4 || c.Updated != 1 || c.EmailChanged != 1 || c.TagsRemoved != 2 || c.Left != 3 || c.Duplicates != 1 || c.Created != 0 {
			t.Fatalf("incremental run after four changes = %+v", c)
		}
		if src.reads < 2 {
			t.Fatalf("members read %d times; want once per pass", src.reads)
		}
	})
}

// goldPeople stores n gold profiles c00… (u0@shop.io …) and makes w's
// export the gold segment's, untagging leavers.
func (w *world) goldPeople(n int) []person {
	w.t.Helper()
	var ps []person
	for i := range n {
		ps = append(ps, person{id: fmt.Sprintf("c%02d", i), email: fmt.Sprintf("u%d@shop.io", i), first: "F", tier: "gold"})
	}
	w.upsert(ps...)
	w.goldExport("untag")
	return ps
}
