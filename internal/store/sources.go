package store

import (
	"context"
	"errors"
	"time"
)

// UploadsSource is the name of the source that pushed imports feed.
const UploadsSource = "uploads"

// SourceKindPush is the kind of the uploads source: nothing to pull.
const SourceKindPush = "push"

// ReservedAttrPrefix starts the attributes that the consent flow writes
// from Mailchimp into profiles.attrs: no source holds them and the merge of
// sources keeps them as they are.
const ReservedAttrPrefix = "mailchimp."

// ErrShrinkGuard fails a full pull that returned too few rows.
var ErrShrinkGuard = errors.New("shrink guard")

// SourceRecord is a source as stored. Secrets are sealed by the caller
// (package source); the store never sees them in clear.
type SourceRecord struct {
	ID            int64
	Name          string
	Kind          string
	Key           string
	Mode          string
	Cursor        string
	Schedule      string
	Rename        map[string]string
	Exclude       []string
	Priority      int
	MinRatio      float64
	Query         string
	URL           string
	Format        string
	DSNSealed     string
	HeadersSealed string
	HeaderNames   []string
	HighWater     string
	LastFullRows  int64 // -1: no successful full pull yet
	// LastScheduledAt is the last cron due time that queued a pull.
	LastScheduledAt time.Time
	CreatedBy       string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Pull statuses are the run statuses (RunQueued … RunCancelled).

// PullCounts are a pull's counters (SPEC section 11), from the source's
// point of view: New rows the source did not hold, Updated rows whose
// values changed, Unchanged the rest; Removed rows it held and no longer
// returns (full mode); Deleted profiles that no source held any more.
type PullCounts struct {
	Received  int64 `json:"received"`
	New       int64 `json:"new"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
	Removed   int64 `json:"removed"`
	Rejected  int64 `json:"rejected"`
	// Beyond the contract:
	Deleted         int64 `json:"deleted"`          // profiles deleted
	ProfilesWritten int64 `json:"profiles_written"` // profiles inserted or rewritten
}

// PullError is one rejected row of a pull (row numbers start at 1).
type PullError struct {
	Row    int64  `json:"row"`
	Reason string `json:"reason"`
}

// Pull is one execution of a source.
type Pull struct {
	ID              int64       `json:"id"`
	SourceID        int64       `json:"source_id"`
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
	LeaseToken      string      `json:"-"`
}

// StagedRow is one row of a pull on its way to the staging table: Attrs is
// a canonical attrjson object, or nil for a rejected row whose key is kept.
type StagedRow struct {
	Num        int64
	CustomerID string
	Attrs      []byte
}

// ApplyOptions say how a staged pull is applied.
type ApplyOptions struct {
	Full        bool   // full mode: remove what the source no longer has
	AllowShrink bool   // skip the shrink guard
	Mark        string // incremental: the new high-water mark ("" keeps it)
}

// Refresh is one system refresh.
type Refresh struct {
	ID          int64      `json:"id"`
	Status      string     `json:"status"`
	Stage       string     `json:"stage"` // pulls, exports, done
	Trigger     string     `json:"trigger"`
	RequestedBy string     `json:"requested_by,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	FinishedAt  *time.Time `json:"finished_at"`
	Pulls       []Pull     `json:"pulls"`
	Runs        []Run      `json:"runs"`
	FailedPulls []string   `json:"failed_pulls"` // names of sources whose pull failed
}

// SourceStore keeps sources, the attributes each source holds, pulls (the
// pulls table is the durable pull queue) and refreshes.
type SourceStore interface {
	CreateSource(ctx context.Context, s *SourceRecord) error
	GetSource(ctx context.Context, id int64) (SourceRecord, error)
	ListSources(ctx context.Context) ([]SourceRecord, error)
	// UpdateSource saves s; a changed priority re-merges the profiles the
	// source holds.
	UpdateSource(ctx context.Context, s *SourceRecord) error
	// DeleteSource deletes a source, removes its attributes from every
	// profile and deletes the profiles no source holds any more.
	DeleteSource(ctx context.Context, id int64) error
	// ProfileSources says which source each attribute of a profile came
	// from (attribute -> source name).
	ProfileSources(ctx context.Context, customerID string) (map[string]string, error)

	// EnqueuePull queues a pull of the source unless one is queued or
	// running, which is returned instead with created false.
	EnqueuePull(ctx context.Context, sourceID int64, trigger string, allowShrink bool, by string) (p Pull, created bool, err error)
	GetPull(ctx context.Context, id int64) (Pull, error)
	// ListPulls lists a source's pulls, newest first (limit ≤ 0: 100).
	ListPulls(ctx context.Context, sourceID int64, limit int) ([]Pull, error)
	// LastPull is the source's newest pull, or ErrNotFound.
	LastPull(ctx context.Context, sourceID int64) (Pull, error)
	// ClaimPull leases a pull to owner with a fresh token: a running pull
	// whose lease expired (restarted from scratch: its staged rows are
	// dropped) first, otherwise the oldest queued one. Lease times are the
	// database's clock.
	ClaimPull(ctx context.Context, owner string, lease time.Duration) (p Pull, ok bool, err error)
	// HeartbeatPull renews the lease while token holds it unexpired and
	// saves the counts; ErrConflict when the lease is lost.
	HeartbeatPull(ctx context.Context, id int64, token string, lease time.Duration, c PullCounts) (cancel bool, err error)
	// StagePullRows adds rows to the pull's staging area, fenced by token;
	// it returns the numbers of rows whose key an earlier row of the pull
	// already had (not staged).
	StagePullRows(ctx context.Context, id int64, token string, rows []StagedRow) (dups []int64, err error)
	// ApplyPull merges the staged rows into the profiles in one
	// transaction, fenced by token, and returns the counts (c's Received
	// and Rejected are kept). A full pull below the shrink guard is
	// ErrShrinkGuard and changes nothing.
	ApplyPull(ctx context.Context, id int64, token string, opt ApplyOptions, c PullCounts) (PullCounts, error)
	// FinishPull ends a pull held by token and drops its staged rows.
	FinishPull(ctx context.Context, id int64, token, status string, c PullCounts, errs []PullError, msg string) error
	// CancelPull cancels a queued pull at once, or asks a running one to stop.
	CancelPull(ctx context.Context, id int64) (Pull, error)

	// SourceSchedule support: AdvanceSourceSchedule moves the source's last
	// scheduled time from prev to next; false when another process did.
	AdvanceSourceSchedule(ctx context.Context, sourceID int64, prev, next time.Time) (bool, error)

	// CreateRefresh records a refresh and queues a pull of each given
	// source (or joins the one queued or running), in one transaction.
	// scheduledFor, when not nil, is the cron due time: a second refresh
	// for it (another process) is not created, and created is false.
	CreateRefresh(ctx context.Context, trigger, by string, scheduledFor *time.Time, sourceIDs []int64) (r Refresh, created bool, err error)
	GetRefresh(ctx context.Context, id int64) (Refresh, error)
	// AdvanceRefreshes moves every refresh whose pulls all ended to its
	// exports (queueing a run of each given export, exactly once across
	// processes) and every refresh whose runs all ended to done.
	AdvanceRefreshes(ctx context.Context, exportIDs []int64) error
}
