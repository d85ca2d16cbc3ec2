package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/store"
)

const pullColumns = `id, source_id, refresh_id, status, trigger_kind, allow_shrink, requested_by, created_at, started_at,
	finished_at, counts, errors, error, cancel_requested, attempts`

func scanPull(r rowScanner) (store.Pull, error) {
	var (
		p             store.Pull
		refresh       sql.NullInt64
		cat, sat, fat int64
		counts, errs  string
	)
	if err := r.Scan(&p.ID, &p.SourceID, &refresh, &p.Status, &p.Trigger, &p.AllowShrink, &p.RequestedBy, &cat, &sat, &fat,
		&counts, &errs, &p.Error, &p.CancelRequested, &p.Attempts); err != nil {
		return p, err
	}
	if refresh.Valid {
		p.RefreshID = &refresh.Int64
	}
	p.CreatedAt = fromMicros(cat)
	if sat != 0 {
		t := fromMicros(sat)
		p.StartedAt = &t
	}
	if fat != 0 {
		t := fromMicros(fat)
		p.FinishedAt = &t
	}
	if err := json.Unmarshal([]byte(counts), &p.Counts); err != nil {
		return p, fmt.Errorf("pull %d: counts: %w", p.ID, err)
	}
	if err := json.Unmarshal([]byte(errs), &p.Errors); err != nil {
		return p, fmt.Errorf("pull %d: errors: %w", p.ID, err)
	}
	if p.Errors == nil {
		p.Errors = []store.PullError{}
	}
	return p, nil
}

// EnqueuePull implements store.SourceStore.
func (db *DB) EnqueuePull(ctx context.Context, sourceID int64, refreshID *int64, trigger string, allowShrink bool, by string) (store.Pull, bool, error) {
	var ref any
	if refreshID != nil {
		ref = *refreshID
	}
	p, err := scanPull(db.W.QueryRowContext(ctx, db.Q(`INSERT INTO pulls (source_id, refresh_id, status, trigger_kind, allow_shrink,
		requested_by, created_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING `+pullColumns),
		sourceID, ref, store.RunQueued, trigger, allowShrink, by, time.Now().UnixMicro()))
	if err == nil {
		return p, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		if fkViolation(err) {
			return p, false, fmt.Errorf("source %d: %w", sourceID, store.ErrNotFound)
		}
		return p, false, fmt.Errorf("queueing a pull of source %d: %w", sourceID, err)
	}
	// One is queued already (pulls_one_queued): that one stands for this
	// request too; a refresh adopts it when it has none.
	p, err = scanPull(db.W.QueryRowContext(ctx, db.Q(`SELECT `+pullColumns+` FROM pulls WHERE source_id = ? AND status = ?`),
		sourceID, store.RunQueued))
	if err != nil {
		return p, false, fmt.Errorf("reading the queued pull of source %d: %w", sourceID, err)
	}
	if refreshID != nil && p.RefreshID == nil {
		if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE pulls SET refresh_id = ? WHERE id = ? AND refresh_id IS NULL`), *refreshID, p.ID); err != nil {
			return p, false, fmt.Errorf("attaching pull %d to refresh %d: %w", p.ID, *refreshID, err)
		}
		p.RefreshID = refreshID
	}
	if allowShrink && !p.AllowShrink {
		if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE pulls SET allow_shrink = ? WHERE id = ?`), true, p.ID); err != nil {
			return p, false, err
		}
		p.AllowShrink = true
	}
	return p, false, nil
}

func fkViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "FOREIGN KEY constraint failed") || strings.Contains(msg, "SQLSTATE 23503")
}

// GetPull implements store.SourceStore.
func (db *DB) GetPull(ctx context.Context, id int64) (store.Pull, error) {
	p, err := scanPull(db.W.QueryRowContext(ctx, db.Q(`SELECT `+pullColumns+` FROM pulls WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("pull %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("reading pull %d: %w", id, err)
	}
	return p, nil
}

func (db *DB) listPulls(ctx context.Context, where string, args ...any) ([]store.Pull, error) {
	rows, err := db.W.QueryContext(ctx, db.Q(`SELECT `+pullColumns+` FROM pulls WHERE `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("listing pulls: %w", err)
	}
	defer rows.Close()
	out := []store.Pull{}
	for rows.Next() {
		p, err := scanPull(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ListPulls implements store.SourceStore: newest first.
func (db *DB) ListPulls(ctx context.Context, sourceID int64, limit int) ([]store.Pull, error) {
	if limit <= 0 {
		limit = 100
	}
	return db.listPulls(ctx, `source_id = ? ORDER BY id DESC LIMIT ?`, sourceID, limit)
}

// LastPull implements store.SourceStore.
func (db *DB) LastPull(ctx context.Context, sourceID int64) (store.Pull, bool, error) {
	ps, err := db.ListPulls(ctx, sourceID, 1)
	if err != nil || len(ps) == 0 {
		return store.Pull{}, false, err
	}
	return ps[0], true, nil
}

// RefreshPulls implements store.SourceStore.
func (db *DB) RefreshPulls(ctx context.Context, refreshID int64) ([]store.Pull, error) {
	return db.listPulls(ctx, `refresh_id = ? ORDER BY id`, refreshID)
}

// ClaimPull implements store.SourceStore. Lease times are the database's.
func (db *DB) ClaimPull(ctx context.Context, l store.Lease) (store.Pull, bool, error) {
	now := db.nowMicros()
	var claimed int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		claimed = 0
		// A running pull whose lease expired was left by a dead or frozen
		// process: it starts again from scratch under a new token.
		var id int64
		err := tx.QueryRowContext(ctx, db.Q(`SELECT id FROM pulls WHERE status = ? AND lease_until < `+now+` ORDER BY id LIMIT 1`),
			store.RunRunning).Scan(&id)
		switch {
		case err == nil:
			res, err := tx.ExecContext(ctx, db.Q(`UPDATE pulls SET lease_token = ?, lease_until = `+now+` + ?, attempts = attempts + 1,
				counts = '{}', errors = '[]' WHERE id = ? AND status = ? AND lease_until < `+now), l.Token, l.TTL.Microseconds(), id, store.RunRunning)
			if err != nil {
				return fmt.Errorf("claiming pull %d: %w", id, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM pull_stage WHERE pull_id = ?`), id); err != nil {
					return fmt.Errorf("dropping the stage of pull %d: %w", id, err)
				}
				claimed = id
				return nil
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("looking for abandoned pulls: %w", err)
		}
		err = tx.QueryRowContext(ctx, db.Q(`SELECT id FROM pulls q WHERE status = ? AND NOT EXISTS
			(SELECT 1 FROM pulls r WHERE r.source_id = q.source_id AND r.status = ?) ORDER BY id LIMIT 1`),
			store.RunQueued, store.RunRunning).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("looking for queued pulls: %w", err)
		}
		res, err := tx.ExecContext(ctx, db.Q(`UPDATE pulls SET status = ?, started_at = `+now+`, lease_token = ?, lease_until = `+now+` + ?,
			attempts = attempts + 1 WHERE id = ? AND status = ?`), store.RunRunning, l.Token, l.TTL.Microseconds(), id, store.RunQueued)
		if err != nil {
			return fmt.Errorf("claiming pull %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			claimed = id
		}
		return nil
	})
	if err != nil || claimed == 0 {
		if err != nil && uniqueViolation(err) {
			return store.Pull{}, false, nil // another process started this source's pull first
		}
		return store.Pull{}, false, err
	}
	p, err := db.GetPull(ctx, claimed)
	return p, err == nil, err
}

// holdPull checks, inside tx, that the lease is still ours and live by the
// database's clock; every write of the holder goes through it.
func (db *DB) holdPull(ctx context.Context, tx *sql.Tx, id int64, l store.Lease) error {
	res, err := tx.ExecContext(ctx, db.Q(`UPDATE pulls SET lease_until = `+db.nowMicros()+` + ? WHERE id = ? AND status = ?
		AND lease_token = ? AND lease_until >= `+db.nowMicros()), l.TTL.Microseconds(), id, store.RunRunning, l.Token)
	if err != nil {
		return fmt.Errorf("renewing the lease of pull %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("pull %d: the lease was lost: %w", id, store.ErrConflict)
	}
	return nil
}

// HeartbeatPull implements store.SourceStore.
func (db *DB) HeartbeatPull(ctx context.Context, id int64, l store.Lease, c store.PullCounts) (bool, error) {
	b, _ := json.Marshal(c)
	var cancel bool
	err := db.W.QueryRowContext(ctx, db.Q(`UPDATE pulls SET lease_until = `+db.nowMicros()+` + ?, counts = ? WHERE id = ? AND status = ?
		AND lease_token = ? AND lease_until >= `+db.nowMicros()+` RETURNING cancel_requested`),
		l.TTL.Microseconds(), string(b), id, store.RunRunning, l.Token).Scan(&cancel)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("pull %d: the lease was lost: %w", id, store.ErrConflict)
	}
	if err != nil {
		return false, fmt.Errorf("heartbeat of pull %d: %w", id, err)
	}
	return cancel, nil
}

// StagePullRows implements store.SourceStore.
func (db *DB) StagePullRows(ctx context.Context, id int64, l store.Lease, rows []store.StagedRow) ([]int, error) {
	var dups []int
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		dups = dups[:0]
		if err := db.holdPull(ctx, tx, id, l); err != nil {
			return err
		}
		// Keys repeated within this batch or staged by an earlier one are
		// refused row by row; the rest go in with multi-row inserts.
		seen := make(map[string]bool, len(rows))
		keys := make([]any, 0, len(rows)+1)
		keys = append(keys, id)
		for _, r := range rows {
			keys = append(keys, r.CustomerID)
		}
		staged, err := queryStrings(ctx, tx, db.Q(`SELECT customer_id FROM pull_stage WHERE pull_id = ? AND customer_id IN (`+
			placeholders(len(rows), 1)+`)`), keys...)
		if err != nil {
			return fmt.Errorf("checking staged keys: %w", err)
		}
		for _, k := range staged {
			seen[k] = true
		}
		args := make([]any, 0, 3*profileWriteChunk)
		n := 0
		flush := func() error {
			if n == 0 {
				return nil
			}
			q := db.Q(`INSERT INTO pull_stage (pull_id, customer_id, attrs) VALUES ` + placeholders(n, 3))
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("staging %d rows: %w", n, err)
			}
			args, n = args[:0], 0
			return nil
		}
		for i, r := range rows {
			if seen[r.CustomerID] {
				dups = append(dups, i)
				continue
			}
			seen[r.CustomerID] = true
			args = append(args, id, r.CustomerID, r.Attrs)
			if n++; n == profileWriteChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	})
	return dups, err
}

// ApplyPullStage implements store.SourceStore.
func (db *DB) ApplyPullStage(ctx context.Context, id int64, l store.Lease, a store.ApplyPull, c store.PullCounts, errs []store.PullError, status string) (store.PullCounts, error) {
	out := c
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		out = c
		if db.d == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, profileLockKey); err != nil {
				return fmt.Errorf("locking profiles: %w", err)
			}
		}
		if err := db.holdPull(ctx, tx, id, l); err != nil {
			return err
		}
		var src store.Source
		var err error
		if src, err = scanSource(tx.QueryRowContext(ctx, db.Q(`SELECT `+sourceColumns+` FROM sources s WHERE id = (SELECT source_id FROM pulls WHERE id = ?)`), id)); err != nil {
			return fmt.Errorf("reading the source of pull %d: %w", id, err)
		}
		var staged int64
		if err := tx.QueryRowContext(ctx, db.Q(`SELECT COUNT(*) FROM pull_stage WHERE pull_id = ?`), id).Scan(&staged); err != nil {
			return fmt.Errorf("counting the stage of pull %d: %w", id, err)
		}
		if a.Full && !a.AllowShrink && src.LastFullRows > 0 && float64(staged) < a.MinRatio*float64(src.LastFullRows) {
			return fmt.Errorf("%w: the pull returned %d rows, fewer than %.2f × the %d rows of the last successful full pull; "+
				"nothing was changed (pull again with allow_shrink to accept it)", store.ErrShrink, staged, a.MinRatio, src.LastFullRows)
		}
		m, err := db.newMerger(ctx, tx, src.ID)
		if err != nil {
			return err
		}
		// Staged rows that are new to the layer or differ from it.
		var changed int64
		after := ""
		for {
			rows, err := tx.QueryContext(ctx, db.Q(`SELECT s.customer_id, s.attrs, l.attrs IS NULL FROM pull_stage s
				LEFT JOIN profile_layers l ON l.source_id = ? AND l.customer_id = s.customer_id
				WHERE s.pull_id = ? AND s.customer_id > ? AND (l.attrs IS NULL OR l.attrs <> s.attrs)
				ORDER BY s.customer_id LIMIT ?`), src.ID, id, after, 2000)
			if err != nil {
				return fmt.Errorf("comparing pull %d with its source's layer: %w", id, err)
			}
			var changes []layerChange
			for rows.Next() {
				var ch layerChange
				var isNew bool
				if err := rows.Scan(&ch.id, &ch.attrs, &isNew); err != nil {
					rows.Close()
					return err
				}
				if isNew {
					out.New++
				} else {
					out.Updated++
				}
				changes = append(changes, ch)
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if len(changes) == 0 {
				break
			}
			after = changes[len(changes)-1].id
			changed += int64(len(changes))
			r, err := m.apply(changes)
			if err != nil {
				return err
			}
			out.Deleted += r.deleted
		}
		out.Unchanged = staged - changed
		if a.Full { // the layer's rows the pull no longer has
			after = ""
			for {
				ids, err := queryStrings(ctx, tx, db.Q(`SELECT l.customer_id FROM profile_layers l WHERE l.source_id = ? AND l.customer_id > ?
					AND NOT EXISTS (SELECT 1 FROM pull_stage s WHERE s.pull_id = ? AND s.customer_id = l.customer_id)
					ORDER BY l.customer_id LIMIT ?`), src.ID, after, id, 2000)
				if err != nil {
					return fmt.Errorf("finding rows the pull no longer has: %w", err)
				}
				if len(ids) == 0 {
					break
				}
				after = ids[len(ids)-1]
				changes := make([]layerChange, len(ids))
				for i, c := range ids {
					changes[i] = layerChange{id: c}
				}
				out.Removed += int64(len(ids))
				r, err := m.apply(changes)
				if err != nil {
					return err
				}
				out.Deleted += r.deleted
			}
		}
		if err := m.finish(); err != nil {
			return err
		}
		if a.Full {
			if _, err := tx.ExecContext(ctx, db.Q(`UPDATE sources SET last_full_rows = ? WHERE id = ?`), staged, src.ID); err != nil {
				return fmt.Errorf("noting the pull's size: %w", err)
			}
		} else if a.HighWater != "" {
			if _, err := tx.ExecContext(ctx, db.Q(`UPDATE sources SET high_water = ? WHERE id = ?`), a.HighWater, src.ID); err != nil {
				return fmt.Errorf("noting the high-water mark: %w", err)
			}
		}
		// The lease was checked (and the pull row taken) by holdPull at the
		// start of this transaction: no claim can take the pull before it
		// commits, however long the apply took.
		return db.finishPull(ctx, tx, id, l, status, out, errs, "", true)
	})
	if err != nil {
		return c, fmt.Errorf("applying pull %d: %w", id, err)
	}
	return out, nil
}

// finishPull ends the pull held by l; held says that tx already checked the
// lease and holds the pull row, so its expiry since does not matter.
func (db *DB) finishPull(ctx context.Context, tx *sql.Tx, id int64, l store.Lease, status string, c store.PullCounts, errs []store.PullError, msg string, held bool) error {
	if errs == nil {
		errs = []store.PullError{}
	}
	cb, _ := json.Marshal(c)
	eb, _ := json.Marshal(errs)
	live := ` AND lease_until >= ` + db.nowMicros()
	if held {
		live = ""
	}
	res, err := tx.ExecContext(ctx, db.Q(`UPDATE pulls SET status = ?, finished_at = ?, counts = ?, errors = ?, error = ?,
		lease_token = '', lease_until = 0 WHERE id = ? AND status = ? AND lease_token = ?`+live),
		status, time.Now().UnixMicro(), string(cb), string(eb), msg, id, store.RunRunning, l.Token)
	if err != nil {
		return fmt.Errorf("finishing pull %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("pull %d: the lease was lost: %w", id, store.ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM pull_stage WHERE pull_id = ?`), id); err != nil {
		return fmt.Errorf("dropping the stage of pull %d: %w", id, err)
	}
	return nil
}

// FinishPull implements store.SourceStore.
func (db *DB) FinishPull(ctx context.Context, id int64, l store.Lease, status string, c store.PullCounts, errs []store.PullError, msg string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error { return db.finishPull(ctx, tx, id, l, status, c, errs, msg, false) })
}

// CancelPull implements store.SourceStore.
func (db *DB) CancelPull(ctx context.Context, id int64) (store.Pull, error) {
	if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE pulls SET status = ?, finished_at = ?, error = 'cancelled before it started'
		WHERE id = ? AND status = ?`), store.RunCancelled, time.Now().UnixMicro(), id, store.RunQueued); err != nil {
		return store.Pull{}, fmt.Errorf("cancelling pull %d: %w", id, err)
	}
	if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE pulls SET cancel_requested = ? WHERE id = ? AND status = ?`), true, id, store.RunRunning); err != nil {
		return store.Pull{}, fmt.Errorf("cancelling pull %d: %w", id, err)
	}
	return db.GetPull(ctx, id)
}
