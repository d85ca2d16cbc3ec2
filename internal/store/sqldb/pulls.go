package sqldb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/store"
)

// Pulls: the pulls table is the durable queue (like runs). Every claim gets
// a fresh random lease token; staging, heartbeats and the apply are fenced
// by "lease_token = ? AND lease_until > <database now>", so a worker that
// lost its lease (paused, partitioned) can change nothing.

const pullColumns = `id, source_id, status, trigger_kind, allow_shrink, requested_by, created_at, started_at, finished_at,
	counts, errors, error, cancel_requested, attempts, lease_token`

// pullApplyPage is how many staged rows the apply reads per query.
const pullApplyPage = 2000

func scanPull(r rowScanner) (store.Pull, error) {
	var p store.Pull
	var cat, sat, fat int64
	var counts, errs string
	if err := r.Scan(&p.ID, &p.SourceID, &p.Status, &p.Trigger, &p.AllowShrink, &p.RequestedBy, &cat, &sat, &fat,
		&counts, &errs, &p.Error, &p.CancelRequested, &p.Attempts, &p.LeaseToken); err != nil {
		return p, err
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

func newLeaseToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fence is the condition under which the holder of token may act.
func (db *DB) fence() string {
	return `status = 'running' AND lease_token = ? AND lease_until > ` + db.nowMicros()
}

// holdFence checks the fence inside tx and, on PostgreSQL, locks the pull
// row so that no claim can take it over before tx ends.
func (db *DB) holdFence(ctx context.Context, tx *sql.Tx, id int64, token string) error {
	q := `SELECT id FROM pulls WHERE id = ? AND ` + db.fence()
	if db.d == Postgres {
		q += ` FOR UPDATE`
	}
	var got int64
	err := tx.QueryRowContext(ctx, db.Q(q), id, token).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("pull %d: the lease is lost: %w", id, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("pull %d: checking the lease: %w", id, err)
	}
	return nil
}

// EnqueuePull implements store.SourceStore.
func (db *DB) EnqueuePull(ctx context.Context, sourceID int64, trigger string, allowShrink bool, by string) (store.Pull, bool, error) {
	var p store.Pull
	var created bool
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		p, created, err = db.enqueuePullTx(ctx, tx, sourceID, trigger, allowShrink, by)
		return err
	})
	return p, created, err
}

func (db *DB) enqueuePullTx(ctx context.Context, tx *sql.Tx, sourceID int64, trigger string, allowShrink bool, by string) (store.Pull, bool, error) {
	var id int64
	err := tx.QueryRowContext(ctx, db.Q(`INSERT INTO pulls (source_id, status, trigger_kind, allow_shrink, requested_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`),
		sourceID, store.RunQueued, trigger, allowShrink, by, time.Now().UnixMicro()).Scan(&id)
	created := true
	if errors.Is(err, sql.ErrNoRows) {
		created = false
		err = tx.QueryRowContext(ctx, db.Q(`SELECT id FROM pulls WHERE source_id = ? AND status IN ('queued', 'running')`), sourceID).Scan(&id)
	}
	if err != nil {
		if isForeignKey(err) {
			return store.Pull{}, false, fmt.Errorf("source %d: %w", sourceID, store.ErrNotFound)
		}
		return store.Pull{}, false, fmt.Errorf("queueing a pull of source %d: %w", sourceID, err)
	}
	p, err := scanPull(tx.QueryRowContext(ctx, db.Q(`SELECT `+pullColumns+` FROM pulls WHERE id = ?`), id))
	if err != nil {
		return p, false, fmt.Errorf("reading pull %d: %w", id, err)
	}
	return p, created, nil
}

func isForeignKey(err error) bool {
	s := err.Error()
	return strings.Contains(s, "FOREIGN KEY") || strings.Contains(s, "foreign key")
}

// GetPull implements store.SourceStore.
func (db *DB) GetPull(ctx context.Context, id int64) (store.Pull, error) {
	p, err := scanPull(db.R.QueryRowContext(ctx, db.Q(`SELECT `+pullColumns+` FROM pulls WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("pull %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("reading pull %d: %w", id, err)
	}
	return p, nil
}

// ListPulls implements store.SourceStore.
func (db *DB) ListPulls(ctx context.Context, sourceID int64, limit int) ([]store.Pull, error) {
	if limit <= 0 {
		limit = 100
	}
	return db.queryPulls(ctx, db.R, `SELECT `+pullColumns+` FROM pulls WHERE source_id = ? ORDER BY id DESC LIMIT ?`, sourceID, limit)
}

func (db *DB) queryPulls(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]store.Pull, error) {
	rows, err := q.QueryContext(ctx, db.Q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("listing pulls: %w", err)
	}
	defer rows.Close()
	out := []store.Pull{}
	for rows.Next() {
		p, err := scanPull(rows)
		if err != nil {
			return nil, fmt.Errorf("listing pulls: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// LastPull implements store.SourceStore.
func (db *DB) LastPull(ctx context.Context, sourceID int64) (store.Pull, error) {
	ps, err := db.ListPulls(ctx, sourceID, 1)
	if err != nil {
		return store.Pull{}, err
	}
	if len(ps) == 0 {
		return store.Pull{}, fmt.Errorf("pull of source %d: %w", sourceID, store.ErrNotFound)
	}
	return ps[0], nil
}

// ClaimPull implements store.SourceStore.
func (db *DB) ClaimPull(ctx context.Context, owner string, lease time.Duration) (store.Pull, bool, error) {
	now := db.nowMicros()
	token := newLeaseToken()
	var claimed int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		claimed = 0
		// A running pull whose lease expired was left by a dead or stalled
		// worker: it starts again from scratch (its staged rows go).
		var id int64
		err := tx.QueryRowContext(ctx, db.Q(`SELECT id FROM pulls WHERE status = 'running' AND lease_until <= `+now+` ORDER BY id LIMIT 1`)).Scan(&id)
		switch {
		case err == nil:
			res, err := tx.ExecContext(ctx, db.Q(`UPDATE pulls SET lease_owner = ?, lease_token = ?, lease_until = `+now+` + ?,
				attempts = attempts + 1, counts = '{}', errors = '[]' WHERE id = ? AND status = 'running' AND lease_until <= `+now),
				owner, token, lease.Microseconds(), id)
			if err != nil {
				return fmt.Errorf("claiming pull %d: %w", id, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM pull_rows WHERE pull_id = ?`), id); err != nil {
					return fmt.Errorf("dropping the staged rows of pull %d: %w", id, err)
				}
				claimed = id
				return nil
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("looking for abandoned pulls: %w", err)
		}
		err = tx.QueryRowContext(ctx, `SELECT id FROM pulls WHERE status = 'queued' ORDER BY id LIMIT 1`).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("looking for queued pulls: %w", err)
		}
		res, err := tx.ExecContext(ctx, db.Q(`UPDATE pulls SET status = 'running', started_at = ?, lease_owner = ?, lease_token = ?,
			lease_until = `+now+` + ?, attempts = attempts + 1 WHERE id = ? AND status = 'queued'`),
			time.Now().UnixMicro(), owner, token, lease.Microseconds(), id)
		if err != nil {
			return fmt.Errorf("claiming pull %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			claimed = id
		}
		return nil
	})
	if err != nil || claimed == 0 {
		return store.Pull{}, false, err
	}
	p, err := db.GetPull(ctx, claimed)
	return p, err == nil, err
}

// HeartbeatPull implements store.SourceStore.
func (db *DB) HeartbeatPull(ctx context.Context, id int64, token string, lease time.Duration, c store.PullCounts) (bool, error) {
	counts, _ := json.Marshal(c)
	var cancel bool
	err := db.W.QueryRowContext(ctx, db.Q(`UPDATE pulls SET lease_until = `+db.nowMicros()+` + ?, counts = ?
		WHERE id = ? AND `+db.fence()+` RETURNING cancel_requested`), lease.Microseconds(), string(counts), id, token).Scan(&cancel)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("pull %d: the lease is lost: %w", id, store.ErrConflict)
	}
	if err != nil {
		return false, fmt.Errorf("heartbeat of pull %d: %w", id, err)
	}
	return cancel, nil
}

// StagePullRows implements store.SourceStore.
func (db *DB) StagePullRows(ctx context.Context, id int64, token string, rows []store.StagedRow) ([]int64, error) {
	var dups []int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		dups = dups[:0]
		if err := db.holdFence(ctx, tx, id, token); err != nil {
			return err
		}
		first := make(map[string]int, len(rows))
		args := make([]any, 0, 3*len(rows))
		for i, r := range rows {
			if _, ok := first[r.CustomerID]; ok {
				dups = append(dups, r.Num)
				continue
			}
			first[r.CustomerID] = i
			var a any
			if r.Attrs != nil {
				a = string(r.Attrs)
			}
			args = append(args, id, r.CustomerID, a)
		}
		inserted := make(map[string]bool, len(first))
		per := 3 * profileWriteChunk
		for start := 0; start < len(args); start += per {
			chunk := args[start:min(start+per, len(args))]
			q := db.Q(`INSERT INTO pull_rows (pull_id, customer_id, attrs) VALUES ` + placeholders(len(chunk)/3, 3) +
				` ON CONFLICT (pull_id, customer_id) DO NOTHING RETURNING customer_id`)
			if err := scanEach(ctx, tx, q, chunk, func(r *sql.Rows) error {
				var k string
				if err := r.Scan(&k); err != nil {
					return err
				}
				inserted[k] = true
				return nil
			}); err != nil {
				return fmt.Errorf("staging rows of pull %d: %w", id, err)
			}
		}
		if len(inserted) < len(first) {
			for _, r := range rows {
				if i, ok := first[r.CustomerID]; ok && !inserted[r.CustomerID] && rows[i].Num == r.Num {
					dups = append(dups, r.Num)
				}
			}
		}
		return nil
	})
	return dups, err
}

// ApplyPull implements store.SourceStore.
func (db *DB) ApplyPull(ctx context.Context, id int64, token string, opt store.ApplyOptions, c store.PullCounts) (store.PullCounts, error) {
	out := c
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		out = c
		if err := db.lockProfiles(ctx, tx); err != nil {
			return err
		}
		if err := db.holdFence(ctx, tx, id, token); err != nil {
			return err
		}
		var src, lastFull int64
		var minRatio float64
		if err := tx.QueryRowContext(ctx, db.Q(`SELECT s.id, s.last_full_rows, s.min_ratio FROM pulls p JOIN sources s ON s.id = p.source_id WHERE p.id = ?`), id).
			Scan(&src, &lastFull, &minRatio); err != nil {
			return fmt.Errorf("reading the source of pull %d: %w", id, err)
		}
		if opt.Full && !opt.AllowShrink && lastFull > 0 && float64(c.Received) < minRatio*float64(lastFull) {
			return fmt.Errorf("%w: the pull returned %d rows, fewer than min_ratio %.2f × %d rows of the last successful full pull; nothing was changed (start the pull with allow_shrink to accept it)",
				store.ErrShrinkGuard, c.Received, minRatio, lastFull)
		}
		st, err := db.newLayerState(ctx, tx, time.Now().UnixMicro())
		if err != nil {
			return err
		}
		var staged int64
		if err := tx.QueryRowContext(ctx, db.Q(`SELECT COUNT(*) FROM pull_rows WHERE pull_id = ? AND attrs IS NOT NULL`), id).Scan(&staged); err != nil {
			return fmt.Errorf("counting staged rows: %w", err)
		}
		// New and changed rows: the unchanged ones never leave the database.
		after := ""
		var ops []layerOp
		for {
			ops = ops[:0]
			if err := scanEach(ctx, tx, db.Q(`SELECT p.customer_id, p.attrs FROM pull_rows p
				LEFT JOIN source_rows s ON s.source_id = ? AND s.customer_id = p.customer_id
				WHERE p.pull_id = ? AND p.customer_id > ? AND p.attrs IS NOT NULL AND (s.attrs IS NULL OR s.attrs <> p.attrs)
				ORDER BY p.customer_id LIMIT ?`), []any{src, id, after, pullApplyPage}, func(r *sql.Rows) error {
				var op layerOp
				if err := r.Scan(&op.id, &op.attrs); err != nil {
					return err
				}
				ops = append(ops, op)
				return nil
			}); err != nil {
				return fmt.Errorf("reading staged rows: %w", err)
			}
			if len(ops) == 0 {
				break
			}
			after = ops[len(ops)-1].id
			if err := db.applyLayer(ctx, tx, src, ops, st); err != nil {
				return err
			}
			if len(ops) < pullApplyPage {
				break
			}
		}
		if opt.Full {
			after = ""
			for {
				ops = ops[:0]
				if err := scanEach(ctx, tx, db.Q(`SELECT s.customer_id FROM source_rows s WHERE s.source_id = ? AND s.customer_id > ?
					AND NOT EXISTS (SELECT 1 FROM pull_rows p WHERE p.pull_id = ? AND p.customer_id = s.customer_id)
					ORDER BY s.customer_id LIMIT ?`), []any{src, after, id, pullApplyPage}, func(r *sql.Rows) error {
					var op layerOp
					if err := r.Scan(&op.id); err != nil {
						return err
					}
					op.remove = true
					ops = append(ops, op)
					return nil
				}); err != nil {
					return fmt.Errorf("reading removed rows: %w", err)
				}
				if len(ops) == 0 {
					break
				}
				after = ops[len(ops)-1].id
				if err := db.applyLayer(ctx, tx, src, ops, st); err != nil {
					return err
				}
				if len(ops) < pullApplyPage {
					break
				}
			}
		}
		out.New, out.Updated, out.Removed = st.counts.rowsNew, st.counts.rowsChanged, st.counts.rowsRemoved
		out.Unchanged = staged - out.New - out.Updated
		out.Deleted = st.counts.deleted
		out.ProfilesWritten = st.counts.inserted + st.counts.updated
		if opt.Full {
			if _, err := tx.ExecContext(ctx, db.Q(`UPDATE sources SET last_full_rows = ? WHERE id = ?`), c.Received, src); err != nil {
				return fmt.Errorf("recording the pull's size: %w", err)
			}
		}
		if opt.Mark != "" {
			if _, err := tx.ExecContext(ctx, db.Q(`UPDATE sources SET high_water = ? WHERE id = ?`), opt.Mark, src); err != nil {
				return fmt.Errorf("recording the high-water mark: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM pull_rows WHERE pull_id = ?`), id); err != nil {
			return fmt.Errorf("dropping staged rows: %w", err)
		}
		return st.cat.apply(ctx, db, tx)
	})
	if err != nil {
		return c, fmt.Errorf("applying pull %d: %w", id, err)
	}
	return out, nil
}

// FinishPull implements store.SourceStore.
func (db *DB) FinishPull(ctx context.Context, id int64, token, status string, c store.PullCounts, errs []store.PullError, msg string) error {
	counts, _ := json.Marshal(c)
	if errs == nil {
		errs = []store.PullError{}
	}
	errJSON, _ := json.Marshal(errs)
	return db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.Q(`UPDATE pulls SET status = ?, finished_at = ?, counts = ?, errors = ?, error = ?, lease_until = 0
			WHERE id = ? AND status = 'running' AND lease_token = ?`), status, time.Now().UnixMicro(), string(counts), string(errJSON), msg, id, token)
		if err != nil {
			return fmt.Errorf("finishing pull %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("finishing pull %d: the lease is lost: %w", id, store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM pull_rows WHERE pull_id = ?`), id); err != nil {
			return fmt.Errorf("dropping the staged rows of pull %d: %w", id, err)
		}
		return nil
	})
}

// CancelPull implements store.SourceStore.
func (db *DB) CancelPull(ctx context.Context, id int64) (store.Pull, error) {
	if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE pulls SET status = 'cancelled', finished_at = ?, error = 'cancelled before it started'
		WHERE id = ? AND status = 'queued'`), time.Now().UnixMicro(), id); err != nil {
		return store.Pull{}, fmt.Errorf("cancelling pull %d: %w", id, err)
	}
	if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE pulls SET cancel_requested = ? WHERE id = ? AND status = 'running'`), true, id); err != nil {
		return store.Pull{}, fmt.Errorf("cancelling pull %d: %w", id, err)
	}
	return db.GetPull(ctx, id)
}
