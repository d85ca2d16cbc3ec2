package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/segsync/segsync/internal/store"
)

// Refreshes: a refresh is a row whose stage moves pulls -> exports -> done.
// Its progression is derived from the database (the state of its pulls and
// runs) by AdvanceRefreshes, which the scheduler calls on every tick and
// the pull workers after every pull; each move is a compare-and-set on the
// stage, so across processes the exports are queued exactly once.

// Refresh stages.
const (
	refreshPulls   = "pulls"
	refreshExports = "exports"
	refreshDone    = "done"
)

// CreateRefresh implements store.SourceStore.
func (db *DB) CreateRefresh(ctx context.Context, trigger, by string, scheduledFor *time.Time, sourceIDs []int64) (store.Refresh, bool, error) {
	var id int64
	created := true
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var sched any
		if scheduledFor != nil {
			sched = scheduledFor.UnixMicro()
		}
		err := tx.QueryRowContext(ctx, db.Q(`INSERT INTO refreshes (status, stage, trigger_kind, requested_by, created_at, scheduled_for)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`),
			store.RunRunning, refreshPulls, trigger, by, time.Now().UnixMicro(), sched).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			created = false
			return tx.QueryRowContext(ctx, db.Q(`SELECT id FROM refreshes WHERE scheduled_for = ?`), sched).Scan(&id)
		}
		if err != nil {
			return fmt.Errorf("recording a refresh: %w", err)
		}
		for _, src := range sourceIDs {
			p, _, err := db.enqueuePullTx(ctx, tx, src, store.TriggerRefresh, false, by)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, db.Q(`INSERT INTO refresh_pulls (refresh_id, pull_id) VALUES (?, ?)`), id, p.ID); err != nil {
				return fmt.Errorf("linking pull %d to refresh %d: %w", p.ID, id, err)
			}
		}
		return nil
	})
	if err != nil {
		return store.Refresh{}, false, fmt.Errorf("starting a refresh: %w", err)
	}
	r, err := db.GetRefresh(ctx, id)
	return r, created, err
}

// GetRefresh implements store.SourceStore.
func (db *DB) GetRefresh(ctx context.Context, id int64) (store.Refresh, error) {
	var r store.Refresh
	var cat, fat int64
	err := db.R.QueryRowContext(ctx, db.Q(`SELECT id, status, stage, trigger_kind, requested_by, created_at, finished_at FROM refreshes WHERE id = ?`), id).
		Scan(&r.ID, &r.Status, &r.Stage, &r.Trigger, &r.RequestedBy, &cat, &fat)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("refresh %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("reading refresh %d: %w", id, err)
	}
	r.CreatedAt = fromMicros(cat)
	if fat != 0 {
		t := fromMicros(fat)
		r.FinishedAt = &t
	}
	if r.Pulls, err = db.queryPulls(ctx, db.R, `SELECT `+pullColumns+` FROM pulls WHERE id IN (SELECT pull_id FROM refresh_pulls WHERE refresh_id = ?) ORDER BY id`, id); err != nil {
		return r, err
	}
	r.FailedPulls = []string{}
	for _, p := range r.Pulls {
		if p.Status == store.RunFailed || p.Status == store.RunCancelled {
			var name string
			if err := db.R.QueryRowContext(ctx, db.Q(`SELECT name FROM sources WHERE id = ?`), p.SourceID).Scan(&name); err != nil {
				name = fmt.Sprintf("source %d", p.SourceID)
			}
			r.FailedPulls = append(r.FailedPulls, name)
		}
	}
	r.Runs = []store.Run{}
	rows, err := db.R.QueryContext(ctx, db.Q(`SELECT run_id FROM refresh_runs WHERE refresh_id = ? ORDER BY run_id`), id)
	if err != nil {
		return r, fmt.Errorf("reading the runs of refresh %d: %w", id, err)
	}
	var runIDs []int64
	for rows.Next() {
		var rid int64
		if err := rows.Scan(&rid); err != nil {
			rows.Close()
			return r, err
		}
		runIDs = append(runIDs, rid)
	}
	rows.Close()
	for _, rid := range runIDs {
		run, err := db.GetRun(ctx, rid)
		if errors.Is(err, store.ErrNotFound) {
			continue // its export was deleted
		}
		if err != nil {
			return r, err
		}
		r.Runs = append(r.Runs, run)
	}
	return r, nil
}

// AdvanceRefreshes implements store.SourceStore.
func (db *DB) AdvanceRefreshes(ctx context.Context, exportIDs []int64) error {
	ids, err := db.idList(ctx, db.Q(`SELECT id FROM refreshes r WHERE stage = ? AND NOT EXISTS (SELECT 1 FROM refresh_pulls rp JOIN pulls p ON p.id = rp.pull_id
		WHERE rp.refresh_id = r.id AND p.status IN ('queued', 'running'))`), refreshPulls)
	if err != nil {
		return fmt.Errorf("looking for refreshes whose pulls ended: %w", err)
	}
	for _, id := range ids {
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, db.Q(`UPDATE refreshes SET stage = ? WHERE id = ? AND stage = ?`), refreshExports, id, refreshPulls)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return nil // another process moved it
			}
			for _, exp := range exportIDs {
				// As EnqueueRun: join the export's queued run if there is one.
				var run int64
				err := tx.QueryRowContext(ctx, db.Q(`INSERT INTO runs (export_id, status, trigger_kind, dry_run, requested_by, created_at)
					VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`),
					exp, store.RunQueued, store.TriggerRefresh, false, "", time.Now().UnixMicro()).Scan(&run)
				if errors.Is(err, sql.ErrNoRows) {
					err = tx.QueryRowContext(ctx, db.Q(`SELECT id FROM runs WHERE export_id = ? AND dry_run = ? AND status = ?`), exp, false, store.RunQueued).Scan(&run)
				}
				if err != nil {
					return fmt.Errorf("queueing export %d: %w", exp, err)
				}
				if _, err := tx.ExecContext(ctx, db.Q(`INSERT INTO refresh_runs (refresh_id, run_id) VALUES (?, ?) ON CONFLICT DO NOTHING`), id, run); err != nil {
					return fmt.Errorf("linking run %d: %w", run, err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("refresh %d: queueing its exports: %w", id, err)
		}
	}
	ids, err = db.idList(ctx, db.Q(`SELECT id FROM refreshes r WHERE stage = ? AND NOT EXISTS (SELECT 1 FROM refresh_runs rr JOIN runs x ON x.id = rr.run_id
		WHERE rr.refresh_id = r.id AND x.status IN ('queued', 'running'))`), refreshExports)
	if err != nil {
		return fmt.Errorf("looking for refreshes whose runs ended: %w", err)
	}
	for _, id := range ids {
		var bad int
		if err := db.R.QueryRowContext(ctx, db.Q(`SELECT
			(SELECT COUNT(*) FROM refresh_pulls rp JOIN pulls p ON p.id = rp.pull_id WHERE rp.refresh_id = ? AND p.status <> 'succeeded') +
			(SELECT COUNT(*) FROM refresh_runs rr JOIN runs x ON x.id = rr.run_id WHERE rr.refresh_id = ? AND x.status <> 'succeeded')`), id, id).Scan(&bad); err != nil {
			return fmt.Errorf("refresh %d: %w", id, err)
		}
		status := store.RunSucceeded
		if bad > 0 {
			status = store.RunPartiallySucceeded
		}
		if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE refreshes SET stage = ?, status = ?, finished_at = ? WHERE id = ? AND stage = ?`),
			refreshDone, status, time.Now().UnixMicro(), id, refreshExports); err != nil {
			return fmt.Errorf("finishing refresh %d: %w", id, err)
		}
	}
	return nil
}

func (db *DB) idList(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := db.R.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
