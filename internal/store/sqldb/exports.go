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

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

const exportColumns = `id, name, connection_id, audience_id, segment_ids, mapping, status_if_new, on_leave,
	tag_prefix, create_missing_merge_fields, schedule, created_by, created_at, updated_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanExport(r rowScanner) (store.Export, error) {
	var (
		e        store.Export
		conn     sql.NullInt64
		segs     string
		mapping  string
		cmmf     bool
		cat, uat int64
	)
	if err := r.Scan(&e.ID, &e.Name, &conn, &e.AudienceID, &segs, &mapping, &e.StatusIfNew, &e.OnLeave,
		&e.TagPrefix, &cmmf, &e.Schedule, &e.CreatedBy, &cat, &uat); err != nil {
		return e, err
	}
	if conn.Valid {
		id := conn.Int64
		e.ConnectionID = &id
	}
	if err := json.Unmarshal([]byte(segs), &e.SegmentIDs); err != nil {
		return e, fmt.Errorf("export %d: segment_ids: %w", e.ID, err)
	}
	if err := json.Unmarshal([]byte(mapping), &e.Mapping); err != nil {
		return e, fmt.Errorf("export %d: mapping: %w", e.ID, err)
	}
	e.CreateMissingMergeFields = cmmf
	e.CreatedAt, e.UpdatedAt = fromMicros(cat), fromMicros(uat)
	return e, nil
}

func exportJSON(e *store.Export) (segs, mapping string, err error) {
	if e.SegmentIDs == nil {
		e.SegmentIDs = []int64{}
	}
	s, err := json.Marshal(e.SegmentIDs)
	if err != nil {
		return "", "", err
	}
	m, err := json.Marshal(e.Mapping)
	if err != nil {
		return "", "", err
	}
	return string(s), string(m), nil
}

func nullID(id *int64) any {
	if id == nil {
		return nil
	}
	return *id
}

// CreateExport inserts e and sets its ID and times.
func (db *DB) CreateExport(ctx context.Context, e *store.Export) error {
	segs, mapping, err := exportJSON(e)
	if err != nil {
		return fmt.Errorf("creating export: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	e.CreatedAt, e.UpdatedAt = now, now
	err = db.W.QueryRowContext(ctx, db.Q(`INSERT INTO exports (name, connection_id, audience_id, segment_ids, mapping,
		status_if_new, on_leave, tag_prefix, create_missing_merge_fields, schedule, created_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		e.Name, nullID(e.ConnectionID), e.AudienceID, segs, mapping, e.StatusIfNew, e.OnLeave, e.TagPrefix,
		e.CreateMissingMergeFields, e.Schedule, e.CreatedBy, micros(now), micros(now)).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("creating export: %w", err)
	}
	db.fillAddressesNow(e.Mapping.Email)
	return nil
}

// GetExport reads one export.
func (db *DB) GetExport(ctx context.Context, id int64) (store.Export, error) {
	e, err := scanExport(db.R.QueryRowContext(ctx, db.Q(`SELECT `+exportColumns+` FROM exports WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("export %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("reading export %d: %w", id, err)
	}
	return e, nil
}

// ListExports lists every export by id.
func (db *DB) ListExports(ctx context.Context) ([]store.Export, error) {
	rows, err := db.R.QueryContext(ctx, `SELECT `+exportColumns+` FROM exports ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing exports: %w", err)
	}
	defer rows.Close()
	out := []store.Export{}
	for rows.Next() {
		e, err := scanExport(rows)
		if err != nil {
			return nil, fmt.Errorf("listing exports: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing exports: %w", err)
	}
	return out, nil
}

// UpdateExport replaces the definition of export e.ID.
func (db *DB) UpdateExport(ctx context.Context, e *store.Export) error {
	segs, mapping, err := exportJSON(e)
	if err != nil {
		return fmt.Errorf("updating export %d: %w", e.ID, err)
	}
	e.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE exports SET name = ?, connection_id = ?, audience_id = ?,
		segment_ids = ?, mapping = ?, status_if_new = ?, on_leave = ?, tag_prefix = ?,
		create_missing_merge_fields = ?, schedule = ?, updated_at = ? WHERE id = ?`),
		e.Name, nullID(e.ConnectionID), e.AudienceID, segs, mapping, e.StatusIfNew, e.OnLeave, e.TagPrefix,
		e.CreateMissingMergeFields, e.Schedule, micros(e.UpdatedAt), e.ID)
	if err != nil {
		return fmt.Errorf("updating export %d: %w", e.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("export %d: %w", e.ID, store.ErrNotFound)
	}
	db.fillAddressesNow(e.Mapping.Email)
	return nil
}

// DeleteExport deletes an export with its runs and synced state (cascade).
// It never touches Mailchimp.
func (db *DB) DeleteExport(ctx context.Context, id int64) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		// Explicit deletes keep this independent of foreign-key enforcement.
		for _, q := range []string{
			`DELETE FROM synced WHERE export_id = ?`,
			`DELETE FROM export_tags WHERE export_id = ?`,
			`DELETE FROM export_plans WHERE export_id = ?`,
			`DELETE FROM run_rejections WHERE run_id IN (SELECT id FROM runs WHERE export_id = ?)`,
			`DELETE FROM runs WHERE export_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, db.Q(q), id); err != nil {
				return fmt.Errorf("deleting export %d: %w", id, err)
			}
		}
		res, err := tx.ExecContext(ctx, db.Q(`DELETE FROM exports WHERE id = ?`), id)
		if err != nil {
			return fmt.Errorf("deleting export %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("export %d: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// DetachExports unbinds every export from a connection.
func (db *DB) DetachExports(ctx context.Context, connectionID int64) (int64, error) {
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE exports SET connection_id = NULL, updated_at = ? WHERE connection_id = ?`),
		time.Now().UnixMicro(), connectionID)
	if err != nil {
		return 0, fmt.Errorf("detaching exports of connection %d: %w", connectionID, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// ExportsUsingConnection lists the exports bound to a connection.
func (db *DB) ExportsUsingConnection(ctx context.Context, connectionID int64) ([]int64, error) {
	rows, err := db.R.QueryContext(ctx, db.Q(`SELECT id FROM exports WHERE connection_id = ? ORDER BY id`), connectionID)
	if err != nil {
		return nil, fmt.Errorf("listing exports of connection %d: %w", connectionID, err)
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

func (db *DB) exportTime(ctx context.Context, col string, exportID int64) (time.Time, error) {
	var us int64
	err := db.R.QueryRowContext(ctx, db.Q(`SELECT `+col+` FROM exports WHERE id = ?`), exportID).Scan(&us)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("export %d: %w", exportID, store.ErrNotFound)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading %s of export %d: %w", col, exportID, err)
	}
	return fromMicros(us), nil
}

func (db *DB) setExportTime(ctx context.Context, col string, exportID int64, t time.Time) error {
	if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE exports SET `+col+` = ? WHERE id = ?`), micros(t), exportID); err != nil {
		return fmt.Errorf("setting %s of export %d: %w", col, exportID, err)
	}
	return nil
}

// StatusAsOf is when the export's synced statuses were last refreshed.
func (db *DB) StatusAsOf(ctx context.Context, exportID int64) (time.Time, error) {
	return db.exportTime(ctx, "status_as_of", exportID)
}

// SetStatusAsOf records when the synced statuses were refreshed.
func (db *DB) SetStatusAsOf(ctx context.Context, exportID int64, t time.Time) error {
	return db.setStatusAsOf(ctx, nil, exportID, t)
}

// setStatusAsOf is SetStatusAsOf in a transaction fenced by f (nil: none).
// The export's first refresh also marks its flow-back as owing the
// profiles a full pass (flow_pending, see upsertSynced), before any
// contact of the first run is recorded.
func (db *DB) setStatusAsOf(ctx context.Context, f *store.RunLease, exportID int64, t time.Time) error {
	return db.fencedTx(ctx, f, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.Q(`UPDATE exports SET flow_pending = CASE WHEN status_as_of = 0 THEN ? ELSE flow_pending END, status_as_of = ? WHERE id = ?`),
			flowOwed, micros(t), exportID); err != nil {
			return fmt.Errorf("setting the status time of export %d: %w", exportID, err)
		}
		return nil
	})
}

// LastScheduled is when the scheduler last queued the export.
func (db *DB) LastScheduled(ctx context.Context, exportID int64) (time.Time, error) {
	return db.exportTime(ctx, "last_scheduled_at", exportID)
}

// SetLastScheduled records when the scheduler queued the export.
func (db *DB) SetLastScheduled(ctx context.Context, exportID int64, t time.Time) error {
	return db.setExportTime(ctx, "last_scheduled_at", exportID, t)
}

// AdvanceSchedule moves last_scheduled_at from prev to next in one
// compare-and-set, so that a schedule fires once however many processes
// evaluate it at the same moment.
func (db *DB) AdvanceSchedule(ctx context.Context, exportID int64, prev, next time.Time) (bool, error) {
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE exports SET last_scheduled_at = ? WHERE id = ? AND last_scheduled_at = ?`),
		micros(next), exportID, micros(prev))
	if err != nil {
		return false, fmt.Errorf("advancing the schedule of export %d: %w", exportID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("advancing the schedule of export %d: %w", exportID, err)
	}
	return n == 1, nil
}
