package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrShrink is the shrink guard's refusal of a full pull that returned far
// fewer rows than the last one (wrapped with the figures).
var ErrShrink = errors.New("shrink guard")

// UploadsSourceID is the source of pushed imports (/api/v1/profiles/import).
const UploadsSourceID = 1

// Source is a data source segsync pulls profiles from (SPEC section 11).
// Secret holds the vault-sealed secrets (DSN, header values); it never
// leaves the service that opens it.
type Source struct {
	ID              int64           `json:"id"`
	Name            string          `json:"name"`
	Kind            string          `json:"kind"`
	Key             string          `json:"key"`
	Mode            string          `json:"mode"`
	Cursor          string          `json:"cursor,omitempty"`
	Schedule        string          `json:"schedule"`
	Priority        int             `json:"priority"`
	MinRatio        float64         `json:"min_ratio"`
	Config          json.RawMessage `json:"-"`
	Secret          []byte          `json:"-"`
	CreatedBy       string          `json:"created_by,omitempty"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	HighWater       string          `json:"-"`
	LastFullRows    int64           `json:"-"`
	LastScheduledAt time.Time       `json:"-"`
}

// Pull statuses are the run statuses (RunQueued … RunCancelled).

// PullCounts are a pull's counters (SPEC section 11).
type PullCounts struct {
	Received  int64 `json:"received"`
	New       int64 `json:"new"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
	Removed   int64 `json:"removed"`
	Rejected  int64 `json:"rejected"`
	// Beyond the contract: profiles deleted because no source holds them.
	Deleted int64 `json:"deleted"`
}

// PullError is one rejected row of a pull.
type PullError struct {
	Row    int64  `json:"row"`
	Reason string `json:"reason"`
}

// Pull is one execution of a source.
type Pull struct {
	ID              int64       `json:"id"`
	SourceID        int64       `json:"source_id"`
	RefreshID       *int64      `json:"refresh_id,omitempty"`
	Status          string      `json:"status"`
	Trigger         string      `json:"trigger"`
	AllowShrink     bool        `json:"allow_shrink"`
	RequestedBy     string      `json:"requested_by,omitempty"`
	CreatedAt       time.Time   `json:"created_at"`
	StartedAt       *time.Time  `json:"started_at"`
	FinishedAt      *time.Time  `json:"finished_at"`
	Counts          PullCounts  `json:"counts"`
	Errors          []PullError `json:"errors"`
	Error           string      `json:"error"`
	CancelRequested bool        `json:"cancel_requested"`
	Attempts        int         `json:"attempts"`
}

// Lease is a claim of a job: Token is fresh for every claim, and every write
// the holder makes is conditional on it and on the lease being live by the
// database's clock.
type Lease struct {
	Token string
	TTL   time.Duration
}

// StagedRow is one row of a pull, its attributes canonical (attrjson).
type StagedRow struct {
	CustomerID string
	Attrs      string
}

// Stage is the rows of a pull, each key once, staged by the worker outside
// the store (package source/stage).
type Stage interface {
	Len() int64
	// Page returns up to n staged rows whose keys follow after, in the
	// keys' byte order.
	Page(ctx context.Context, after string, n int) ([]StagedRow, error)
}

// ApplyPull says how a staged pull is applied.
type ApplyPull struct {
	Stage       Stage
	Full        bool    // full mode: the source's rows absent from the pull are removed
	MinRatio    float64 // shrink guard (full mode)
	AllowShrink bool
	HighWater   string // incremental: the new mark to store
}

// Refresh is one system refresh: pulls, then runs.
type Refresh struct {
	ID          int64      `json:"id"`
	Status      string     `json:"status"` // pulling, running, succeeded, failed
	Trigger     string     `json:"trigger"`
	RequestedBy string     `json:"requested_by,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	FinishedAt  *time.Time `json:"finished_at"`
	RunIDs      []int64    `json:"-"`
	Error       string     `json:"error"`
}

// Refresh statuses beyond the run statuses.
const (
	RefreshPulling = "pulling"
	RefreshRunning = "running"
)

// LayerAttr names the source an attribute of a profile came from.
type LayerAttr struct {
	SourceID int64
	Name     string
}

// SourceStore keeps sources, pulls and refreshes.
type SourceStore interface {
	CreateSource(ctx context.Context, s Source) (Source, error)
	UpdateSource(ctx context.Context, s Source) (Source, error)
	GetSource(ctx context.Context, id int64) (Source, error)
	ListSources(ctx context.Context) ([]Source, error)
	// DeleteSource deletes a source and its layer, re-merging the profiles
	// it fed (a profile no source holds any more is deleted).
	DeleteSource(ctx context.Context, id int64) (deleted int64, err error)
	AdvanceSourceSchedule(ctx context.Context, id int64, prev, next time.Time) (bool, error)

	// EnqueuePull queues a pull unless one is queued for the source already
	// (that one is returned, created false).
	EnqueuePull(ctx context.Context, sourceID int64, refreshID *int64, trigger string, allowShrink bool, by string) (p Pull, created bool, err error)
	GetPull(ctx context.Context, id int64) (Pull, error)
	ListPulls(ctx context.Context, sourceID int64, limit int) ([]Pull, error)
	LastPull(ctx context.Context, sourceID int64) (Pull, bool, error)
	// ClaimPull leases a pull whose lease expired (restarting it from
	// scratch), or the oldest queued one.
	ClaimPull(ctx context.Context, l Lease) (Pull, bool, error)
	// ReleasePull gives a claimed pull back (shutdown): any worker may
	// claim it at once and starts it again from scratch.
	ReleasePull(ctx context.Context, id int64, l Lease) error
	// HeartbeatPull renews the lease and saves counts; ErrConflict when the
	// lease is lost. It reports a requested cancel.
	HeartbeatPull(ctx context.Context, id int64, l Lease, c PullCounts) (cancel bool, err error)
	// ApplyPullStage applies the pull's stage (a.Stage) to the source's
	// layer and re-merges the affected profiles, in one transaction, and
	// finishes the pull.
	ApplyPullStage(ctx context.Context, id int64, l Lease, a ApplyPull, c PullCounts, errs []PullError, status string) (PullCounts, error)
	// FinishPull ends a pull without applying anything.
	FinishPull(ctx context.Context, id int64, l Lease, status string, c PullCounts, errs []PullError, msg string) error
	CancelPull(ctx context.Context, id int64) (Pull, error)

	// CreateRefresh creates a refresh and queues a pull of each of the
	// sources for it (adopting one queued already), in one transaction: a
	// refresh is never seen with only some of its pulls, so its exports
	// never start on half-pulled data. A source deleted meanwhile is left out.
	CreateRefresh(ctx context.Context, trigger, by string, sources []int64) (Refresh, error)
	GetRefresh(ctx context.Context, id int64) (Refresh, error)
	ListRefreshes(ctx context.Context, status string) ([]Refresh, error)
	RefreshPulls(ctx context.Context, refreshID int64) ([]Pull, error)
	// SetRefreshState moves a refresh from status from to to, with its runs.
	SetRefreshState(ctx context.Context, id int64, from, to string, runIDs []int64, msg string) (bool, error)
	// AdvanceNamedSchedule moves a named schedule from prev to next (compare
	// and set across processes); false when another process did it first.
	AdvanceNamedSchedule(ctx context.Context, name string, prev, next time.Time) (bool, error)
	NamedScheduleLast(ctx context.Context, name string) (time.Time, error)

	// ProfileSources tells, for each attribute of a profile, its source.
	ProfileSources(ctx context.Context, customerID string) (map[string]string, error)
}
