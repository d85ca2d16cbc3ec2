package sqldb_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// TestAnalyzeSyncedGrowth: on PostgreSQL, recording the first 10,000
// contacts of an export analyzes the synced state, so that its lookups by
// hash are planned for the table's real size (see syncedGrowth).
func TestAnalyzeSyncedGrowth(t *testing.T) {
	db := dbtest.Postgres(t)
	ctx := context.Background()
	e := newExport(t, db)
	reltuples := func() float64 {
		t.Helper()
		var n float64
		if err := db.R.QueryRowContext(ctx, `SELECT reltuples FROM pg_class WHERE oid = 'synced'::regclass`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	record := func(from, to int) {
		t.Helper()
		var changes []store.SyncedChange
		for i := from; i < to; i++ {
			changes = append(changes, store.SyncedChange{Hash: fmt.Sprintf("%032x", i), Set: &store.Synced{
				Email: fmt.Sprintf("p%d@shop.io", i), CustomerID: fmt.Sprintf("c%d", i), InAudience: true, InExport: true, Status: "subscribed"}})
		}
		if err := db.ApplySynced(ctx, e.ID, changes); err != nil {
			t.Fatal(err)
		}
	}
	record(0, 9000)
	if n := reltuples(); n > 0 {
		t.Fatalf("analyzed before 10,000 rows: reltuples %v", n)
	}
	record(9000, 10000)
	if n := reltuples(); n < 9000 {
		t.Fatalf("reltuples %v after 10,000 rows recorded, want about 10,000", n)
	}
}
