package sqldb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// TestFencedWrites: every write a run's engine makes through the store
// fenced by its claim succeeds while the claim holds, and writes nothing,
// failing with ErrLeaseLost, once the lease expired by the database's clock
// or the run was claimed again.
func TestFencedWrites(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		e := newExport(t, db)
		if _, _, err := db.EnqueueRun(ctx, e.ID, store.TriggerManual, false, "t"); err != nil {
			t.Fatal(err)
		}
		// A lease that expires 300 ms after the claim, by the database.
		c1, ok, err := db.ClaimRun(ctx, "w1", 300*time.Millisecond)
		if err != nil || !ok {
			t.Fatalf("ClaimRun = %v, %v", ok, err)
		}
		row := func(h string) store.SyncedChange {
			return store.SyncedChange{Hash: h, Set: &store.Synced{Hash: h, Email: h + "@x.io", CustomerID: h, InAudience: true}}
		}
		writes := []struct {
			name  string
			write func(f store.RunScoped) error
		}{
			{"ApplySynced", func(f store.RunScoped) error { return f.ApplySynced(ctx, e.ID, []store.SyncedChange{row("a")}) }},
			{"ApplySyncedRun", func(f store.RunScoped) error {
				return f.ApplySyncedRun(ctx, e.ID, []store.SyncedChange{row("b")}, c1.ID, f.(*sqldb.Fenced).Lease().Token, store.RunCounts{Created: 1})
			}},
			{"UpdateSyncedStatuses", func(f store.RunScoped) error {
				return f.UpdateSyncedStatuses(ctx, e.ID, map[string]string{"a": "unsubscribed"})
			}},
			{"RecordArchived", func(f store.RunScoped) error { return f.RecordArchived(ctx, e.ID, map[string]string{"c": "c@x.io"}) }},
			{"SetStatusAsOf", func(f store.RunScoped) error { return f.SetStatusAsOf(ctx, e.ID, time.Unix(1000, 0)) }},
			{"ExportTags", func(f store.RunScoped) error { _, err := f.ExportTags(ctx, e.ID, []string{"Gold"}); return err }},
			{"ReleaseUnusedTags", func(f store.RunScoped) error { return f.ReleaseUnusedTags(ctx, e.ID) }},
			{"AddRejections", func(f store.RunScoped) error {
				return f.AddRejections(ctx, c1.ID, []store.Rejection{{Email: "r@x.io", CustomerID: "r", Reason: "x", Kind: "transient"}})
			}},
		}
		state := func() (synced, rejections int, asOf time.Time, counts store.RunCounts) {
			t.Helper()
			if err := db.StreamSynced(ctx, e.ID, func(store.Synced) error { synced++; return nil }); err != nil {
				t.Fatal(err)
			}
			if err := db.StreamRejections(ctx, c1.ID, func(store.Rejection) error { rejections++; return nil }); err != nil {
				t.Fatal(err)
			}
			asOf, _ = db.StatusAsOf(ctx, e.ID)
			r, _ := db.GetRun(ctx, c1.ID)
			return synced, rejections, asOf, r.Counts
		}

		var f store.RunScoped = db.Fenced(store.RunLease{RunID: c1.ID, Token: c1.LeaseToken})
		for _, w := range writes {
			if err := w.write(f); err != nil {
				t.Fatalf("%s under a live claim: %v", w.name, err)
			}
		}
		synced, rejections, asOf, counts := state()
		if synced != 3 || rejections != 1 || asOf.Unix() != 1000 || counts.Created != 1 {
			t.Fatalf("after the writes: %d synced, %d rejections, as of %v, counts %+v", synced, rejections, asOf, counts)
		}

		// The lease expires by the database's clock: nothing is written.
		time.Sleep(400 * time.Millisecond)
		expired := func(name string) {
			t.Helper()
			for _, w := range writes {
				if err := w.write(f); !errors.Is(err, store.ErrLeaseLost) {
					t.Errorf("%s, %s: %v, want ErrLeaseLost", name, w.name, err)
				}
			}
			s2, r2, a2, c2 := state()
			if s2 != synced || r2 != rejections || !a2.Equal(asOf) || c2 != counts {
				t.Errorf("%s: the refused writes changed the state: %d synced, %d rejections, as of %v, counts %+v", name, s2, r2, a2, c2)
			}
		}
		expired("lease expired")
		if _, err := db.HeartbeatRun(ctx, store.RunLease{RunID: c1.ID, Token: c1.LeaseToken}, time.Minute, store.Progress{}, store.RunCounts{}, store.RunTimings{}); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("heartbeat of an expired lease: %v", err)
		}

		// Claimed again: the old claim stays fenced off; the new one writes.
		c2, ok, err := db.ClaimRun(ctx, "w1", time.Minute)
		if err != nil || !ok || c2.ID != c1.ID || c2.LeaseToken == c1.LeaseToken {
			t.Fatalf("second ClaimRun = %+v, %v, %v", c2, ok, err)
		}
		expired("claimed again")
		if err := db.Fenced(store.RunLease{RunID: c2.ID, Token: c2.LeaseToken}).ApplySynced(ctx, e.ID, []store.SyncedChange{row("d")}); err != nil {
			t.Fatalf("write of the new claim: %v", err)
		}
	})
}
