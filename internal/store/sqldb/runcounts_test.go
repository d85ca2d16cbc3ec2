package sqldb_test

import (
	"context"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// TestApplySyncedRun: the run's counts are saved with the changes while the
// caller holds the lease; the changes are kept when it no longer does, and
// counts alone (no change) are saved too.
func TestApplySyncedRun(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		e := newExport(t, db)
		run, _, err := db.EnqueueRun(ctx, e.ID, store.TriggerManual, false, "t")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, err := db.ClaimRun(ctx, "w1", time.Minute); err != nil || !ok {
			t.Fatalf("ClaimRun = %v, %v", ok, err)
		}
		row := func(h string) store.SyncedChange {
			return store.SyncedChange{Hash: h, Set: &store.Synced{Hash: h, Email: h + "@x.io", CustomerID: h, InAudience: true, InExport: true}}
		}
		steps := []struct {
			name    string
			changes []store.SyncedChange
			owner   string
			counts  store.RunCounts
			want    store.RunCounts
			synced  int
		}{
			{"changes with counts", []store.SyncedChange{row("a"), row("b")}, "w1", store.RunCounts{Created: 2}, store.RunCounts{Created: 2}, 2},
			{"counts alone", nil, "w1", store.RunCounts{Created: 2, Rejected: 1}, store.RunCounts{Created: 2, Rejected: 1}, 2},
			{"lease held by another", []store.SyncedChange{row("c")}, "w2", store.RunCounts{Created: 9}, store.RunCounts{Created: 2, Rejected: 1}, 3},
		}
		for _, s := range steps {
			if err := db.ApplySyncedRun(ctx, e.ID, s.changes, run.ID, s.owner, s.counts); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			got, err := db.GetRun(ctx, run.ID)
			if err != nil || got.Counts != s.want {
				t.Fatalf("%s: run counts %+v (%v), want %+v", s.name, got.Counts, err, s.want)
			}
			n := 0
			if err := db.StreamSynced(ctx, e.ID, func(store.Synced) error { n++; return nil }); err != nil || n != s.synced {
				t.Fatalf("%s: %d synced rows (%v), want %d", s.name, n, err, s.synced)
			}
		}
	})
}
