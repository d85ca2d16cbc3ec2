package store

import (
	"context"
	"time"
)

// AuditEvent is one entry of the audit log. Detail never holds secrets.
type AuditEvent struct {
	ID         int64          `json:"id"`
	At         time.Time      `json:"at"`
	ActorID    int64          `json:"actor_id,omitempty"`
	ActorEmail string         `json:"actor"`
	Action     string         `json:"action"` // e.g. "connection.create"
	ObjectType string         `json:"object_type"`
	ObjectID   string         `json:"object_id,omitempty"`
	Detail     map[string]any `json:"detail,omitempty"`
}

// AuditFilter narrows a listing of the audit log, newest first.
type AuditFilter struct {
	BeforeID   int64 // only events with a smaller id (paging); 0: from the newest
	Limit      int   // at most this many; 0: 100
	ObjectType string
	// Kinds keeps events whose object type is any of these (segment,
	// profile, export, …); empty keeps every kind.
	Kinds    []string
	ObjectID string
	Action   string
}

// AuditStore keeps the audit log.
type AuditStore interface {
	AddAuditEvent(ctx context.Context, e *AuditEvent) error
	ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}
