package store

import (
	"context"
	"time"
)

// Run statuses.
const (
	RunQueued             = "queued"
	RunRunning            = "running"
	RunSucceeded          = "succeeded"
	RunPartiallySucceeded = "partially_succeeded"
	RunFailed             = "failed"
	RunCancelled          = "cancelled"
)

// Run triggers.
const (
	TriggerManual   = "manual"
	TriggerSchedule = "schedule"
	TriggerRefresh  = "refresh"
)

// Run is one execution of an export.
type Run struct {
	ID              int64      `json:"id"`
	ExportID        int64      `json:"export_id"`
	Status          string     `json:"status"`
	Trigger         string     `json:"trigger"`
	DryRun          bool       `json:"dry_run"`
	RequestedBy     string     `json:"requested_by,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at"`
	Progress        Progress   `json:"progress"`
	Counts          RunCounts  `json:"counts"`
	Timings         RunTimings `json:"timings"`
	Error           string     `json:"error"`
	Sample          RunSample  `json:"sample,omitempty"`
	CancelRequested bool       `json:"cancel_requested"`
	Attempts        int        `json:"attempts"`
	LeaseOwner      string     `json:"-"`
	// LeaseToken is the claim's fencing token: fresh and random for every
	// claim, it is what the claim's worker presents with each write.
	LeaseToken string `json:"-"`
}

// RunLease names one claim of a run: the writes of the run's worker are
// accepted only while the run still carries this token and its lease has
// not expired by the database's clock.
type RunLease struct {
	RunID int64
	Token string
}

// Progress of a run: contacts with a change handled out of those planned.
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// RunCounts are the run's counters (SPEC section 7, plus a few more).
type RunCounts struct {
	Profiles            int64 `json:"profiles"`
	SkippedInvalidEmail int64 `json:"skipped_invalid_email"`
	Duplicates          int64 `json:"duplicates"`
	Unchanged           int64 `json:"unchanged"`
	Created             int64 `json:"created"`
	Updated             int64 `json:"updated"`
	TagsAdded           int64 `json:"tags_added"`
	TagsRemoved         int64 `json:"tags_removed"`
	Archived            int64 `json:"archived"`
	Unsubscribed        int64 `json:"unsubscribed"`
	Rejected            int64 `json:"rejected"`
	// Beyond the contract:
	Contacts        int64 `json:"contacts"`         // distinct valid addresses in the export
	Adopted         int64 `json:"adopted"`          // existing contacts taken under management
	Restored        int64 `json:"restored"`         // contacts this export had archived, back
	Left            int64 `json:"left"`             // contacts that left all segments
	SkippedRejected int64 `json:"skipped_rejected"` // permanently rejected earlier, data unchanged
	SkippedArchived int64 `json:"skipped_archived"` // archived by someone else: left alone
	WriteCalls      int64 `json:"write_calls"`      // Mailchimp calls that may change data
	// EmailChanged counts contacts whose address was changed in place (a
	// profile's new address replaced the old one: status, tags and history
	// stay); EmailChangeCollisions those whose new address already was a
	// contact, handled as a leaver plus an existing contact instead.
	EmailChanged          int64 `json:"email_changed"`
	EmailChangeCollisions int64 `json:"email_change_collisions"`
	// Incremental is 1 when the run planned only the profiles changed
	// since the export's last complete run (and the contacts they touch):
	// Profiles, Contacts, Duplicates and Unchanged then count those; 0 when
	// it planned every profile. (A number, as every count is.)
	Incremental int64 `json:"incremental"`
}

// RunTimings say where a run's time went, in milliseconds of wall time
// summed over the run's attempts. The phases of one attempt follow each
// other except Record, the time spent writing acknowledgements and
// statuses to the database, which overlaps Send, and Idle, the time during
// which a call of the run waited for one of the account's connections
// (taken by other runs or processes), which overlaps the phases that call.
type RunTimings struct {
	PlanMS          int64 `json:"plan_ms"`           // reading merge fields and segments, planning the changes
	StatusRefreshMS int64 `json:"status_refresh_ms"` // learning the statuses that changed in Mailchimp
	SendMS          int64 `json:"send_ms"`           // sending the changes (the diff streamed again) until the last answer is recorded
	RecordMS        int64 `json:"record_ms"`         // writing acknowledgements and statuses to the database
	IdleMS          int64 `json:"idle_ms"`           // calls waiting for one of the account's connections
}

// Add returns the sum of two timings.
func (t RunTimings) Add(o RunTimings) RunTimings {
	return RunTimings{t.PlanMS + o.PlanMS, t.StatusRefreshMS + o.StatusRefreshMS, t.SendMS + o.SendMS, t.RecordMS + o.RecordMS, t.IdleMS + o.IdleMS}
}

// RunSample lists a few contacts per kind of change (dry runs).
type RunSample map[string][]SampleContact

// SampleContact is one contact in a dry run's sample.
type SampleContact struct {
	Email      string   `json:"email"`
	CustomerID string   `json:"customer_id,omitempty"`
	Detail     string   `json:"detail,omitempty"`
	Tags       []string `json:"tags,omitempty"`
}

// Rejection is one contact Mailchimp refused during a run.
type Rejection struct {
	Email      string `json:"email"`
	CustomerID string `json:"customer_id"`
	Reason     string `json:"reason"`
	Kind       string `json:"kind"` // permanent or transient
}

// RunStore keeps runs; the runs table is also the durable run queue.
type RunStore interface {
	// EnqueueRun queues a run unless one of the same kind is already queued
	// for the export, in which case that one is returned with created false.
	EnqueueRun(ctx context.Context, exportID int64, trigger string, dryRun bool, requestedBy string) (r Run, created bool, err error)
	GetRun(ctx context.Context, id int64) (Run, error)
	// ListRuns lists an export's runs, newest first (limit ≤ 0: 100).
	ListRuns(ctx context.Context, exportID int64, limit int) ([]Run, error)
	// ClaimRun leases one run to owner until the database's now + lease,
	// under a fresh random token (Run.LeaseToken): a running run whose lease
	// expired (its worker died or stopped: it is resumed) first, otherwise
	// the oldest queued run of an export that is not running. A run whose
	// lease is live is never claimed, whoever asks. ok is false when there
	// is nothing to do.
	ClaimRun(ctx context.Context, owner string, lease time.Duration) (r Run, ok bool, err error)
	// HeartbeatRun extends the lease to the database's now + lease and saves
	// progress and counts, if the claim l still holds and its lease has not
	// expired; otherwise it returns ErrLeaseLost. It reports whether a
	// cancel was requested.
	HeartbeatRun(ctx context.Context, l RunLease, lease time.Duration, p Progress, c RunCounts, t RunTimings) (cancel bool, err error)
	// ReleaseRun gives a claimed run back (shutdown): its lease expires at
	// once, so the next worker resumes it. ErrLeaseLost as HeartbeatRun.
	ReleaseRun(ctx context.Context, l RunLease, p Progress, c RunCounts, t RunTimings) error
	// FinishRun ends the run of claim l; ErrLeaseLost as HeartbeatRun.
	FinishRun(ctx context.Context, l RunLease, status string, p Progress, c RunCounts, t RunTimings, sample RunSample, errMsg string) error
	// CancelRun cancels a queued run at once, or asks a running one to stop.
	CancelRun(ctx context.Context, id int64) (Run, error)
	AddRejections(ctx context.Context, runID int64, rs []Rejection) error
	// StreamRejections calls fn for each rejection of a run in order.
	StreamRejections(ctx context.Context, runID int64, fn func(Rejection) error) error
}

// RunScoped is the part of the store a run's engine uses, as one claim of
// the run sees it: every write is fenced by the claim and fails with
// ErrLeaseLost, writing nothing, once the claim no longer holds (package
// sqldb's Fenced). It matches syncer.Store.
type RunScoped interface {
	StatusAsOf(ctx context.Context, exportID int64) (time.Time, error)
	SetStatusAsOf(ctx context.Context, exportID int64, t time.Time) error
	ExportTags(ctx context.Context, exportID int64, names []string) (map[string]int, error)
	AllExportTags(ctx context.Context, exportID int64) (map[int]string, error)
	ReleaseUnusedTags(ctx context.Context, exportID int64) error
	StreamSynced(ctx context.Context, exportID int64, fn func(Synced) error) error
	ApplySynced(ctx context.Context, exportID int64, changes []SyncedChange) error
	ApplySyncedRun(ctx context.Context, exportID int64, changes []SyncedChange, runID int64, token string, c RunCounts) error
	AddIntents(ctx context.Context, exportID int64, intents []Intent) (int64, error)
	LeftIntents(ctx context.Context, exportID int64) (map[string]string, error)
	UpdateSyncedStatuses(ctx context.Context, exportID int64, statuses map[string]string) error
	SyncedOtherStatus(ctx context.Context, exportID int64, status string) (bool, error)
	RecordArchived(ctx context.Context, exportID int64, emails map[string]string) error
	AddRejections(ctx context.Context, runID int64, rs []Rejection) error
}

// RunFencer is a store that can fence a run's writes by a claim.
type RunFencer interface {
	FenceRun(l RunLease) RunScoped
}
