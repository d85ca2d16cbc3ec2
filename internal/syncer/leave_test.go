package syncer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// TestOnLeave checks the archive and unsubscribe policies, and that a
// contact this export archived is restored (to its earlier status) when it
// rejoins, while contacts it did not create are not archived.
func TestOnLeave(t *testing.T) {
	tests := []struct {
		policy     string
		leftStatus string // of a contact we created, after it left
	}{
		{"archive", "archived"},
		{"unsubscribe", "unsubscribed"},
		{"untag", "subscribed"},
	}
	for _, tc := range tests {
		t.Run(tc.policy, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, dbtest.SQLite(t), emulator.Options{})
			var ps []person
			for i := 0; i < 20; i++ {
				ps = append(ps, person{id: fmt.Sprintf("c%02d", i), email: fmt.Sprintf("u%d@shop.io", i), first: "F", last: "L", tier: "gold", spend: 1})
			}
			w.upsert(ps...)
			gold := w.segment("Gold", `{"attribute":"tier","op":"eq","value":"gold"}`)
			// u19 exists before: adopted, so never archived by us.
			if err := w.srv.Seed(w.list, emulator.SeedContact{Email: "u19@shop.io", Status: "subscribed"}); err != nil {
				t.Fatal(err)
			}
			conn := int64(1)
			w.exp = store.Export{Name: "x", ConnectionID: &conn, AudienceID: w.list, SegmentIDs: []int64{gold},
				Mapping: store.Mapping{Email: "email", FirstName: "first"}, StatusIfNew: "subscribed", OnLeave: tc.policy, Schedule: "off"}
			if err := w.db.CreateExport(ctx, &w.exp); err != nil {
				t.Fatal(err)
			}
			w.run(false)
			// u1 unsubscribes themselves; then u0, u1 and u19 leave.
			if err := w.srv.Unsubscribe(w.list, "u1@shop.io"); err != nil {
				t.Fatal(err)
			}
			var leave []person
			for _, i := range []int{0, 1, 19} {
				p := ps[i]
				p.tier = "silver"
				leave = append(leave, p)
			}
			w.upsert(leave...)
			res := w.run(false)
			c0, _ := w.srv.Contact(w.list, "u0@shop.io")
			c1, _ := w.srv.Contact(w.list, "u1@shop.io")
			c19, _ := w.srv.Contact(w.list, "u19@shop.io")
			if c0.Status != tc.leftStatus {
				t.Errorf("u0 after leaving: %s, want %s", c0.Status, tc.leftStatus)
			}
			if want := map[string]string{"archive": "archived"}[tc.policy]; want != "" && c1.Status != want || want == "" && c1.Status != "unsubscribed" {
				t.Errorf("u1 (unsubscribed themselves) after leaving: %s", c1.Status)
			}
			// archive touches only contacts this export created; unsubscribe
			// applies to every contact that leaves (SPEC 4.4).
			want19 := map[string]string{"unsubscribe": "unsubscribed"}[tc.policy]
			if want19 == "" {
				want19 = "subscribed"
			}
			if c19.Status != want19 || len(c19.Tags) != 0 {
				t.Errorf("adopted u19 after leaving: %+v, want %s and untagged", c19, want19)
			}
			if tc.policy != "archive" && (len(c0.Tags) != 0 || len(c1.Tags) != 0) {
				t.Errorf("left contacts keep tags: %v %v", c0.Tags, c1.Tags)
			}
			t.Logf("leave run: %+v", res.Counts)
			// They rejoin.
			for i := range leave {
				leave[i].tier = "gold"
			}
			w.upsert(leave...)
			w.run(false)
			c0, _ = w.srv.Contact(w.list, "u0@shop.io")
			c1, _ = w.srv.Contact(w.list, "u1@shop.io")
			wantC0 := map[string]string{"archive": "subscribed", "unsubscribe": "unsubscribed", "untag": "subscribed"}[tc.policy]
			if c0.Status != wantC0 || len(c0.Tags) != 1 {
				t.Errorf("u0 after rejoining: %+v, want %s and tagged", c0, wantC0)
			}
			if c1.Status != "unsubscribed" || len(c1.Tags) != 1 {
				t.Errorf("u1 after rejoining: %+v, want unsubscribed (never re-subscribed) and tagged", c1)
			}
			// And then nothing more to do.
			w.srv.ResetCounters()
			w.run(false)
			if n := w.srv.WriteCalls(); n != 0 {
				t.Errorf("a run with nothing to do made %d write calls: %v", n, w.srv.Calls())
			}
		})
	}
}
