// Package sqlite opens segsync's store on an SQLite file through the pure-Go
// modernc.org/sqlite driver, with WAL, a busy timeout, foreign keys, one
// writer connection and a pool of readers.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	"github.com/segsync/segsync/internal/store/sqldb"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// FileName is the database's file name inside the data directory.
const FileName = "segsync.db"

// Open opens (creating if needed) the database in dataDir and migrates it.
func Open(ctx context.Context, dataDir string, log *slog.Logger) (*sqldb.DB, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	return OpenFile(ctx, filepath.Join(dataDir, FileName), log)
}

// OpenFile opens the database at path and migrates it.
func OpenFile(ctx context.Context, path string, log *slog.Logger) (*sqldb.DB, error) {
	if err := registerFunctions(); err != nil { // segment rules need them (functions.go)
		return nil, err
	}
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(NORMAL)", "cache_size(-16384)", "temp_store(MEMORY)"} {
		q.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	// Page caches live outside the Go heap, one per connection, and idle
	// connections keep theirs: with 64 MiB each they were more than half of
	// a 1M export's resident memory (450 MB). The writer keeps 16 MiB;
	// readers mostly scan (segment counts, member streams), which a cache
	// does not speed up (the OS caches the file), so 4 MiB each. A 1M
	// export then peaks at ≈225 MB with no more CPU (bench/, docs/benchmarks.md).
	r, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)&_pragma=cache_size(-4096)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	sub, _ := fs.Sub(migrationFiles, "migrations")
	db := sqldb.New(sqldb.SQLite, w, r, sub, log)
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
