package sqldb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segsync/segsync/internal/store"
)

const runColumns = `id, export_id, status, trigger_kind, dry_run, requested_by, created_at, started_at, finished_at,
	done, total, counts, sample, error, cancel_requested, lease_owner, attempts, lease_token, timings`

func scanRun(r rowScanner) (store.Run, error) {
	var (
		run           store.Run
		cat, sat, fat int64
		counts        string
		sample        string
		timings       string
	)
	if err := r.Scan(&run.ID, &run.ExportID, &run.Status, &run.Trigger, &run.DryRun, &run.RequestedBy, &cat, &sat, &fat,
		&run.Progress.Done, &run.Progress.Total, &counts, &sample, &run.Error, &run.CancelRequested, &run.LeaseOwner,
		&run.Attempts, &run.LeaseToken, &timings); err != nil {
		return run, err
	}
	run.CreatedAt = fromMicros(cat)
	if sat != 0 {
		t := fromMicros(sat)
		run.StartedAt = &t
	}
	if fat != 0 {
		t := fromMicros(fat)
		run.FinishedAt = &t
	}
	if err := json.Unmarshal([]byte(counts), &run.Counts); err != nil {
		return run, fmt.Errorf("run %d: counts: %w", run.ID, err)
	}
	if err := json.Unmarshal([]byte(timings), &run.Timings); err != nil {
		return run, fmt.Errorf("run %d: timings: %w", run.ID, err)
	}
	if sample != "" && sample != "{}" {
		if err := json.Unmarshal([]byte(sample), &run.Sample); err != nil {
			return run, fmt.Errorf("run %d: sample: %w", run.ID, err)
		}
	}
	return run, nil
}

// EnqueueRun queues a run unless one of the same kind is already queued.
func (db *DB) EnqueueRun(ctx context.Context, exportID int64, trigger string, dryRun bool, requestedBy string) (store.Run, bool, error) {
	for attempt := 0; attempt < 5; attempt++ {
		var id int64
		err := db.W.QueryRowContext(ctx, db.Q(`INSERT INTO runs (export_id, status, trigger_kind, dry_run, requested_by, created_at)
			VALUES (?, ?, ?, ?, ?, `+db.nowMicros()+`) ON CONFLICT DO NOTHING RETURNING id`),
			exportID, store.RunQueued, trigger, dryRun, requestedBy).Scan(&id)
		created := true
		if errors.Is(err, sql.ErrNoRows) {
			created = false
			err = db.W.QueryRowContext(ctx, db.Q(`SELECT id FROM runs WHERE export_id = ? AND dry_run = ? AND status = ?`),
				exportID, dryRun, store.RunQueued).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				continue // the queued run was claimed meanwhile: try again
			}
		}
		if err != nil {
			return store.Run{}, false, fmt.Errorf("queueing a run of export %d: %w", exportID, err)
		}
		r, err := db.GetRun(ctx, id)
		return r, created, err
	}
	return store.Run{}, false, fmt.Errorf("queueing a run of export %d: %w", exportID, store.ErrConflict)
}

// GetRun reads one run.
func (db *DB) GetRun(ctx context.Context, id int64) (store.Run, error) {
	r, err := scanRun(db.R.QueryRowContext(ctx, db.Q(`SELECT `+runColumns+` FROM runs WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("run %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("reading run %d: %w", id, err)
	}
	return r, nil
}

// ListRuns lists an export's runs, newest first.
func (db *DB) ListRuns(ctx context.Context, exportID int64, limit int) ([]store.Run, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.R.QueryContext(ctx, db.Q(`SELECT `+runColumns+` FROM runs WHERE export_id = ? ORDER BY id DESC LIMIT ?`), exportID, limit)
	if err != nil {
		return nil, fmt.Errorf("listing runs of export %d: %w", exportID, err)
	}
	defer rows.Close()
	out := []store.Run{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("listing runs of export %d: %w", exportID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// newLeaseToken is a claim's fencing token: 128 random bits.
func newLeaseToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making a lease token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ClaimRun leases a run whose lease expired, or the oldest startable queued
// run, under a fresh token. Every time is the database's: the processes'
// clocks play no part in who holds a run.
func (db *DB) ClaimRun(ctx context.Context, owner string, lease time.Duration) (store.Run, bool, error) {
	token, err := newLeaseToken()
	if err != nil {
		return store.Run{}, false, err
	}
	now := db.nowMicros()
	// A running run whose lease expired was left by a worker that died or
	// stopped: resume it. A live lease is never taken, whoever asks (the
	// same owner string included: a worker that lost its claim must not
	// get it back by name).
	var id int64
	err = db.W.QueryRowContext(ctx, db.Q(`SELECT id FROM runs WHERE status = ? AND lease_until < `+now+` ORDER BY id LIMIT 1`),
		store.RunRunning).Scan(&id)
	switch {
	case err == nil:
		res, err := db.W.ExecContext(ctx, db.Q(`UPDATE runs SET lease_owner = ?, lease_token = ?, lease_until = `+now+` + ?,
			attempts = attempts + 1 WHERE id = ? AND status = ? AND lease_until < `+now),
			owner, token, lease.Microseconds(), id, store.RunRunning)
		if err != nil {
			return store.Run{}, false, fmt.Errorf("claiming run %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			r, err := db.GetRun(ctx, id)
			return r, err == nil, err
		}
	case !errors.Is(err, sql.ErrNoRows):
		return store.Run{}, false, fmt.Errorf("looking for abandoned runs: %w", err)
	}
	rows, err := db.W.QueryContext(ctx, db.Q(`SELECT id FROM runs q WHERE status = ? AND NOT EXISTS
		(SELECT 1 FROM runs r WHERE r.export_id = q.export_id AND r.status = ?) ORDER BY id LIMIT 10`),
		store.RunQueued, store.RunRunning)
	if err != nil {
		return store.Run{}, false, fmt.Errorf("looking for queued runs: %w", err)
	}
	var ids []int64
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return store.Run{}, false, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		res, err := db.W.ExecContext(ctx, db.Q(`UPDATE runs SET status = ?, started_at = `+now+`, lease_owner = ?, lease_token = ?,
			lease_until = `+now+` + ?, attempts = attempts + 1 WHERE id = ? AND status = ?`),
			store.RunRunning, owner, token, lease.Microseconds(), id, store.RunQueued)
		if err != nil {
			// Most likely another process started a run of the same export
			// first (runs_one_running); leave this one queued.
			db.log.Debug("run not claimed", "run", id, "err", err)
			continue
		}
		if n, _ := res.RowsAffected(); n == 1 {
			r, err := db.GetRun(ctx, id)
			return r, err == nil, err
		}
	}
	return store.Run{}, false, nil
}

func marshalCounts(c store.RunCounts) string {
	b, _ := json.Marshal(c)
	return string(b)
}

func marshalTimings(t store.RunTimings) string {
	b, _ := json.Marshal(t)
	return string(b)
}

// fenceWhere is the condition every write of a run's worker carries: the
// run still bears the claim's token and its lease has not expired by the
// database's clock. Its arguments are fenceArgs.
func (db *DB) fenceWhere() string {
	return `id = ? AND lease_token = ? AND status = 'running' AND lease_until > ` + db.nowMicros()
}

func fenceArgs(l store.RunLease) []any { return []any{l.RunID, l.Token} }

// leaseLost is the error of a fenced write that matched no row.
func leaseLost(l store.RunLease) error {
	return fmt.Errorf("run %d: %w", l.RunID, store.ErrLeaseLost)
}

// HeartbeatRun extends a lease and saves progress; it reports a requested cancel.
func (db *DB) HeartbeatRun(ctx context.Context, l store.RunLease, lease time.Duration, p store.Progress, c store.RunCounts, t store.RunTimings) (bool, error) {
	if l.Token == "" {
		return false, leaseLost(l)
	}
	var cancel bool
	args := append([]any{lease.Microseconds(), p.Done, p.Total, marshalCounts(c), marshalTimings(t)}, fenceArgs(l)...)
	err := db.W.QueryRowContext(ctx, db.Q(`UPDATE runs SET lease_until = `+db.nowMicros()+` + ?, done = ?, total = ?, counts = ?, timings = ?
		WHERE `+db.fenceWhere()+` RETURNING cancel_requested`), args...).Scan(&cancel)
	if errors.Is(err, sql.ErrNoRows) {
		return false, leaseLost(l)
	}
	if err != nil {
		return false, fmt.Errorf("heartbeat of run %d: %w", l.RunID, err)
	}
	return cancel, nil
}

// ReleaseRun lets the lease of claim l expire at once.
func (db *DB) ReleaseRun(ctx context.Context, l store.RunLease, p store.Progress, c store.RunCounts, t store.RunTimings) error {
	if l.Token == "" {
		return leaseLost(l)
	}
	args := append([]any{p.Done, p.Total, marshalCounts(c), marshalTimings(t)}, fenceArgs(l)...)
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE runs SET lease_until = 0, lease_token = '', done = ?, total = ?, counts = ?, timings = ?
		WHERE `+db.fenceWhere()), args...)
	if err != nil {
		return fmt.Errorf("releasing run %d: %w", l.RunID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return leaseLost(l)
	}
	return nil
}

// FinishRun ends the run of claim l.
func (db *DB) FinishRun(ctx context.Context, l store.RunLease, status string, p store.Progress, c store.RunCounts, t store.RunTimings, sample store.RunSample, errMsg string) error {
	if l.Token == "" {
		return leaseLost(l)
	}
	smp := "{}"
	if len(sample) > 0 {
		b, err := json.Marshal(sample)
		if err != nil {
			return fmt.Errorf("finishing run %d: %w", l.RunID, err)
		}
		smp = string(b)
	}
	args := append([]any{status, p.Done, p.Total, marshalCounts(c), marshalTimings(t), smp, errMsg}, fenceArgs(l)...)
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE runs SET status = ?, finished_at = `+db.nowMicros()+`, done = ?, total = ?, counts = ?, timings = ?,
		sample = ?, error = ?, lease_owner = '', lease_token = '', lease_until = 0 WHERE `+db.fenceWhere()), args...)
	if err != nil {
		return fmt.Errorf("finishing run %d: %w", l.RunID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return leaseLost(l)
	}
	return nil
}

// CancelRun cancels a queued run at once, or asks a running one to stop.
func (db *DB) CancelRun(ctx context.Context, id int64) (store.Run, error) {
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE runs SET status = ?, finished_at = `+db.nowMicros()+`, cancel_requested = ?
		WHERE id = ? AND status = ?`), store.RunCancelled, true, id, store.RunQueued)
	if err != nil {
		return store.Run{}, fmt.Errorf("cancelling run %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE runs SET cancel_requested = ? WHERE id = ? AND status = ?`),
			true, id, store.RunRunning); err != nil {
			return store.Run{}, fmt.Errorf("cancelling run %d: %w", id, err)
		}
	}
	return db.GetRun(ctx, id)
}

// AddRejections stores a run's rejected contacts.
func (db *DB) AddRejections(ctx context.Context, runID int64, rs []store.Rejection) error {
	return db.addRejections(ctx, nil, runID, rs)
}

func (db *DB) addRejections(ctx context.Context, f *store.RunLease, runID int64, rs []store.Rejection) error {
	if len(rs) == 0 {
		return nil
	}
	err := db.fencedTx(ctx, f, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, db.Q(`INSERT INTO run_rejections (run_id, email, customer_id, reason, kind) VALUES (?, ?, ?, ?, ?)`))
		if err != nil {
			return err
		}
		defer st.Close()
		for _, r := range rs {
			if _, err := st.ExecContext(ctx, runID, r.Email, r.CustomerID, r.Reason, r.Kind); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording rejections of run %d: %w", runID, err)
	}
	return nil
}

// StreamRejections streams a run's rejections in order.
func (db *DB) StreamRejections(ctx context.Context, runID int64, fn func(store.Rejection) error) error {
	rows, err := db.R.QueryContext(ctx, db.Q(`SELECT email, customer_id, reason, kind FROM run_rejections WHERE run_id = ? ORDER BY id`), runID)
	if err != nil {
		return fmt.Errorf("reading rejections of run %d: %w", runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r store.Rejection
		if err := rows.Scan(&r.Email, &r.CustomerID, &r.Reason, &r.Kind); err != nil {
			return fmt.Errorf("reading rejections of run %d: %w", runID, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}
