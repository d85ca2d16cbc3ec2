// Package store defines segsync's persistence: the Store interface that the
// domain packages use, its record types and its sentinel errors. The
// implementation lives in sqldb, opened through the sqlite or postgres package.
package store

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors, mapped to HTTP statuses in one place (httpapi).
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
	// ErrLeaseLost: a write of a run's worker found that its claim (the
	// lease token) no longer holds, or that the lease expired by the
	// database's clock. It is an ErrConflict.
	ErrLeaseLost = fmt.Errorf("the run's lease is lost: %w", ErrConflict)
)

// Store is everything segsync keeps. Each domain adds its part in its own file.
type Store interface {
	ExportStore
	RunStore
	UserStore
	ConnectionStore
	AuditStore
	ProfileStore
	SegmentStore
	LeaseStore
	SourceStore
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Ready checks that the database answers and every migration is applied.
	Ready(ctx context.Context) error
	// Dialect names the implementation: "sqlite" or "postgres".
	Dialect() string
	Close() error
}
