package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/segsync/segsync/internal/segment"
)

// Segment is a named rule over profile attributes; its members are the
// profiles that match the rule now (they are never stored).
type Segment struct {
	ID          int64         `json:"id"`
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Rule        *segment.Rule `json:"rule"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
}

// SegmentPreview is what an (unsaved) rule matches: how many profiles and
// the first few of them in customer_id order.
type SegmentPreview struct {
	Count  int64     `json:"count"`
	Sample []Profile `json:"sample"`
}

// HashedMember is one row of StreamMembersByHash.
type HashedMember struct {
	// Hash is the subscriber hash of the e-mail attribute (emailaddr.Hash),
	// or "" when that attribute is missing, not a string or blank.
	Hash       string
	CustomerID string
	// Attrs is the profile's attribute object as stored, or an object of
	// some of its members: it holds at least the attributes the stream was
	// asked for (every one when it was asked for none), each as stored and
	// in the stored order. The bytes are only valid during the callback
	// (copy them to keep them).
	Attrs     json.RawMessage
	UpdatedAt time.Time
	// Segments has bit i set when the profile matches rules[i].
	Segments uint64
}

// MaxStreamRules is how many rules one StreamMembersByHash call takes.
const MaxStreamRules = 64

// SegmentStore keeps segments and evaluates rules over the profiles.
// Rules are validated by the caller (segment.Parse with the attribute
// catalogue); the store compiles them to SQL for its dialect.
type SegmentStore interface {
	// CreateSegment inserts s and sets its ID and times. A name already
	// taken (ignoring ASCII case) is ErrConflict.
	CreateSegment(ctx context.Context, s *Segment) error
	// GetSegment returns one segment, or ErrNotFound.
	GetSegment(ctx context.Context, id int64) (Segment, error)
	// ListSegments returns every segment in name order.
	ListSegments(ctx context.Context) ([]Segment, error)
	// UpdateSegment replaces the name, description and rule of segment
	// s.ID and sets s.UpdatedAt (and s.CreatedAt from the store):
	// ErrNotFound, or ErrConflict for a taken name.
	UpdateSegment(ctx context.Context, s *Segment) error
	// DeleteSegment deletes a segment: ErrNotFound, or ErrConflict while an
	// export still selects it.
	DeleteSegment(ctx context.Context, id int64) error

	// CountMatching counts the profiles that match r.
	CountMatching(ctx context.Context, r *segment.Rule) (int64, error)
	// CountMatchingEach counts the profiles that match each of rules in one
	// pass over the profiles (a segment listing's member counts); the
	// counts are in the order of rules.
	CountMatchingEach(ctx context.Context, rules []*segment.Rule) ([]int64, error)
	// SegmentMembers returns up to limit (≤1000; 100 when ≤0) matching
	// profiles after cursor ("" for the first page) in customer_id order,
	// like ListProfiles. A malformed cursor is ErrInvalid.
	SegmentMembers(ctx context.Context, r *segment.Rule, limit int, cursor string) (ProfilePage, error)
	// PreviewSegment counts the profiles that match r and returns the first
	// sample (≤1000) of them.
	PreviewSegment(ctx context.Context, r *segment.Rule, sample int) (SegmentPreview, error)
	// StreamMembersByHash calls fn for every profile that matches at least
	// one of rules (1 to MaxStreamRules), in ascending order of the
	// subscriber hash of the attribute emailAttr, then of customer_id;
	// profiles without a usable e-mail come first with Hash "". names are
	// the attributes fn reads of Attrs (nil: all of them; see
	// HashedMember.Attrs); a name matches the member whose key is written
	// as that name. Rows are read as fn asks for them, never all at once;
	// an error from fn stops the stream and is returned. The stream holds
	// one read connection (on SQLite never the writer), so fn may write to
	// the store.
	StreamMembersByHash(ctx context.Context, rules []*segment.Rule, emailAttr string, names []string, fn func(HashedMember) error) error
}
