package sqldb_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// TestAdvanceScheduleOnce: of many processes advancing the same due
// schedule at once, exactly one wins.
func TestAdvanceScheduleOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		e := newExport(t, db)
		prev, err := db.LastScheduled(ctx, e.ID)
		if err != nil || !prev.IsZero() {
			t.Fatalf("LastScheduled = %v, %v; want zero", prev, err)
		}
		now := time.Now().UTC()
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				ok, err := db.AdvanceSchedule(ctx, e.ID, prev, now.Add(time.Duration(i)*time.Microsecond))
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d winners, want 1", n)
		}
		// The next round starts from the value the winner wrote.
		last, err := db.LastScheduled(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := db.AdvanceSchedule(ctx, e.ID, prev, now.Add(time.Hour)); err != nil || ok {
			t.Fatalf("advancing from a stale value: %v, %v", ok, err)
		}
		if ok, err := db.AdvanceSchedule(ctx, e.ID, last, now.Add(time.Hour)); err != nil || !ok {
			t.Fatalf("advancing from the current value: %v, %v", ok, err)
		}
	})
}
