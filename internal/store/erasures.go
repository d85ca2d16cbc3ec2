package store

import (
	"context"
	"time"
)

// Erasure statuses.
const (
	ErasurePending   = "pending"   // waiting for a worker (or for its retry time)
	ErasureRunning   = "running"   // claimed by a worker
	ErasureSucceeded = "succeeded" // every audience answered deleted or not_found
)

// Erasure target results.
const (
	ErasureDeleted  = "deleted"
	ErasureNotFound = "not_found"
	ErasureFailed   = "failed"
	// ErasurePendingTarget: not tried yet.
	ErasurePendingTarget = "pending"
)

// Erasure is one right-to-erasure request (SPEC section 12).
type Erasure struct {
	ID          int64           `json:"id"`
	CustomerID  string          `json:"customer_id"`
	Status      string          `json:"status"`
	RequestedBy string          `json:"requested_by,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
	Attempts    int             `json:"attempts"`
	Audiences   []ErasureTarget `json:"audiences"`
	LastError   string          `json:"last_error,omitempty"`
	Token       int64           `json:"-"` // fencing token of the current claim
}

// ErasureTarget is one contact to delete permanently. Email is blanked
// once the contact is deleted or not found, and never shown.
type ErasureTarget struct {
	Seq          int    `json:"-"`
	ConnectionID int64  `json:"connection_id"`
	AudienceID   string `json:"audience_id"`
	Email        string `json:"-"`
	Result       string `json:"result"` // pending (not tried yet), deleted, not_found or failed
	Error        string `json:"error,omitempty"`
}

// ErasureStore keeps erasure requests, a durable job queue.
type ErasureStore interface {
	// CreateErasure records a request for customerID: every contact any
	// export sent for it (connection, audience, address) becomes a target;
	// its synced rows, run rejections and sample entries are removed in
	// the same transaction. ErrNotFound when segsync knows nothing of it.
	CreateErasure(ctx context.Context, customerID, requestedBy string) (Erasure, error)
	GetErasure(ctx context.Context, id int64) (Erasure, error)
	// ClaimErasure leases a pending request whose time has come, or a
	// running one whose lease expired, with a fresh fencing token.
	ClaimErasure(ctx context.Context, owner string, lease time.Duration) (Erasure, bool, error)
	// RecordErasureTarget saves one target's result if token is still the
	// request's current token (ErrConflict otherwise).
	RecordErasureTarget(ctx context.Context, id, token int64, seq int, result, errMsg string) error
	// RenewErasure extends a claim's lease to lease from now if token is
	// still the request's current token (ErrConflict otherwise).
	RenewErasure(ctx context.Context, id, token int64, lease time.Duration) error
	// FinishErasure ends a claim: succeeded, or pending again until retryAt.
	// done, when not nil, is added to the audit log in the same
	// transaction: an erasure is never done without its record.
	FinishErasure(ctx context.Context, id, token int64, succeeded bool, errMsg string, retryAt time.Time, done *AuditEvent) error
}
