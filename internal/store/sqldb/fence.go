package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/segsync/segsync/internal/store"
)

// fencedTx runs fn in a write transaction that then checks, with a
// row-locking UPDATE of the run, that claim f still holds (nil f: no
// check), and commits. Holding the run's row until the commit orders the
// transaction before any later claim of the run: a new claimer waits for
// it and then sees its writes; a transaction that finds a new claim (one
// committed while fn ran, too) writes nothing and returns
// store.ErrLeaseLost. The check comes last so that the run's row is
// locked only for the commit: checked first, it was locked for the whole
// transaction, and on PostgreSQL the run's heartbeats (an UPDATE of the
// same row) queued behind back-to-back recording transactions until the
// lease was lost (a 200k first run at latency 0 lost it after 88 s).
//
// On PostgreSQL the session is ended by the server when the transaction
// sits idle for fencedIdleTimeout: a process frozen in the middle of one
// (SIGSTOP, a stalled VM) would otherwise hold the synced rows it wrote
// locked, and the worker taking the run over would wait on them for as
// long as it stays frozen.
func (db *DB) fencedTx(ctx context.Context, f *store.RunLease, fn func(tx *sql.Tx) error) error {
	if f != nil {
		// Parsed once per process, not once per transaction.
		if err := db.prepareCached(ctx, db.fenceCheckQuery()); err != nil {
			return fmt.Errorf("checking the lease of run %d: %w", f.RunID, err)
		}
	}
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if db.d == Postgres {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SET LOCAL idle_in_transaction_session_timeout = %d`,
				fencedIdleTimeout.Milliseconds())); err != nil {
				return fmt.Errorf("bounding the transaction's idle time: %w", err)
			}
		}
		if err := fn(tx); err != nil {
			return err
		}
		if f != nil {
			return db.checkFence(ctx, tx, *f)
		}
		return nil
	})
}

func (db *DB) checkFence(ctx context.Context, tx *sql.Tx, l store.RunLease) error {
	if l.Token == "" {
		return leaseLost(l)
	}
	st, err := db.txStmt(ctx, tx, db.fenceCheckQuery())
	if err != nil {
		return fmt.Errorf("checking the lease of run %d: %w", l.RunID, err)
	}
	defer st.Close()
	res, err := st.ExecContext(ctx, fenceArgs(l)...)
	if err != nil {
		return fmt.Errorf("checking the lease of run %d: %w", l.RunID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return leaseLost(l)
	}
	return nil
}

func (db *DB) fenceCheckQuery() string {
	return db.Q(`UPDATE runs SET lease_token = lease_token WHERE ` + db.fenceWhere())
}

// fencedIdleTimeout is how long a fenced transaction may wait for its
// client between statements on PostgreSQL.
const fencedIdleTimeout = 5 * time.Second

// Fenced is the store as one claim of a run sees it: every write the engine
// makes while the run is in flight (acknowledgements and create intents,
// statuses, archived contacts, tag bits, the status time, rejections) is
// done in a transaction fenced by the claim, and fails with
// store.ErrLeaseLost, writing nothing, once the claim no longer holds.
// Reads pass through to the DB.
type Fenced struct {
	*DB
	lease store.RunLease
}

// Fenced returns the store as claim l sees it.
func (db *DB) Fenced(l store.RunLease) *Fenced { return &Fenced{DB: db, lease: l} }

// Lease is the claim the writes are fenced by.
func (f *Fenced) Lease() store.RunLease { return f.lease }

// ApplySynced records acknowledged changes under the claim.
func (f *Fenced) ApplySynced(ctx context.Context, exportID int64, changes []store.SyncedChange) error {
	return f.DB.applySynced(ctx, &f.lease, exportID, changes, nil)
}

// ApplySyncedRun records acknowledged changes and the run's counts under
// the claim (the run and token given must be the claim's).
func (f *Fenced) ApplySyncedRun(ctx context.Context, exportID int64, changes []store.SyncedChange, runID int64, token string, c store.RunCounts) error {
	if runID != f.lease.RunID || token != f.lease.Token {
		return fmt.Errorf("run %d: counts of another claim (run %d): %w", f.lease.RunID, runID, store.ErrLeaseLost)
	}
	return f.DB.ApplySyncedRun(ctx, exportID, changes, runID, token, c)
}

// AddIntents notes create intents under the claim.
func (f *Fenced) AddIntents(ctx context.Context, exportID int64, intents []store.Intent) (int64, error) {
	return f.DB.addIntents(ctx, &f.lease, exportID, intents)
}

// LeftIntents reads (and tidies) the intents earlier runs left under the
// claim.
func (f *Fenced) LeftIntents(ctx context.Context, exportID int64) (map[string]string, error) {
	return f.DB.leftIntents(ctx, &f.lease, exportID)
}

// ExportTags assigns tag bits under the claim.
func (f *Fenced) ExportTags(ctx context.Context, exportID int64, names []string) (map[string]int, error) {
	return f.DB.exportTags(ctx, &f.lease, exportID, names)
}

// ReleaseUnusedTags frees unused tag bits under the claim.
func (f *Fenced) ReleaseUnusedTags(ctx context.Context, exportID int64) error {
	return f.DB.releaseUnusedTags(ctx, &f.lease, exportID)
}

// UpdateSyncedStatuses records statuses under the claim.
func (f *Fenced) UpdateSyncedStatuses(ctx context.Context, exportID int64, statuses map[string]string) error {
	return f.DB.updateSyncedStatuses(ctx, &f.lease, exportID, statuses)
}

// RecordArchived records archived contacts under the claim.
func (f *Fenced) RecordArchived(ctx context.Context, exportID int64, emails map[string]string) error {
	return f.DB.recordArchived(ctx, &f.lease, exportID, emails)
}

// SetStatusAsOf records the status refresh time under the claim.
func (f *Fenced) SetStatusAsOf(ctx context.Context, exportID int64, t time.Time) error {
	return f.DB.setStatusAsOf(ctx, &f.lease, exportID, t)
}

// FlowStatuses writes statuses on profiles; settling an owed full pass is
// fenced by the claim.
func (f *Fenced) FlowStatuses(ctx context.Context, exportID int64, audienceID string, at time.Time) (int64, error) {
	n, _, err := f.DB.flowStatuses(ctx, &f.lease, exportID, audienceID, at, false)
	return n, err
}

// FlowOwed does an owed full pass of the flow-back; settling it is fenced
// by the claim.
func (f *Fenced) FlowOwed(ctx context.Context, exportID int64, audienceID string, at time.Time) (int64, bool, error) {
	return f.DB.flowStatuses(ctx, &f.lease, exportID, audienceID, at, true)
}

// AddRejections records the claim's run's rejections under the claim.
func (f *Fenced) AddRejections(ctx context.Context, runID int64, rs []store.Rejection) error {
	if runID != f.lease.RunID {
		return fmt.Errorf("run %d: rejections of run %d: %w", f.lease.RunID, runID, store.ErrLeaseLost)
	}
	return f.DB.addRejections(ctx, &f.lease, runID, rs)
}

// FenceRun is Fenced as a store.RunScoped (store.RunFencer).
func (db *DB) FenceRun(l store.RunLease) store.RunScoped { return db.Fenced(l) }
