package sqldb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// TestFlowOwed: from an export's first status refresh its flow-back owes
// the profiles a full pass. Contacts recorded before the pass begins are
// noted on insert and written by the pass; contacts recorded after it began
// (here: a pass that died half-way) are due as usual, and a pass that did
// not end is done again by the next FlowStatuses.
func TestFlowOwed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		e := newExport(t, db)
		var patches []store.ProfilePatch
		for i := range 3 {
			patches = append(patches, store.ProfilePatch{CustomerID: fmt.Sprintf("c%d", i), Attrs: fmt.Sprintf(`{"email":"a%d@shop.io"}`, i)})
		}
		if _, err := db.UpsertProfiles(ctx, patches); err != nil {
			t.Fatal(err)
		}
		record := func(i int) {
			t.Helper()
			email := fmt.Sprintf("a%d@shop.io", i)
			if err := db.ApplySynced(ctx, e.ID, []store.SyncedChange{{Hash: emailaddr.Hash(email), Set: &store.Synced{
				Email: email, CustomerID: fmt.Sprintf("c%d", i), InAudience: true, InExport: true, Status: "subscribed"}}}); err != nil {
				t.Fatal(err)
			}
		}
		statusAttr := attrjson.StatusAttr(e.AudienceID)
		shows := func(id string) any {
			t.Helper()
			p, err := db.GetProfile(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(p.Attrs, &m); err != nil {
				t.Fatal(err)
			}
			return m[statusAttr]
		}
		at := time.Now()

		if _, owed, err := db.FlowOwed(ctx, e.ID, e.AudienceID, at); err != nil || owed {
			t.Fatalf("before any refresh: owed %v, %v", owed, err)
		}
		if err := db.SetStatusAsOf(ctx, e.ID, at); err != nil {
			t.Fatal(err)
		}
		record(0)
		if n, err := db.FlowStatuses(ctx, e.ID, e.AudienceID, at); err != nil || n != 1 || shows("c0") != "subscribed" {
			t.Fatalf("FlowStatuses wrote %d (%v); c0 shows %v", n, err, shows("c0"))
		}
		// The debt is settled: c1 is due as usual and written alone.
		record(1)
		if n, owed, err := db.FlowOwed(ctx, e.ID, e.AudienceID, at); err != nil || owed || n != 0 {
			t.Fatalf("settled debt: FlowOwed %d, %v, %v", n, owed, err)
		}
		if n, err := db.FlowStatuses(ctx, e.ID, e.AudienceID, at); err != nil || n != 1 || shows("c1") != "subscribed" {
			t.Fatalf("FlowStatuses wrote %d (%v); c1 shows %v", n, err, shows("c1"))
		}

		// A second export to the same audience: its pass begins and dies
		// (flow_pending 2) before c2 is recorded.
		e2 := newExport(t, db)
		if err := db.SetStatusAsOf(ctx, e2.ID, at); err != nil {
			t.Fatal(err)
		}
		if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE exports SET flow_pending = 2 WHERE id = ?`), e2.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.ApplySynced(ctx, e2.ID, []store.SyncedChange{{Hash: emailaddr.Hash("a2@shop.io"), Set: &store.Synced{
			Email: "a2@shop.io", CustomerID: "c2", InAudience: true, InExport: true, Status: "subscribed"}}}); err != nil {
			t.Fatal(err)
		}
		var noted string
		if err := db.R.QueryRowContext(ctx, db.Q(`SELECT profile_status FROM synced WHERE export_id = ?`), e2.ID).Scan(&noted); err != nil || noted != "" {
			t.Fatalf("a contact recorded after the pass began is noted %q (%v)", noted, err)
		}
		if n, owed, err := db.FlowOwed(ctx, e2.ID, e2.AudienceID, at); err != nil || !owed || n != 1 || shows("c2") != "subscribed" {
			t.Fatalf("the pass again: FlowOwed %d, %v, %v; c2 shows %v", n, owed, err, shows("c2"))
		}
		// FlowOwed noted nothing: c2 is still due, and writing it again
		// changes no profile.
		if n, err := db.FlowStatuses(ctx, e2.ID, e2.AudienceID, at); err != nil || n != 0 {
			t.Fatalf("FlowStatuses after the pass wrote %d, %v", n, err)
		}
		if err := db.R.QueryRowContext(ctx, db.Q(`SELECT profile_status FROM synced WHERE export_id = ?`), e2.ID).Scan(&noted); err != nil || noted != "subscribed" {
			t.Fatalf("c2 noted %q (%v) after FlowStatuses", noted, err)
		}
	})
}
