package sqldb

import (
	"context"
	"sync"
)

// syncedGrowth keeps PostgreSQL's planner statistics of the synced state in
// step with a first run, which grows the table from nothing to millions of
// rows in minutes, long before autovacuum analyzes it: with statistics of
// an empty table, the recorder's lookups by hash (export_id = ? AND hash IN
// (…)) were planned on the index synced_customer, reading every entry of
// the export for each 500 hashes (78 ms a statement at 110k rows, and a
// 200k first run lost its lease). Each time the rows recorded by this
// process reach the next threshold (10,000, then doubling), synced and
// synced_intents are analyzed: a few dozen milliseconds each time, a dozen
// times for ten million contacts.
type syncedGrowth struct {
	mu         sync.Mutex
	rows, next int64
}

// analyzeFrom is the first threshold of syncedGrowth.
const analyzeFrom = 10_000

// noteSyncedRows counts n recorded rows and analyzes the synced state's
// tables on PostgreSQL when they reach the next threshold. A failure is
// logged: statistics are an optimisation.
func (db *DB) noteSyncedRows(ctx context.Context, n int) {
	if db.d != Postgres || n == 0 {
		return
	}
	g := &db.synced
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rows += int64(n)
	if g.next == 0 {
		g.next = analyzeFrom
	}
	if g.rows < g.next {
		return
	}
	g.next = 2 * g.rows
	if _, err := db.W.ExecContext(ctx, `ANALYZE synced, synced_intents`); err != nil {
		db.log.Warn("analyzing the synced state", "err", err)
	}
}
