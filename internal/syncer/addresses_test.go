package syncer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// setStatus gives a contact another status in the emulator, as its owner
// would (keeping its tags and fields).
func (w *world) setStatus(email, status string) {
	w.t.Helper()
	c, err := w.srv.Contact(w.list, email)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.srv.Seed(w.list, emulator.SeedContact{Email: email, Status: status, Tags: c.Tags, MergeFields: c.MergeFields}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) goldExport(onLeave string) {
	w.t.Helper()
	gold := w.segment("Gold", `{"attribute":"tier","op":"eq","value":"gold"}`)
	conn := int64(1)
	w.exp = store.Export{Name: "x", ConnectionID: &conn, AudienceID: w.list, SegmentIDs: []int64{gold}, TagPrefix: "seg:",
		Mapping: store.Mapping{Email: "email", FirstName: "first"}, StatusIfNew: "subscribed", OnLeave: onLeave, Schedule: "off"}
	if err := w.db.CreateExport(context.Background(), &w.exp); err != nil {
		w.t.Fatal(err)
	}
}

// TestAddressChangeKeepsContact: a profile's new address takes over its
// old contact (one call) in every status: the status and tags stay, no new
// contact is created and the old address is gone from the audience.
func TestAddressChangeKeepsContact(t *testing.T) {
	for _, status := range []string{"subscribed", "unsubscribed-self", "cleaned", "pending", "archived"} {
		t.Run(status, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
				w := newWorld(t, db, emulator.Options{})
				var ps []person
				for i := range 5 {
					ps = append(ps, person{id: fmt.Sprintf("c%d", i), email: fmt.Sprintf("a%d@shop.io", i), first: "F", tier: "gold"})
				}
				w.upsert(ps...)
				w.goldExport("archive")
				w.run(false)
				w.setStatus("a0@shop.io", status)
				moved := ps[0]
				moved.email, moved.first = "b0@shop.io", "G"
				w.upsert(moved)

				dry := w.run(true)
				if dry.Counts.EmailChanged != 1 || dry.Counts.Created != 0 || dry.Counts.Archived != 0 {
					t.Errorf("dry run counts: %+v", dry.Counts)
				}
				if s := dry.Sample["email_change"]; len(s) != 1 || s[0].Email != "b0@shop.io" {
					t.Errorf("dry run sample: %+v", dry.Sample)
				}
				res := w.run(false)
				if res.Counts.EmailChanged != 1 || res.Counts.Created != 0 || res.Counts.Archived != 0 {
					t.Errorf("run counts: %+v", res.Counts)
				}
				if _, err := w.srv.Contact(w.list, "a0@shop.io"); err == nil {
					t.Errorf("the old address is still a contact")
				}
				c, err := w.srv.Contact(w.list, "b0@shop.io")
				if err != nil {
					t.Fatalf("new address: %v", err)
				}
				wantStatus := map[string]string{"unsubscribed-self": "unsubscribed"}[status]
				if wantStatus == "" {
					wantStatus = status
				}
				if c.Status != wantStatus {
					t.Errorf("status after the change: %s, want %s", c.Status, wantStatus)
				}
				if len(c.Tags) != 1 || c.Tags[0] != "seg:Gold" {
					t.Errorf("tags after the change: %v", c.Tags)
				}
				if status != "archived" && c.MergeFields["FNAME"] != "G" {
					t.Errorf("fields after the change: %v", c.MergeFields)
				}
				n, _ := w.srv.Contacts(w.list)
				if len(n) != 5 {
					t.Errorf("%d contacts, want 5", len(n))
				}
				again := w.run(false)
				if again.Counts.Created != 0 || again.Counts.EmailChanged != 0 || again.Counts.Archived != 0 {
					t.Errorf("run after the change: %+v", again.Counts)
				}
			})
		})
	}
}

// TestAddressChangeCollision: the new address already is someone's
// contact: it is adopted as it is (status untouched) and the old contact is
// left as on_leave says.
func TestAddressChangeCollision(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db, emulator.Options{})
		w.upsert(person{id: "c0", email: "a0@shop.io", first: "F", tier: "gold"}, person{id: "c1", email: "a1@shop.io", first: "F", tier: "gold"})
		w.goldExport("untag")
		w.run(false)
		if err := w.srv.Seed(w.list, emulator.SeedContact{Email: "b0@shop.io", Status: "unsubscribed"}); err != nil {
			t.Fatal(err)
		}
		w.upsert(person{id: "c0", email: "b0@shop.io", first: "F", tier: "gold"})
		res := w.run(false)
		if res.Counts.EmailChangeCollisions != 1 || res.Counts.EmailChanged != 0 || res.Counts.Adopted != 1 {
			t.Errorf("counts: %+v", res.Counts)
		}
		old, err := w.srv.Contact(w.list, "a0@shop.io")
		if err != nil || len(old.Tags) != 0 {
			t.Errorf("old contact: %+v, %v (want kept, untagged)", old, err)
		}
		c, err := w.srv.Contact(w.list, "b0@shop.io")
		if err != nil || c.Status != "unsubscribed" || len(c.Tags) != 1 {
			t.Errorf("new address: %+v, %v (want unsubscribed, tagged)", c, err)
		}
		again := w.run(false)
		if again.Counts.Created+again.Counts.EmailChanged+again.Counts.EmailChangeCollisions != 0 {
			t.Errorf("run after the collision: %+v", again.Counts)
		}
	})
}

// TestAddressChangeConsentLeak is the measured bug of issue 13: of 30
// people who changed address, 10 had unsubscribed. All 10 must stay
// unsubscribed under their new address, and none of the 30 old contacts
// may stay behind. With maxHeld 5 the plan pass cannot hold them all and
// asks the store which addresses changed.
func TestAddressChangeConsentLeak(t *testing.T) {
	for _, maxHeld := range []int{0, 5} {
		t.Run(fmt.Sprintf("maxHeld=%d", maxHeld), func(t *testing.T) { testConsentLeak(t, maxHeld) })
	}
}

func testConsentLeak(t *testing.T, maxHeld int) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db, emulator.Options{})
		w.maxHeld = maxHeld
		var ps []person
		for i := range 60 {
			ps = append(ps, person{id: fmt.Sprintf("c%02d", i), email: fmt.Sprintf("old%02d@shop.io", i), first: "F", tier: "gold"})
		}
		w.upsert(ps...)
		w.goldExport("untag")
		w.run(false)
		for i := range 10 {
			if err := w.srv.Unsubscribe(w.list, ps[i].email); err != nil {
				t.Fatal(err)
			}
		}
		var moved []person
		for i := range 30 {
			p := ps[i]
			p.email = fmt.Sprintf("new%02d@shop.io", i)
			moved = append(moved, p)
		}
		// 10 others join, 10 leave: creates and leavers that are no pairs.
		for i := 50; i < 60; i++ {
			p := ps[i]
			p.tier = "silver"
			moved = append(moved, p)
		}
		for i := range 10 {
			moved = append(moved, person{id: fmt.Sprintf("n%02d", i), email: fmt.Sprintf("join%02d@shop.io", i), first: "F", tier: "gold"})
		}
		w.upsert(moved...)
		res := w.run(false)
		if res.Counts.EmailChanged != 30 || res.Counts.Created != 10 {
			t.Errorf("counts: %+v", res.Counts)
		}
		for i := range 30 {
			if _, err := w.srv.Contact(w.list, fmt.Sprintf("old%02d@shop.io", i)); err == nil {
				t.Errorf("old%02d is still a contact", i)
			}
			c, err := w.srv.Contact(w.list, fmt.Sprintf("new%02d@shop.io", i))
			want := "subscribed"
			if i < 10 {
				want = "unsubscribed"
			}
			if err != nil || c.Status != want {
				t.Errorf("new%02d: %+v, %v; want %s", i, c, err, want)
			}
		}
		all, _ := w.srv.Contacts(w.list)
		if len(all) != 70 {
			t.Errorf("%d contacts, want 70", len(all))
		}
	})
}
