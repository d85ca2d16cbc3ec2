package syncer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/syncer"
)

func (w *world) profileAttrs(id string) map[string]any {
	w.t.Helper()
	p, err := w.db.GetProfile(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(p.Attrs, &m); err != nil {
		w.t.Fatal(err)
	}
	return m
}

// TestStatusFlowBack: every profile sent to an audience carries its
// Mailchimp status there (reserved attributes), refreshed by runs; segment
// rules can use them on both dialects; updated_at does not move. With 200
// profiles outside the export, the statuses are written contact by
// contact; without, by a pass over the profiles.
func TestStatusFlowBack(t *testing.T) {
	for _, others := range []int{0, 200} {
		t.Run(fmt.Sprintf("others=%d", others), func(t *testing.T) { testStatusFlowBack(t, others) })
	}
}

// flowWorld is a world with six gold profiles c0…c5 (a0…a5@shop.io), the
// export of gold, and others silver profiles outside it.
func flowWorld(t *testing.T, db *sqldb.DB, others int) (*world, []person) {
	w := newWorld(t, db, emulator.Options{})
	ps := flowPeople(others)
	w.upsert(ps...)
	w.goldExport("untag")
	return w, ps
}

func flowPeople(others int) []person {
	var ps []person
	for i := range 6 {
		ps = append(ps, person{id: fmt.Sprintf("c%d", i), email: fmt.Sprintf("a%d@shop.io", i), first: "F", tier: "gold"})
	}
	for i := range others {
		ps = append(ps, person{id: fmt.Sprintf("o%03d", i), email: fmt.Sprintf("o%d@shop.io", i), first: "F", tier: "silver"})
	}
	return ps
}

func testStatusFlowBack(t *testing.T, others int) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		w, ps := flowWorld(t, db, others)
		w.run(false)
		statusAttr, atAttr := attrjson.StatusAttr(w.list), attrjson.StatusChangedAttr(w.list)
		for _, p := range ps[:6] {
			if got := w.profileAttrs(p.id)[statusAttr]; got != "subscribed" {
				t.Errorf("%s after the first run: %v", p.id, got)
			}
		}
		before, _ := db.GetProfile(ctx, "c1")
		if err := w.srv.Unsubscribe(w.list, "a1@shop.io"); err != nil {
			t.Fatal(err)
		}
		if err := w.srv.Bounce(w.list, "a2@shop.io"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // a later status_changed_at
		changed := ps[5]
		changed.first = "G" // something to send, so the run refreshes statuses
		w.upsert(changed)
		w.run(false)
		a1 := w.profileAttrs("c1")
		if a1[statusAttr] != "unsubscribed" || w.profileAttrs("c2")[statusAttr] != "cleaned" || w.profileAttrs("c0")[statusAttr] != "subscribed" {
			t.Errorf("statuses after the refresh: c1 %v, c2 %v, c0 %v", a1[statusAttr], w.profileAttrs("c2")[statusAttr], w.profileAttrs("c0")[statusAttr])
		}
		if at, _ := a1[atAttr].(string); at <= w.profileAttrs("c0")[atAttr].(string) {
			t.Errorf("status_changed_at of c1 %v not after c0's %v", a1[atAttr], w.profileAttrs("c0")[atAttr])
		}
		after, _ := db.GetProfile(ctx, "c1")
		if !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("updated_at moved: %v -> %v", before.UpdatedAt, after.UpdatedAt)
		}
		rule, err := segment.Parse([]byte(`{"attribute":"`+statusAttr+`","op":"in","value":["unsubscribed","cleaned"]}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := db.CountMatching(ctx, rule); err != nil || n != 2 {
			t.Errorf("segment on the status: %d, %v; want 2", n, err)
		}
		rule, err = segment.Parse([]byte(`{"attribute":"`+atAttr+`","op":"gt","value":"2000-01-01"}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := db.CountMatching(ctx, rule); err != nil || n != 6 {
			t.Errorf("segment on status_changed_at: %d, %v; want 6", n, err)
		}
		cat, err := db.ProfileAttributes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]int64{}
		for _, a := range cat {
			found[a.Name+"/"+a.Type] = a.Count
		}
		if found[statusAttr+"/string"] != 6 || found[atAttr+"/date"] != 6 {
			t.Errorf("catalogue: %v", found)
		}
	})
}

// noFlowBack is the store of a process that dies right before the status
// flow-back: the field hides DB.FlowStatuses from the engine.
type noFlowBack struct {
	*sqldb.DB
	FlowStatuses struct{}
}

// TestStatusFlowBackAfterCrash: a first run records its contacts and
// stops before writing their statuses on the profiles (a crash). The next
// run has nothing to send, so refreshes no status, and must still write
// every one of them. A first run notes each contact's status as written
// when it records it, so only a full pass owed since the first refresh
// finds them. Both ways of writing are covered: by contacts (200 profiles
// outside the export) and by a pass over the profiles.
func TestStatusFlowBackAfterCrash(t *testing.T) {
	for _, others := range []int{0, 200} {
		t.Run(fmt.Sprintf("others=%d", others), func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
				ctx := context.Background()
				w, ps := flowWorld(t, db, others)
				statusAttr := attrjson.StatusAttr(w.list)

				e := &syncer.Engine{Store: noFlowBack{DB: db}, Source: db, Concurrency: 10}
				run, _, err := db.EnqueueRun(ctx, w.exp.ID, store.TriggerManual, false, "")
				if err != nil {
					t.Fatal(err)
				}
				if res, err := e.Execute(ctx, w.exp, w.mc, syncer.Options{RunID: run.ID}); err != nil || res.Counts.Created != 6 {
					t.Fatalf("first run: %+v, %v", res.Counts, err)
				}
				if got := w.profileAttrs("c0")[statusAttr]; got != nil {
					t.Fatalf("c0 shows %v before any flow-back", got)
				}

				if res := w.run(false); res.Counts.Created+res.Counts.Updated != 0 {
					t.Fatalf("second run sent %+v", res.Counts)
				}
				for _, p := range ps[:6] {
					if got := w.profileAttrs(p.id)[statusAttr]; got != "subscribed" {
						t.Errorf("%s after the run that followed the crash: %v", p.id, got)
					}
				}
				// The pass is done: a status changed in Mailchimp now flows
				// as usual, contact by contact.
				if err := w.srv.Unsubscribe(w.list, "a1@shop.io"); err != nil {
					t.Fatal(err)
				}
				changed := ps[5]
				changed.first = "G"
				w.upsert(changed)
				w.run(false)
				if got := w.profileAttrs("c1")[statusAttr]; got != "unsubscribed" {
					t.Errorf("c1 after unsubscribing: %v", got)
				}
			})
		})
	}
}

// TestMissingMergeFieldTypes: a merge field the export creates takes the
// type the attribute catalogue gives its attribute.
func TestMissingMergeFieldTypes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w, _ := flowWorld(t, db, 0)
		w.exp.Mapping.Attributes = []store.AttributeMap{{Attribute: "spend", MergeTag: "TOTAL"}, {Attribute: "tier", MergeTag: "LEVEL"}}
		w.exp.CreateMissingMergeFields = true
		if err := db.UpdateExport(context.Background(), &w.exp); err != nil {
			t.Fatal(err)
		}
		w.run(false)
		fields, err := w.mc.MergeFields(context.Background(), w.list)
		if err != nil {
			t.Fatal(err)
		}
		types := map[string]string{}
		for _, f := range fields {
			types[f.Tag] = f.Type
		}
		if types["TOTAL"] != "number" || types["LEVEL"] != "text" {
			t.Errorf("created merge fields: TOTAL %q, LEVEL %q; want number, text", types["TOTAL"], types["LEVEL"])
		}
	})
}
