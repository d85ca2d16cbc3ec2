package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segsync/segsync/internal/store"
)

const sourceColumns = `id, name, kind, key_column, mode, cursor_column, schedule, priority, min_ratio, config, secret,
	created_by, created_at, updated_at, high_water, last_full_rows, last_scheduled_at`

func scanSource(r rowScanner) (store.Source, error) {
	var (
		s             store.Source
		cfg           string
		cat, uat, lsa int64
	)
	if err := r.Scan(&s.ID, &s.Name, &s.Kind, &s.Key, &s.Mode, &s.Cursor, &s.Schedule, &s.Priority, &s.MinRatio, &cfg,
		&s.Secret, &s.CreatedBy, &cat, &uat, &s.HighWater, &s.LastFullRows, &lsa); err != nil {
		return s, err
	}
	s.Config = json.RawMessage(cfg)
	s.CreatedAt, s.UpdatedAt, s.LastScheduledAt = fromMicros(cat), fromMicros(uat), fromMicros(lsa)
	return s, nil
}

// CreateSource implements store.SourceStore.
func (db *DB) CreateSource(ctx context.Context, s store.Source) (store.Source, error) {
	now := time.Now().UnixMicro()
	cfg := string(s.Config)
	if cfg == "" {
		cfg = "{}"
	}
	row := db.W.QueryRowContext(ctx, db.Q(`INSERT INTO sources (name, kind, key_column, mode, cursor_column, schedule, priority,
		min_ratio, config, secret, created_by, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING `+sourceColumns),
		s.Name, s.Kind, s.Key, s.Mode, s.Cursor, s.Schedule, s.Priority, s.MinRatio, cfg, s.Secret, s.CreatedBy, now, now)
	out, err := scanSource(row)
	if err != nil {
		if uniqueViolation(err) {
			return out, fmt.Errorf("a source named %q exists already: %w", s.Name, store.ErrConflict)
		}
		return out, fmt.Errorf("creating source %q: %w", s.Name, err)
	}
	return out, nil
}

// UpdateSource implements store.SourceStore. A changed mode, query or key
// resets the incremental mark and the shrink guard's reference.
func (db *DB) UpdateSource(ctx context.Context, s store.Source) (store.Source, error) {
	cfg := string(s.Config)
	if cfg == "" {
		cfg = "{}"
	}
	row := db.W.QueryRowContext(ctx, db.Q(`UPDATE sources SET name = ?, key_column = ?, mode = ?, cursor_column = ?, schedule = ?,
		priority = ?, min_ratio = ?, config = ?, secret = ?, updated_at = ?, high_water = ?, last_full_rows = ?
		WHERE id = ? AND kind <> 'upload' RETURNING `+sourceColumns),
		s.Name, s.Key, s.Mode, s.Cursor, s.Schedule, s.Priority, s.MinRatio, cfg, s.Secret, time.Now().UnixMicro(),
		s.HighWater, s.LastFullRows, s.ID)
	out, err := scanSource(row)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return out, fmt.Errorf("source %d: %w", s.ID, store.ErrNotFound)
	case err != nil && uniqueViolation(err):
		return out, fmt.Errorf("a source named %q exists already: %w", s.Name, store.ErrConflict)
	case err != nil:
		return out, fmt.Errorf("updating source %d: %w", s.ID, err)
	}
	return out, nil
}

// GetSource implements store.SourceStore.
func (db *DB) GetSource(ctx context.Context, id int64) (store.Source, error) {
	s, err := scanSource(db.W.QueryRowContext(ctx, db.Q(`SELECT `+sourceColumns+` FROM sources WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("source %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("reading source %d: %w", id, err)
	}
	return s, nil
}

// ListSources implements store.SourceStore (uploads first, then by id).
func (db *DB) ListSources(ctx context.Context) ([]store.Source, error) {
	rows, err := db.W.QueryContext(ctx, `SELECT `+sourceColumns+` FROM sources ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing sources: %w", err)
	}
	defer rows.Close()
	var out []store.Source
	for rows.Next() {
		s, err := scanSource(rows)
		if err != nil {
			return nil, fmt.Errorf("listing sources: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeleteSource implements store.SourceStore: the source's layer is removed
// profile by profile (re-merging each), then the source row.
func (db *DB) DeleteSource(ctx context.Context, id int64) (int64, error) {
	if id == store.UploadsSourceID {
		return 0, fmt.Errorf("the uploads source cannot be deleted: %w", store.ErrConflict)
	}
	if _, err := db.GetSource(ctx, id); err != nil {
		return 0, err
	}
	var deleted int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		deleted = 0
		if err := db.lockProfiles(ctx, tx); err != nil {
			return err
		}
		var m *merger // made for the first profile: a source never pulled needs none
		after := ""
		for {
			ids, err := queryStrings(ctx, tx, db.Q(`SELECT customer_id FROM profile_layers WHERE source_id = ? AND customer_id > ?
				ORDER BY customer_id LIMIT ?`), id, after, layerPage)
			if err != nil {
				return fmt.Errorf("reading the layer of source %d: %w", id, err)
			}
			if len(ids) == 0 {
				break
			}
			if m == nil {
				if m, err = db.newMerger(ctx, tx, id); err != nil {
					return err
				}
			}
			after = ids[len(ids)-1]
			changes := make([]layerChange, len(ids))
			for i, c := range ids {
				changes[i] = layerChange{id: c}
			}
			r, err := m.apply(changes)
			if err != nil {
				return err
			}
			deleted += r.deleted
		}
		if m != nil {
			if err := m.finish(); err != nil {
				return err
			}
		}
		// Its pulls go with it (ON DELETE CASCADE).
		if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM sources WHERE id = ?`), id); err != nil {
			return fmt.Errorf("deleting source %d: %w", id, err)
		}
		return db.reabsorbUploadsLayer(ctx, tx)
	})
	if err != nil {
		return 0, fmt.Errorf("deleting source %d: %w", id, err)
	}
	return deleted, nil
}

func queryStrings(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// AdvanceSourceSchedule implements store.SourceStore (compare and set).
func (db *DB) AdvanceSourceSchedule(ctx context.Context, id int64, prev, next time.Time) (bool, error) {
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE sources SET last_scheduled_at = ? WHERE id = ? AND last_scheduled_at = ?`),
		micros(next), id, micros(prev))
	if err != nil {
		return false, fmt.Errorf("advancing the schedule of source %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// AdvanceNamedSchedule implements store.SourceStore.
func (db *DB) AdvanceNamedSchedule(ctx context.Context, name string, prev, next time.Time) (bool, error) {
	var res sql.Result
	var err error
	if prev.IsZero() {
		res, err = db.W.ExecContext(ctx, db.Q(`INSERT INTO scheduler_state (name, last_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`),
			name, micros(next))
	} else {
		res, err = db.W.ExecContext(ctx, db.Q(`UPDATE scheduler_state SET last_at = ? WHERE name = ? AND last_at = ?`),
			micros(next), name, micros(prev))
	}
	if err != nil {
		return false, fmt.Errorf("advancing schedule %s: %w", name, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// NamedScheduleLast implements store.SourceStore (zero when never fired).
func (db *DB) NamedScheduleLast(ctx context.Context, name string) (time.Time, error) {
	var us int64
	err := db.W.QueryRowContext(ctx, db.Q(`SELECT last_at FROM scheduler_state WHERE name = ?`), name).Scan(&us)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading schedule %s: %w", name, err)
	}
	return fromMicros(us), nil
}

// ProfileSources implements store.SourceStore.
func (db *DB) ProfileSources(ctx context.Context, customerID string) (map[string]string, error) {
	rows, err := db.W.QueryContext(ctx, db.Q(`SELECT s.name, s.priority, s.id, l.attrs FROM sources s
		JOIN profile_layers l ON l.source_id = s.id AND l.customer_id = ?`), customerID)
	if err != nil {
		return nil, fmt.Errorf("reading the sources of profile %q: %w", customerID, err)
	}
	defer rows.Close()
	var ls []layer
	var names []string
	for rows.Next() {
		var l layer
		var name string
		if err := rows.Scan(&name, &l.priority, &l.source, &l.attrs); err != nil {
			return nil, fmt.Errorf("reading the sources of profile %q: %w", customerID, err)
		}
		ls = append(ls, l)
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		// The uploads layer may live in the profile (uploadsInProfiles).
		var name string
		var attrs []byte
		err := db.W.QueryRowContext(ctx, db.Q(`SELECT s.name, p.`+db.attrsCol()+` FROM sources s JOIN profiles p ON p.customer_id = ?
			WHERE s.id = ? AND s.layer_in_profiles`), customerID, store.UploadsSourceID).Scan(&name, &attrs)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("reading the sources of profile %q: %w", customerID, err)
		default:
			ls, names = append(ls, layer{source: store.UploadsSourceID, attrs: attrs}), append(names, name)
		}
	}
	byID := map[int64]string{}
	for i, l := range ls {
		byID[l.source] = names[i]
	}
	return attributeSources(ls, byID)
}

// Refreshes.

func scanRefresh(r rowScanner) (store.Refresh, error) {
	var (
		f        store.Refresh
		cat, fat int64
		runs     string
	)
	if err := r.Scan(&f.ID, &f.Status, &f.Trigger, &f.RequestedBy, &cat, &fat, &runs, &f.Error); err != nil {
		return f, err
	}
	f.CreatedAt = fromMicros(cat)
	if fat != 0 {
		t := fromMicros(fat)
		f.FinishedAt = &t
	}
	if err := json.Unmarshal([]byte(runs), &f.RunIDs); err != nil {
		return f, fmt.Errorf("refresh %d: runs: %w", f.ID, err)
	}
	return f, nil
}

const refreshColumns = `id, status, trigger_kind, requested_by, created_at, finished_at, run_ids, error`

// CreateRefresh implements store.SourceStore.
func (db *DB) CreateRefresh(ctx context.Context, trigger, by string, sources []int64) (store.Refresh, error) {
	var f store.Refresh
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		f, err = scanRefresh(tx.QueryRowContext(ctx, db.Q(`INSERT INTO refreshes (status, trigger_kind, requested_by, created_at)
			VALUES (?, ?, ?, ?) RETURNING `+refreshColumns), store.RefreshPulling, trigger, by, time.Now().UnixMicro()))
		if err != nil {
			return err
		}
		for _, id := range sources {
			_, _, err := db.enqueuePull(ctx, tx, id, &f.ID, store.TriggerRefresh, false, by)
			if err != nil && !errors.Is(err, store.ErrNotFound) { // a source deleted meanwhile is not pulled
				return err
			}
		}
		return nil
	})
	if err != nil {
		return f, fmt.Errorf("creating a refresh: %w", err)
	}
	return f, nil
}

// GetRefresh implements store.SourceStore.
func (db *DB) GetRefresh(ctx context.Context, id int64) (store.Refresh, error) {
	f, err := scanRefresh(db.W.QueryRowContext(ctx, db.Q(`SELECT `+refreshColumns+` FROM refreshes WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("refresh %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return f, fmt.Errorf("reading refresh %d: %w", id, err)
	}
	return f, nil
}

// ListRefreshes implements store.SourceStore: the refreshes in a status
// ("" for the 100 newest of any status).
func (db *DB) ListRefreshes(ctx context.Context, status string) ([]store.Refresh, error) {
	q, args := `SELECT `+refreshColumns+` FROM refreshes ORDER BY id DESC LIMIT 100`, []any{}
	if status != "" {
		q, args = db.Q(`SELECT `+refreshColumns+` FROM refreshes WHERE status = ? ORDER BY id`), []any{status}
	}
	rows, err := db.W.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing refreshes: %w", err)
	}
	defer rows.Close()
	var out []store.Refresh
	for rows.Next() {
		f, err := scanRefresh(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// SetRefreshState implements store.SourceStore (compare and set on status).
func (db *DB) SetRefreshState(ctx context.Context, id int64, from, to string, runIDs []int64, msg string) (bool, error) {
	if runIDs == nil {
		runIDs = []int64{}
	}
	b, _ := json.Marshal(runIDs)
	fin := int64(0)
	if to != store.RefreshPulling && to != store.RefreshRunning {
		fin = time.Now().UnixMicro()
	}
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE refreshes SET status = ?, run_ids = ?, error = ?, finished_at = ?
		WHERE id = ? AND status = ?`), to, string(b), msg, fin, id, from)
	if err != nil {
		return false, fmt.Errorf("updating refresh %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
