package sqldb

import (
	"bytes"
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
	var p store.Pull
	var created bool
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		p, created, err = db.enqueuePull(ctx, tx, sourceID, refreshID, trigger, allowShrink, by)
		return err
	})
	return p, created, err
}

// enqueuePull queues a pull of a source inside tx, unless one is queued
// already: that one then stands for this request too (a refresh adopts it
// when it has none).
func (db *DB) enqueuePull(ctx context.Context, tx *sql.Tx, sourceID int64, refreshID *int64, trigger string, allowShrink bool, by string) (store.Pull, bool, error) {
	var ref any
	if refreshID != nil {
		ref = *refreshID
	}
	var exists bool
	if err := tx.QueryRowContext(ctx, db.Q(`SELECT EXISTS (SELECT 1 FROM sources WHERE id = ?)`), sourceID).Scan(&exists); err != nil {
		return store.Pull{}, false, fmt.Errorf("queueing a pull of source %d: %w", sourceID, err)
	}
	if !exists {
		return store.Pull{}, false, fmt.Errorf("source %d: %w", sourceID, store.ErrNotFound)
	}
	p, err := scanPull(tx.QueryRowContext(ctx, db.Q(`INSERT INTO pulls (source_id, refresh_id, status, trigger_kind, allow_shrink,
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
	// One is queued already (pulls_one_queued).
	p, err = scanPull(tx.QueryRowContext(ctx, db.Q(`SELECT `+pullColumns+` FROM pulls WHERE source_id = ? AND status = ?`),
		sourceID, store.RunQueued))
	if err != nil {
		return p, false, fmt.Errorf("reading the queued pull of source %d: %w", sourceID, err)
	}
	if refreshID != nil && p.RefreshID == nil {
		if _, err := tx.ExecContext(ctx, db.Q(`UPDATE pulls SET refresh_id = ? WHERE id = ? AND refresh_id IS NULL`), *refreshID, p.ID); err != nil {
			return p, false, fmt.Errorf("attaching pull %d to refresh %d: %w", p.ID, *refreshID, err)
		}
		p.RefreshID = refreshID
	}
	if allowShrink && !p.AllowShrink {
		if _, err := tx.ExecContext(ctx, db.Q(`UPDATE pulls SET allow_shrink = ? WHERE id = ?`), true, p.ID); err != nil {
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

// ReleasePull implements store.SourceStore.
func (db *DB) ReleasePull(ctx context.Context, id int64, l store.Lease) error {
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE pulls SET lease_until = 0 WHERE id = ? AND status = ? AND lease_token = ?`),
		id, store.RunRunning, l.Token)
	if err != nil {
		return fmt.Errorf("handing pull %d back: %w", id, err)
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

// ApplyPullStage implements store.SourceStore.
func (db *DB) ApplyPullStage(ctx context.Context, id int64, l store.Lease, a store.ApplyPull, c store.PullCounts, errs []store.PullError, status string) (store.PullCounts, error) {
	out := c
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		out = c
		// A full pull compares the stage with the layer on a read
		// transaction of its own, begun now (before the profile lock, so
		// it never waits for a connection behind it) and whose snapshot
		// is taken by its first query, under the lock: the state this
		// transaction then changes.
		var snap *sql.Tx
		if a.Full {
			opts := &sql.TxOptions{ReadOnly: true}
			if db.d == Postgres {
				opts.Isolation = sql.LevelRepeatableRead
			}
			var err error
			if snap, err = db.R.BeginTx(ctx, opts); err != nil {
				return fmt.Errorf("starting the comparison of pull %d: %w", id, err)
			}
			defer snap.Rollback()
		}
		// The lease is renewed first: its row stays locked until commit, so
		// no other worker can claim the pull while this one waits for the
		// profile lock (PostgreSQL), however long that takes.
		if err := db.holdPull(ctx, tx, id, l); err != nil {
			return err
		}
		if err := db.lockProfiles(ctx, tx); err != nil {
			return err
		}
		var src store.Source
		var err error
		if src, err = scanSource(tx.QueryRowContext(ctx, db.Q(`SELECT `+sourceColumns+` FROM sources s WHERE id = (SELECT source_id FROM pulls WHERE id = ?)`), id)); err != nil {
			return fmt.Errorf("reading the source of pull %d: %w", id, err)
		}
		staged := a.Stage.Len()
		if a.Full && !a.AllowShrink && src.LastFullRows > 0 && float64(staged) < a.MinRatio*float64(src.LastFullRows) {
			return fmt.Errorf("%w: the pull returned %d rows, fewer than %.2f × the %d rows of the last successful full pull; "+
				"nothing was changed (pull again with allow_shrink to accept it)", store.ErrShrink, staged, a.MinRatio, src.LastFullRows)
		}
		m, err := db.newMerger(ctx, tx, src.ID)
		if err != nil {
			return err
		}
		apply := func(changes []layerChange) error {
			r, err := m.apply(changes)
			out.Deleted += r.deleted
			return err
		}
		if a.Full {
			err = db.compareFull(ctx, snap, a.Stage, src.ID, &out, apply)
		} else {
			err = db.compareIncremental(ctx, tx, a.Stage, src.ID, &out, apply)
		}
		if err != nil {
			err = fmt.Errorf("comparing pull %d with the layer of source %d: %w", id, src.ID, err)
		}
		if err != nil {
			return err
		}
		out.Unchanged = staged - out.New - out.Updated
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
		return db.finishPull(ctx, tx, id, l, status, out, errs, "")
	})
	if err != nil {
		return c, fmt.Errorf("applying pull %d: %w", id, err)
	}
	return out, nil
}

// applyBatch is how many layer changes the apply hands to the merger at once.
const applyBatch = 2000

// keyedRow is a customer id and its attributes.
type keyedRow struct {
	id    string
	attrs []byte
}

// keyedPages reads rows in customer id order a page at a time (keyset
// pagination).
type keyedPages struct {
	fetch func(after string, buf []keyedRow) ([]keyedRow, error) // appends a page to buf
	buf   []keyedRow
	i     int
	done  bool
}

// peek returns the current row; false at the end.
func (p *keyedPages) peek() (keyedRow, bool, error) {
	if p.i == len(p.buf) && !p.done {
		after := ""
		if len(p.buf) > 0 {
			after = p.buf[len(p.buf)-1].id
		}
		var err error
		if p.buf, err = p.fetch(after, p.buf[:0]); err != nil {
			return keyedRow{}, false, err
		}
		p.i = 0
		p.done = len(p.buf) < comparePage
	}
	if p.i == len(p.buf) {
		return keyedRow{}, false, nil
	}
	return p.buf[p.i], true, nil
}

// comparePage is how many rows one page of a comparison reads.
const comparePage = 2000

// compareFull walks the stage and the source's layer side by side, both in
// customer id order (byte order: the columns' collation is "C" on
// PostgreSQL), on snap, a snapshot from before the apply's first write. The
// walk runs in a goroutine of its own, while apply writes the changes it
// found so far (SQLite: on the other core; two batches in memory at most).
func (db *DB) compareFull(ctx context.Context, snap *sql.Tx, st store.Stage, sourceID int64, out *store.PullCounts, apply func([]layerChange) error) error {
	layerQ := db.Q(`SELECT customer_id, attrs FROM profile_layers WHERE source_id = ? AND customer_id > ? ORDER BY customer_id LIMIT ?`)
	stage := &keyedPages{fetch: func(after string, buf []keyedRow) ([]keyedRow, error) {
		page, err := st.Page(ctx, after, comparePage)
		for _, r := range page {
			buf = append(buf, keyedRow{id: r.CustomerID, attrs: []byte(r.Attrs)})
		}
		return buf, err
	}}
	layer := &keyedPages{fetch: func(after string, buf []keyedRow) ([]keyedRow, error) {
		rows, err := snap.QueryContext(ctx, layerQ, sourceID, after, comparePage)
		if err != nil {
			return buf, err
		}
		for rows.Next() {
			var r keyedRow
			if err := rows.Scan(&r.id, &r.attrs); err != nil {
				rows.Close()
				return buf, err
			}
			buf = append(buf, r)
		}
		return buf, errors.Join(rows.Err(), rows.Close())
	}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []layerChange)
	var counts store.PullCounts
	var walkErr error
	walked := make(chan struct{})
	go func() {
		defer close(walked)
		defer close(batches)
		walkErr = walk(ctx, stage, layer, &counts, batches)
	}()
	var applyErr error
	for b := range batches {
		if applyErr == nil {
			if applyErr = apply(b); applyErr != nil {
				cancel() // the walk stops; drain what it sent
			}
		}
	}
	<-walked
	if applyErr != nil {
		return applyErr
	}
	if walkErr != nil {
		return walkErr
	}
	out.New += counts.New
	out.Updated += counts.Updated
	out.Removed += counts.Removed
	return nil
}

// walk merges two keyed walks and sends, in batches, what is new in the
// stage, what differs from the layer and what the layer has that the stage
// has not (attrs nil: removed).
func walk(ctx context.Context, stage, layer *keyedPages, counts *store.PullCounts, batches chan<- []layerChange) error {
	changes := make([]layerChange, 0, applyBatch)
	send := func() error {
		err := sendCtx(ctx, batches, changes)
		changes = make([]layerChange, 0, applyBatch)
		return err
	}
	for {
		s, sok, err := stage.peek()
		if err != nil {
			return fmt.Errorf("reading the stage: %w", err)
		}
		l, lok, err := layer.peek()
		if err != nil {
			return fmt.Errorf("reading the layer: %w", err)
		}
		switch {
		case !sok && !lok:
			if len(changes) > 0 {
				return send()
			}
			return nil
		case sok && (!lok || s.id < l.id):
			counts.New++
			changes = append(changes, layerChange{id: s.id, attrs: s.attrs, fresh: true})
			stage.i++
		case !sok || l.id < s.id:
			counts.Removed++
			changes = append(changes, layerChange{id: l.id})
			layer.i++
		default:
			stage.i++
			layer.i++
			if bytes.Equal(s.attrs, l.attrs) {
				continue
			}
			counts.Updated++
			changes = append(changes, layerChange{id: s.id, attrs: s.attrs})
		}
		if len(changes) == applyBatch {
			if err := send(); err != nil {
				return err
			}
		}
	}
}

// compareIncremental passes on the staged rows that are new to the
// source's layer or differ from it; the layer's other rows stay. It reads
// the stage a page at a time and the layer's rows of that page by key.
func (db *DB) compareIncremental(ctx context.Context, tx *sql.Tx, st store.Stage, sourceID int64, out *store.PullCounts, apply func([]layerChange) error) error {
	after := ""
	for {
		page, err := st.Page(ctx, after, comparePage)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		after = page[len(page)-1].CustomerID
		ids := make([]any, 0, len(page)+1)
		ids = append(ids, sourceID)
		for _, r := range page {
			ids = append(ids, r.CustomerID)
		}
		layer := make(map[string]string, len(page))
		rows, err := tx.QueryContext(ctx, db.Q(`SELECT customer_id, attrs FROM profile_layers WHERE source_id = ? AND customer_id IN (`+placeholders(len(page), 1)+`)`), ids...)
		if err != nil {
			return fmt.Errorf("reading the layer: %w", err)
		}
		for rows.Next() {
			var id, attrs string
			if err := rows.Scan(&id, &attrs); err != nil {
				rows.Close()
				return fmt.Errorf("reading the layer: %w", err)
			}
			layer[id] = attrs
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("reading the layer: %w", err)
		}
		var changes []layerChange
		for _, r := range page {
			old, ok := layer[r.CustomerID]
			switch {
			case !ok:
				out.New++
				changes = append(changes, layerChange{id: r.CustomerID, attrs: []byte(r.Attrs), fresh: true})
			case old != r.Attrs:
				out.Updated++
				changes = append(changes, layerChange{id: r.CustomerID, attrs: []byte(r.Attrs)})
			}
		}
		if len(changes) > 0 {
			if err := apply(changes); err != nil {
				return err
			}
		}
	}
}

func (db *DB) finishPull(ctx context.Context, tx *sql.Tx, id int64, l store.Lease, status string, c store.PullCounts, errs []store.PullError, msg string) error {
	if errs == nil {
		errs = []store.PullError{}
	}
	cb, _ := json.Marshal(c)
	eb, _ := json.Marshal(errs)
	// The caller checked the lease with holdPull in this transaction, whose
	// lock on the row (PostgreSQL) or on the database (SQLite) keeps any
	// other claim out until it commits, however long the apply takes.
	res, err := tx.ExecContext(ctx, db.Q(`UPDATE pulls SET status = ?, finished_at = ?, counts = ?, errors = ?, error = ?,
		lease_token = '', lease_until = 0 WHERE id = ? AND status = ? AND lease_token = ?`),
		status, time.Now().UnixMicro(), string(cb), string(eb), msg, id, store.RunRunning, l.Token)
	if err != nil {
		return fmt.Errorf("finishing pull %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("pull %d: the lease was lost: %w", id, store.ErrConflict)
	}
	return nil
}

// FinishPull implements store.SourceStore.
func (db *DB) FinishPull(ctx context.Context, id int64, l store.Lease, status string, c store.PullCounts, errs []store.PullError, msg string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if err := db.holdPull(ctx, tx, id, l); err != nil {
			return err
		}
		return db.finishPull(ctx, tx, id, l, status, c, errs, msg)
	})
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
