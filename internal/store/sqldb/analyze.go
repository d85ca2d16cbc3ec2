package sqldb

import (
	"context"
	"sync"
)

// syncedGrowth keeps PostgreSQL's planner statistics of the synced state in
// step with a first run, which grows an export's rows from nothing to
// millions in minutes, long before autovacuum analyzes the table: with
// statistics that know no rows of the export, the recorder's lookups by
// hash (export_id = ? AND hash IN (…)) were planned on the index
// synced_customer, reading every entry of the export for each 500 hashes
// (78 ms a statement at 110k rows, and a 200k first run lost its lease).
// Each time the rows this process recorded for an export reach its next
// threshold (10,000, then doubling), synced is analyzed: a few dozen
// milliseconds each time, a dozen times for ten million contacts.
type syncedGrowth struct {
	mu     sync.Mutex
	export map[int64]*growth
}

// growth is the rows recorded for one export and the next threshold.
type growth struct{ rows, next int64 }

// analyzeFrom is the first threshold of syncedGrowth.
const analyzeFrom = 10_000

// noteSyncedRows counts n rows recorded for an export and analyzes the
// synced state's tables on PostgreSQL when they reach the export's next
// threshold. A failure is logged: statistics are an optimisation.
func (db *DB) noteSyncedRows(ctx context.Context, exportID int64, n int) {
	if db.d != Postgres || n == 0 {
		return
	}
	g := &db.synced
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.export == nil {
		g.export = map[int64]*growth{}
	}
	e := g.export[exportID]
	if e == nil {
		e = &growth{next: analyzeFrom}
		g.export[exportID] = e
	}
	if e.rows += int64(n); e.rows < e.next {
		return
	}
	e.next = 2 * e.rows
	if _, err := db.W.ExecContext(ctx, `ANALYZE synced`); err != nil {
		db.log.Warn("analyzing the synced state", "err", err)
	}
}
