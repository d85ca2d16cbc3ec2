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

// TestApplySyncedRun: the run's counts are saved with the changes while the
// caller's claim holds the lease; nothing at all is written when it does not
// (another token, or a lease expired by the database's clock), and counts
// alone (no change) are saved too.
func TestApplySyncedRun(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		e := newExport(t, db)
		run, _, err := db.EnqueueRun(ctx, e.ID, store.TriggerManual, false, "t")
		if err != nil {
			t.Fatal(err)
		}
		claim, ok, err := db.ClaimRun(ctx, "w1", time.Minute)
		if err != nil || !ok {
			t.Fatalf("ClaimRun = %v, %v", ok, err)
		}
		w1 := claim.LeaseToken
		row := func(h string) store.SyncedChange {
			return store.SyncedChange{Hash: h, Set: &store.Synced{Hash: h, Email: h + "@x.io", CustomerID: h, InAudience: true, InExport: true}}
		}
		steps := []struct {
			name    string
			changes []store.SyncedChange
			token   string
			counts  store.RunCounts
			lost    bool
			want    store.RunCounts
			synced  int
		}{
			{"changes with counts", []store.SyncedChange{row("a"), row("b")}, w1, store.RunCounts{Created: 2}, false, store.RunCounts{Created: 2}, 2},
			{"counts alone", nil, w1, store.RunCounts{Created: 2, Rejected: 1}, false, store.RunCounts{Created: 2, Rejected: 1}, 2},
			{"another claim's token", []store.SyncedChange{row("c")}, "ffffffffffffffffffffffffffffffff", store.RunCounts{Created: 9}, true, store.RunCounts{Created: 2, Rejected: 1}, 2},
			{"no token", []store.SyncedChange{row("c")}, "", store.RunCounts{Created: 9}, true, store.RunCounts{Created: 2, Rejected: 1}, 2},
		}
		for _, s := range steps {
			err := db.ApplySyncedRun(ctx, e.ID, s.changes, run.ID, s.token, s.counts)
			if s.lost != errors.Is(err, store.ErrLeaseLost) || (!s.lost && err != nil) {
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
