package store

import (
	"context"
	"time"
)

// Export is one export definition: connection + audience + mapping +
// segments + policies + schedule.
type Export struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	// ConnectionID is nil when the export was detached from its connection;
	// a detached export keeps its configuration but does not run.
	ConnectionID             *int64    `json:"connection_id"`
	AudienceID               string    `json:"audience_id"`
	SegmentIDs               []int64   `json:"segment_ids"`
	Mapping                  Mapping   `json:"mapping"`
	StatusIfNew              string    `json:"status_if_new"`
	OnLeave                  string    `json:"on_leave"`
	TagPrefix                string    `json:"tag_prefix"`
	CreateMissingMergeFields bool      `json:"create_missing_merge_fields"`
	Schedule                 string    `json:"schedule"`
	CreatedBy                string    `json:"created_by,omitempty"`
	CreatedAt                time.Time `json:"created_at"`
	UpdatedAt                time.Time `json:"updated_at"`
}

// Mapping says which profile attributes feed which Mailchimp fields.
type Mapping struct {
	Email      string         `json:"email"`
	FirstName  string         `json:"first_name,omitempty"`
	LastName   string         `json:"last_name,omitempty"`
	Attributes []AttributeMap `json:"attributes,omitempty"`
}

// AttributeMap maps one profile attribute to one merge tag.
type AttributeMap struct {
	Attribute string `json:"attribute"`
	MergeTag  string `json:"merge_tag"`
}

// Synced is what Mailchimp acknowledged for one contact of one export.
type Synced struct {
	Hash         string // subscriber hash: md5 of lower(trim(email))
	Email        string
	CustomerID   string
	InAudience   bool   // created or adopted by this export
	InExport     bool   // in the export's segments when last synced
	FieldsHash   string // hash of the mapped fields last acknowledged
	Tags         uint64 // bit set over the export's managed tags (ExportTags)
	CreatedByUs  bool
	ArchivedByUs bool
	Status       string // last known Mailchimp status
	RejectedHash string // FieldsHash a permanent rejection applies to
}

// SyncedChange is one acknowledged change to the synced state. Set inserts
// the row or replaces everything but its tags (tags of an existing row change
// only through AddTags and RemoveTags, so concurrent acknowledgements of
// fields and tags never undo each other); then the tag bits are applied.
// Delete removes the row (the contact no longer exists under this address:
// its address was changed, or it was erased); of a Set and a Delete of one
// contact in a batch, the last wins. A change with only DropIntents set
// deletes that batch of create intents (AddIntents), in the transaction
// that records the last outcome of its creates. New on a Set tells the
// store that the contact had no row when its run planned it (a create):
// the store may then insert it without looking for the row first, and must
// still be right when the row exists after all.
type SyncedChange struct {
	Hash        string
	Set         *Synced
	Delete      bool
	New         bool
	AddTags     uint64
	RemoveTags  uint64
	DropIntents int64
}

// Intent notes, before a create is sent, that a contact is being created
// with the given fields. Intents are noted by batch (AddIntents); a batch
// lasts until the outcomes of all its creates are recorded (DropIntents),
// so an answer lost to a crash or a dropped connection leaves it behind
// for the next run to recognise its own contact by (LeftIntents). Hash is
// the address's subscriber hash, emailaddr.Hash(Email): the store keeps
// the address and may derive the hash from it.
type Intent struct {
	Hash       string
	Email      string
	CustomerID string
	FieldsHash string
}

// ExportStore keeps export definitions and their synced state.
type ExportStore interface {
	CreateExport(ctx context.Context, e *Export) error
	GetExport(ctx context.Context, id int64) (Export, error)
	ListExports(ctx context.Context) ([]Export, error)
	// UpdateExport replaces the definition (not ID, CreatedBy, CreatedAt).
	UpdateExport(ctx context.Context, e *Export) error
	// DeleteExport deletes the export, its runs and its synced state.
	DeleteExport(ctx context.Context, id int64) error
	// DetachExports sets connection_id to NULL on every export of a connection
	// and returns how many were detached.
	DetachExports(ctx context.Context, connectionID int64) (int64, error)
	// ExportsUsingConnection lists the ids of the exports bound to a connection.
	ExportsUsingConnection(ctx context.Context, connectionID int64) ([]int64, error)

	// StatusAsOf is when the export's synced statuses were last refreshed.
	StatusAsOf(ctx context.Context, exportID int64) (time.Time, error)
	SetStatusAsOf(ctx context.Context, exportID int64, t time.Time) error
	// SetLastScheduled records when the scheduler last queued the export.
	LastScheduled(ctx context.Context, exportID int64) (time.Time, error)
	SetLastScheduled(ctx context.Context, exportID int64, t time.Time) error
	// AdvanceSchedule sets the last scheduled time from prev (as read with
	// LastScheduled) to next, unless another process changed it first: of
	// several processes that see the same schedule due, only the one that
	// gets true queues the run.
	AdvanceSchedule(ctx context.Context, exportID int64, prev, next time.Time) (bool, error)

	// ExportTags maps tag names to their bit in Synced.Tags, assigning bits to
	// names not seen before. It fails with ErrInvalid when more than 64
	// tags would be in use.
	ExportTags(ctx context.Context, exportID int64, names []string) (map[string]int, error)
	// AllExportTags lists every tag bit the export has assigned, by bit.
	AllExportTags(ctx context.Context, exportID int64) (map[int]string, error)
	// ReleaseUnusedTags frees the bits that no synced contact carries.
	ReleaseUnusedTags(ctx context.Context, exportID int64) error

	// StreamSynced calls fn for every synced row of the export in ascending
	// hash order, from one consistent snapshot.
	StreamSynced(ctx context.Context, exportID int64, fn func(Synced) error) error
	// ApplySynced writes acknowledged changes in one transaction.
	ApplySynced(ctx context.Context, exportID int64, changes []SyncedChange) error
	// AddIntents notes create intents (see Intent) as one batch, in one
	// transaction, and returns the batch's id.
	AddIntents(ctx context.Context, exportID int64, intents []Intent) (int64, error)
	// LeftIntents returns, by hash, the FieldsHash of the create intents
	// earlier runs or attempts left (their creates' answers were never
	// recorded), the last noted for each hash. Intents whose contact has
	// since been recorded in the audience, or rejected for those fields,
	// are dropped from the store.
	LeftIntents(ctx context.Context, exportID int64) (map[string]string, error)
	// UpdateSyncedStatuses sets the last known status of the given contacts
	// (hash → status) that the export has in the audience (InAudience).
	UpdateSyncedStatuses(ctx context.Context, exportID int64, statuses map[string]string) error
	// SyncedOtherStatus reports whether the export has a contact in the
	// audience (InAudience) whose last known status is not status.
	SyncedOtherStatus(ctx context.Context, exportID int64, status string) (bool, error)
	// RecordArchived notes contacts (hash → email) that are archived in the
	// audience: their rows get status "archived", and contacts without a row
	// get one (in the audience, not created by this export), so the engine
	// never restores them by a batch subscribe.
	RecordArchived(ctx context.Context, exportID int64, emails map[string]string) error
}
