package store

import (
	"context"
	"encoding/json"
	"time"
)

// Profile is one customer: its unique id and its attributes, a JSON object of
// strings, numbers, booleans and dates (ISO-8601 strings) in the canonical
// form of package attrjson.
type Profile struct {
	CustomerID string          `json:"customer_id"`
	Attrs      json.RawMessage `json:"attributes"`
	// UpdatedAt is when the profile's data last changed.
	UpdatedAt time.Time `json:"updated_at"`
}

// ProfilePatch is one row of an import: the attributes to set on a profile,
// as a canonical attrjson object whose null members remove attributes.
type ProfilePatch struct {
	CustomerID string
	Attrs      string
}

// UpsertCounts tells what an upsert did with its patches.
type UpsertCounts struct {
	Inserted  int // new profiles
	Updated   int // existing profiles whose attributes changed
	Unchanged int // existing profiles the patch left as they were (not written)
}

// ProfilePage is one page of profiles in customer_id order; NextCursor is
// empty on the last page.
type ProfilePage struct {
	Profiles   []Profile `json:"profiles"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// AttributeInfo describes one attribute name in the catalogue: Type is the
// type most profiles hold for it, Count how many profiles have it, Types the
// count per type when several occur.
type AttributeInfo struct {
	Name  string           `json:"name"`
	Type  string           `json:"type"`
	Count int64            `json:"count"`
	Types map[string]int64 `json:"types,omitempty"`
}

// ProfileStore keeps profiles and the catalogue of their attributes.
type ProfileStore interface {
	// UpsertProfiles merges the patches into the profiles in one transaction,
	// creating missing profiles. Patches must have distinct customer ids.
	// Unchanged profiles are not written; changed ones get a new updated_at.
	UpsertProfiles(ctx context.Context, patches []ProfilePatch) (UpsertCounts, error)
	// DeleteProfilesExcept deletes every profile for which keep returns
	// false, in batches, and returns how many it deleted.
	DeleteProfilesExcept(ctx context.Context, keep func(customerID string) bool) (int64, error)
	// GetProfile returns one profile, or ErrNotFound.
	GetProfile(ctx context.Context, customerID string) (Profile, error)
	// ListProfiles returns up to limit profiles after cursor ("" for the
	// first page). A malformed cursor is ErrInvalid.
	ListProfiles(ctx context.Context, limit int, cursor string) (ProfilePage, error)
	// DeleteProfile deletes one profile, or returns ErrNotFound.
	DeleteProfile(ctx context.Context, customerID string) error
	// CountProfiles counts all profiles.
	CountProfiles(ctx context.Context) (int64, error)
	// ProfileAttributes lists the attribute catalogue sorted by name.
	ProfileAttributes(ctx context.Context) ([]AttributeInfo, error)
}
