// Package sqlite opens segsync's store on an SQLite file through the pure-Go
// modernc.org/sqlite driver, with WAL, a busy timeout, foreign keys, one
// writer connection and a pool of readers.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

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
	if err := configureSQLite(); err != nil { // before any connection opens (process.go)
		return nil, err
	}
	if err := registerFunctions(); err != nil { // segment rules need them (functions.go)
		return nil, err
	}
	// dsn is a connection's: its page cache of cacheKiB, then the
	// pragmas every connection has, then more (a later pragma wins). The
	// driver runs the _pragma list in lexicographic order and the
	// journal mode (a shorthand) after it: a new database's page size
	// must be set before WAL mode writes its first page (see pageSize).
	dsn := func(cacheKiB int, more ...string) string {
		q := url.Values{}
		for _, p := range append([]string{fmt.Sprintf("cache_size(-%d)", cacheKiB), fmt.Sprintf("page_size(%d)", pageSize), "busy_timeout(10000)", "foreign_keys(1)", "synchronous(NORMAL)", "temp_store(MEMORY)"}, more...) {
			q.Add("_pragma", p)
		}
		q.Set("_journal_mode", "WAL")
		return "file:" + path + "?" + q.Encode()
	}
	// The writer never checkpoints in its commits (a large transaction's
	// commit would copy hundreds of megabytes of WAL into the database
	// before returning): checkpointer does, beside it. When the writer
	// starts the WAL over, it cuts the file down to restartBytes.
	w, err := sql.Open("sqlite", dsn(writerCacheKiB, "wal_autocheckpoint(0)", fmt.Sprintf("journal_size_limit(%d)", restartBytes))+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	// Page caches live outside the Go heap, one per connection, and idle
	// connections keep theirs: with 64 MiB each they were more than half of
	// a 1M export's resident memory (450 MB). The writer keeps 16 MiB.
	// Readers mostly scan (segment counts, member streams), which a cache
	// does not speed up (the OS caches the file), and a reader drops its
	// whole cache whenever it begins to read after a commit (SQLite's WAL
	// mode). So 1 MiB each: the 1 % runs over 1M peak about 40 MB lower
	// than at 4 MiB, with the same CPU (docs/benchmarks.md, nineteenth
	// round). The caches' pages come from one pool (configureSQLite), the
	// size of all of them together.
	r, err := sql.Open("sqlite", dsn(readerCacheKiB)+"&_query_only=1") // after the journal mode
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	sub, _ := fs.Sub(migrationFiles, "migrations")
	db := sqldb.New(sqldb.SQLite, w, r, sub, log)
	// The checkpointer waits little for others: see checkpointer.
	ck, err := sql.Open("sqlite", dsn(checkpointerCacheKiB, "busy_timeout(200)"))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	var size int64
	if err := ck.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size); err != nil {
		db.Close()
		ck.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if size != pageSize && log != nil {
		log.Info("the database keeps its pages of an earlier segsync; new databases have larger ones, which make exports faster (docs/deploy.md, Upgrades: SQLite's page size)",
			"page_size", size, "new_page_size", pageSize)
	}
	db.OnClose(checkpointer(ck, restartBytes/size, log))
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// checkpointEvery is how often the checkpointer copies committed WAL
// frames into the database. A pass copies the newest version of every
// page written since the pass before, and the recorder's transactions
// rewrite the same pages (its bucket of synced_customer, the tables' last
// pages) several times a second: at 500 ms, a first export of 1M contacts
// took about 2.5 s more CPU than at 2 s (median of four pairs; 4 s gained
// nothing more; docs/benchmarks.md, seventeenth round). The WAL stays near
// restartBytes.
const checkpointEvery = 2 * time.Second

// restartBytes is how large a WAL makes the checkpointer have it started
// over: 64 MiB, the size the writer then cuts the file down to.
var restartBytes int64 = 64 << 20 // a variable for tests

// pageSize is a new database's page size, 8 KiB (SQLite's default is 4).
// With pages twice as large there are half as many WAL frames, writes and
// checkpoint copies, and fewer page splits: a first export of 1M contacts
// took 1.2-1.5 s less CPU in each of three side-by-side pairs (median
// 19.2 s against 20.2 s alone on the same night; the checkpointer 40 %
// less, the status flow-back 19 %, the recorder 8 %, docs/benchmarks.md,
// twenty-first round). Runs that change few contacts write scattered pages
// and move twice the bytes for each: a run over 1M after 1 % changed takes
// 1.8-2.7 s instead of 1.7-1.9 s. 16 KiB pages did no better on a first
// export and worse on those runs. A database keeps the page size it was
// created with (docs/deploy.md tells how to convert one).
const pageSize = 8192

// checkpointer checkpoints the WAL on a connection of its own, in the
// background (PASSIVE: it waits for no reader and no writer), and returns
// the function that stops it and closes the connection.
//
// A passive checkpoint copies frames but never makes the WAL start over:
// SQLite restarts it only when a write begins while every frame is copied,
// which a busy writer never lets happen; over a 1M export the WAL grew past
// 1 GB, over 10M to many GB, and every read searched it. So once the WAL
// holds restartFrames (restartBytes of the database's pages) and a passive
// pass has copied at least half of it (a reader's old snapshot, which
// would keep the rest, holds back no more),
// a RESTART checkpoint holds writers back for the frames left, and the
// writer's next commit writes the WAL from its start.
//
// Not TRUNCATE: a truncating checkpoint starts the WAL over itself, which
// every other connection sees as a change of the database, so the writer
// dropped its page cache (16 MiB) and read it back from the file after each
// one; 1.1 s of CPU in a first export of 1M profiles (2026-12-07). A WAL
// the writer restarts itself is no change to it.
// It waits at most the connection's busy timeout (200 ms) for readers of
// the WAL, and otherwise tries again on a later tick.
func checkpointer(ck *sql.DB, restartFrames int64, log *slog.Logger) func() error {
	ck.SetMaxOpenConns(1)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var busy, frames, copied int64
			err := ck.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("checkpointing the WAL", "err", err)
				}
				continue
			}
			if frames >= restartFrames && copied >= frames/2 {
				// SQLITE_BUSY (a reader kept it) shows as busy = 1, not an error.
				if _, err := ck.ExecContext(ctx, `PRAGMA wal_checkpoint(RESTART)`); err != nil && ctx.Err() == nil {
					log.Warn("restarting the WAL", "err", err)
				}
			}
		}
	}()
	return func() error {
		cancel()
		<-done
		// A last checkpoint, so that a closed store's file holds it all.
		_, err := ck.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		return errors.Join(err, ck.Close())
	}
}

// The connections' page caches, in KiB.
const (
	writerCacheKiB       = 16 << 10
	readerCacheKiB       = 1 << 10
	checkpointerCacheKiB = 256 // a checkpoint copies WAL frames without it
)

// readers is how many reader connections the store opens at most.
const readers = 8

// cacheSlots is how many pages the connections' caches hold together: the
// size of SQLite's page cache pool (configureSQLite). A database of an
// earlier segsync, with 4 KiB pages, puts each of its pages in a slot of
// 8 KiB: the pool then holds half of its caches, and the rest of their
// pages are a malloc each, as before the pool.
const cacheSlots = (writerCacheKiB + readers*readerCacheKiB + checkpointerCacheKiB) << 10 / pageSize
