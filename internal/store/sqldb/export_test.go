package sqldb

import (
	"context"

	"github.com/segsync/segsync/internal/segment"
)

// LookupsByCustomer are the store's statements that find synced rows by
// customer id, for the package's external tests: an erasure's read and
// delete, ChangedHashes' (for the e-mail attribute "email") and the status
// flow-back's update and insert of a range.
func (db *DB) LookupsByCustomer() ([]string, error) {
	changed, _, err := db.changedHashesQuery("email")
	if err != nil {
		return nil, err
	}
	read, del := db.erasureSyncedQueries()
	update, insert := db.flowRangeQueries()
	return []string{read, del, changed, update, insert}, nil
}

// MembersOfHashesQuery is the statement of StreamMembersOfHashes for the
// given rules, e-mail attribute "email", one hash and one profile.
func (db *DB) MembersOfHashesQuery(rules []*segment.Rule) (string, []any, error) {
	only, err := db.profilesFilter("email", []string{"h"}, []int64{1})
	if err != nil {
		return "", nil, err
	}
	match, err := db.matchers(rules)
	if err != nil {
		return "", nil, err
	}
	return db.streamQuery(rules, "email", only, match != nil)
}

// AddressesQuery is the address table's lookup of n hash prefixes among
// profile ids up to maxID.
func (db *DB) AddressesQuery(n int, maxID int64) (string, []any) {
	return db.addressesQuery(1, make([]string, n), maxID)
}

// RefreshAddresses fills the address table of attribute attr, or brings it
// up to date, as the background fill does.
func (db *DB) RefreshAddresses(ctx context.Context, attr string) error {
	_, _, err := db.refreshAddresses(ctx, attr, true)
	return err
}

// CatchUpQueries are an address table catch-up's statements: the one that
// finds the end of a span, and a read of the profiles in a span.
func CatchUpQueries() (end, span string) {
	return catchUpEndQuery, `SELECT id FROM profiles WHERE ` + catchUpRange
}

// EarlySortable reports whether SortMembersByHash splits its sort through
// the address table of attribute attr.
func (db *DB) EarlySortable(ctx context.Context, attr string) (bool, error) {
	_, filled, fresh, err := db.addressesState(ctx, attr)
	return filled && fresh, err
}

// SyncedStatements are the synced state's writes of n rows: the insert of
// new contacts and the upsert of the others.
func (db *DB) SyncedStatements(n int) (insert, upsert string) {
	return db.syncedUpsertQuery(n, insertNew), db.syncedUpsertQuery(n, upsertAll)
}

// SyncedTagStatement is the synced state's tag change of n rows.
func (db *DB) SyncedTagStatement(n int) string { return db.syncedTagQuery(n) }
