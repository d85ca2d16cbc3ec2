package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/store"
)

// AddAuditEvent appends one event to the audit log and sets its ID.
func (db *DB) AddAuditEvent(ctx context.Context, e *store.AuditEvent) error {
	return db.addAuditEvent(ctx, db.W, e)
}

// addAuditEvent is AddAuditEvent through q: the database or a transaction.
func (db *DB) addAuditEvent(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, e *store.AuditEvent) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	detail := []byte("{}")
	if len(e.Detail) > 0 {
		b, err := json.Marshal(e.Detail)
		if err != nil {
			return fmt.Errorf("encoding audit detail: %w", err)
		}
		detail = b
	}
	if err := q.QueryRowContext(ctx, db.Q(`INSERT INTO audit_events (at, actor_id, actor_email, action, object_type, object_id, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		authMicros(e.At), authNullID(e.ActorID), e.ActorEmail, e.Action, e.ObjectType, e.ObjectID, string(detail)).Scan(&e.ID); err != nil {
		return fmt.Errorf("recording audit event %s: %w", e.Action, err)
	}
	return nil
}

// ListAuditEvents lists events newest first.
func (db *DB) ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var where []string
	var args []any
	if f.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	if f.ObjectType != "" {
		where, args = append(where, "object_type = ?"), append(args, f.ObjectType)
	}
	if len(f.Kinds) > 0 {
		where = append(where, "object_type IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(f.Kinds)), ", ")+")")
		for _, k := range f.Kinds {
			args = append(args, k)
		}
	}
	if f.ObjectID != "" {
		where, args = append(where, "object_id = ?"), append(args, f.ObjectID)
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q := `SELECT id, at, actor_id, actor_email, action, object_type, object_id, detail FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := db.R.QueryContext(ctx, db.Q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("listing audit events: %w", err)
	}
	defer rows.Close()
	var es []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var at int64
		var actor = authNullID(0)
		var detail string
		if err := rows.Scan(&e.ID, &at, &actor, &e.ActorEmail, &e.Action, &e.ObjectType, &e.ObjectID, &detail); err != nil {
			return nil, fmt.Errorf("listing audit events: %w", err)
		}
		e.At, e.ActorID = authTime(at), actor.Int64
		if detail != "" && detail != "{}" {
			if err := json.Unmarshal([]byte(detail), &e.Detail); err != nil {
				return nil, fmt.Errorf("decoding audit event %d: %w", e.ID, err)
			}
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing audit events: %w", err)
	}
	return es, nil
}
