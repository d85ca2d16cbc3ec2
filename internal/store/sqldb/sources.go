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

const sourceColumns = `id, name, kind, key_column, mode, cursor_column, schedule, rename, exclude, priority, min_ratio,
	query, url, format, dsn_sealed, headers_sealed, header_names, high_water, last_full_rows, last_scheduled_at, created_by, created_at, updated_at`

func scanSource(r rowScanner) (store.SourceRecord, error) {
	var s store.SourceRecord
	var rename, exclude, names string
	var cat, uat, ls int64
	if err := r.Scan(&s.ID, &s.Name, &s.Kind, &s.Key, &s.Mode, &s.Cursor, &s.Schedule, &rename, &exclude, &s.Priority, &s.MinRatio,
		&s.Query, &s.URL, &s.Format, &s.DSNSealed, &s.HeadersSealed, &names, &s.HighWater, &s.LastFullRows, &ls, &s.CreatedBy, &cat, &uat); err != nil {
		return s, err
	}
	s.CreatedAt, s.UpdatedAt = fromMicros(cat), fromMicros(uat)
	if ls != 0 {
		s.LastScheduledAt = fromMicros(ls)
	}
	if err := errors.Join(json.Unmarshal([]byte(rename), &s.Rename), json.Unmarshal([]byte(exclude), &s.Exclude),
		json.Unmarshal([]byte(names), &s.HeaderNames)); err != nil {
		return s, fmt.Errorf("source %d: %w", s.ID, err)
	}
	return s, nil
}

func sourceArgs(s *store.SourceRecord) []any {
	rename, _ := json.Marshal(orEmptyMap(s.Rename))
	exclude, _ := json.Marshal(orEmpty(s.Exclude))
	names, _ := json.Marshal(orEmpty(s.HeaderNames))
	return []any{s.Name, s.Kind, s.Key, s.Mode, s.Cursor, s.Schedule, string(rename), string(exclude), s.Priority, s.MinRatio,
		s.Query, s.URL, s.Format, s.DSNSealed, s.HeadersSealed, string(names)}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func orEmptyMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func uniqueViolation(err error) bool {
	s := err.Error()
	return strings.Contains(s, "UNIQUE") || strings.Contains(s, "unique") || strings.Contains(s, "duplicate key")
}

// CreateSource implements store.SourceStore.
func (db *DB) CreateSource(ctx context.Context, s *store.SourceRecord) error {
	now := time.Now().UnixMicro()
	args := append(sourceArgs(s), s.CreatedBy, now, now)
	err := db.W.QueryRowContext(ctx, db.Q(`INSERT INTO sources (name, kind, key_column, mode, cursor_column, schedule, rename, exclude,
		priority, min_ratio, query, url, format, dsn_sealed, headers_sealed, header_names, created_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`), args...).Scan(&s.ID)
	if err != nil {
		if uniqueViolation(err) {
			return fmt.Errorf("a source named %q exists already: %w", s.Name, store.ErrConflict)
		}
		return fmt.Errorf("creating source %q: %w", s.Name, err)
	}
	s.CreatedAt, s.UpdatedAt, s.LastFullRows = fromMicros(now), fromMicros(now), -1
	return nil
}

// GetSource implements store.SourceStore.
func (db *DB) GetSource(ctx context.Context, id int64) (store.SourceRecord, error) {
	s, err := scanSource(db.R.QueryRowContext(ctx, db.Q(`SELECT `+sourceColumns+` FROM sources WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("source %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("reading source %d: %w", id, err)
	}
	return s, nil
}

// ListSources implements store.SourceStore, in id order.
func (db *DB) ListSources(ctx context.Context) ([]store.SourceRecord, error) {
	rows, err := db.R.QueryContext(ctx, `SELECT `+sourceColumns+` FROM sources ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing sources: %w", err)
	}
	defer rows.Close()
	out := []store.SourceRecord{}
	for rows.Next() {
		s, err := scanSource(rows)
		if err != nil {
			return nil, fmt.Errorf("listing sources: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// UpdateSource implements store.SourceStore. A changed priority re-merges
// every profile the source holds, in the same transaction.
func (db *DB) UpdateSource(ctx context.Context, s *store.SourceRecord) error {
	now := time.Now().UnixMicro()
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var prio int
		if err := tx.QueryRowContext(ctx, db.Q(`SELECT priority FROM sources WHERE id = ?`), s.ID).Scan(&prio); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("source %d: %w", s.ID, store.ErrNotFound)
			}
			return err
		}
		args := append(sourceArgs(s), now, s.ID)
		if _, err := tx.ExecContext(ctx, db.Q(`UPDATE sources SET name = ?, kind = ?, key_column = ?, mode = ?, cursor_column = ?,
			schedule = ?, rename = ?, exclude = ?, priority = ?, min_ratio = ?, query = ?, url = ?, format = ?, dsn_sealed = ?,
			headers_sealed = ?, header_names = ?, updated_at = ? WHERE id = ?`), args...); err != nil {
			if uniqueViolation(err) {
				return fmt.Errorf("a source named %q exists already: %w", s.Name, store.ErrConflict)
			}
			return fmt.Errorf("updating source %d: %w", s.ID, err)
		}
		if prio == s.Priority {
			return nil
		}
		return db.remergeSource(ctx, tx, s.ID, false)
	})
	if err != nil {
		return err
	}
	s.UpdatedAt = fromMicros(now)
	return nil
}

// remergeSource re-merges every profile source id holds (after a priority
// change), or removes the source from all of them (remove).
func (db *DB) remergeSource(ctx context.Context, tx *sql.Tx, id int64, remove bool) error {
	if err := db.lockProfiles(ctx, tx); err != nil {
		return err
	}
	st, err := db.newLayerState(ctx, tx, time.Now().UnixMicro())
	if err != nil {
		return err
	}
	after := ""
	for {
		var ops []layerOp
		if err := scanEach(ctx, tx, db.Q(`SELECT customer_id, attrs FROM source_rows WHERE source_id = ? AND customer_id > ? ORDER BY customer_id LIMIT ?`),
			[]any{id, after, pullApplyPage}, func(r *sql.Rows) error {
				var op layerOp
				if err := r.Scan(&op.id, &op.attrs); err != nil {
					return err
				}
				op.remove, op.remerge = remove, !remove
				ops = append(ops, op)
				return nil
			}); err != nil {
			return fmt.Errorf("reading the rows of source %d: %w", id, err)
		}
		if len(ops) == 0 {
			break
		}
		after = ops[len(ops)-1].id
		if err := db.applyLayer(ctx, tx, id, ops, st); err != nil {
			return err
		}
		if len(ops) < pullApplyPage {
			break
		}
	}
	return st.cat.apply(ctx, db, tx)
}

// DeleteSource implements store.SourceStore.
func (db *DB) DeleteSource(ctx context.Context, id int64) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if err := db.remergeSource(ctx, tx, id, true); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM pulls WHERE source_id = ?`), id); err != nil {
			return fmt.Errorf("deleting the pulls of source %d: %w", id, err)
		}
		res, err := tx.ExecContext(ctx, db.Q(`DELETE FROM sources WHERE id = ?`), id)
		if err != nil {
			return fmt.Errorf("deleting source %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("source %d: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// AdvanceSourceSchedule implements store.SourceStore (compare-and-set).
func (db *DB) AdvanceSourceSchedule(ctx context.Context, sourceID int64, prev, next time.Time) (bool, error) {
	var p int64
	if !prev.IsZero() {
		p = prev.UnixMicro()
	}
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE sources SET last_scheduled_at = ? WHERE id = ? AND last_scheduled_at = ?`),
		next.UnixMicro(), sourceID, p)
	if err != nil {
		return false, fmt.Errorf("advancing the schedule of source %d: %w", sourceID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
