package sqldb

// SyncedBuckets exposes syncedBuckets to the package's external tests.
func (db *DB) SyncedBuckets(a string) string { return db.syncedBuckets(a) }
