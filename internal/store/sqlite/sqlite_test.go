package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store/sqldb"
)

// A writer that never pauses still gets its WAL emptied: passive
// checkpoints alone let it grow by everything written.
func TestWALStaysSmallUnderABusyWriter(t *testing.T) {
	defer func(b int64) { restartBytes = b }(restartBytes)
	restartBytes = 1 << 20
	ctx := context.Background()
	db, path := openTest(t)
	if _, err := db.W.ExecContext(ctx, `CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)`); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 64<<10)
	var written, peak, last int64
	shrunk := false
	// Long enough for a few checkpoints and a lot written, and on a loaded
	// machine longer, until the WAL was seen to start over.
	start := time.Now()
	for time.Since(start) < 2*time.Second || written < 128<<20 || (!shrunk && time.Since(start) < 20*time.Second) {
		if _, err := db.W.ExecContext(ctx, `INSERT INTO blobs (b) VALUES (?)`, blob); err != nil {
			t.Fatal(err)
		}
		if _, err := db.W.ExecContext(ctx, `DELETE FROM blobs WHERE id < (SELECT MAX(id) FROM blobs) - 8`); err != nil {
			t.Fatal(err)
		}
		written += int64(len(blob))
		if st, err := os.Stat(path + "-wal"); err == nil {
			shrunk = shrunk || st.Size() < last
			last = st.Size()
			peak = max(peak, st.Size())
		}
	}
	t.Logf("wrote %d MiB in %s; WAL %d MiB at the end, %d MiB at most", written>>20, time.Since(start).Round(time.Millisecond), last>>20, peak>>20)
	if !shrunk {
		t.Fatalf("WAL of %d MiB after %d MiB written: it never started over", last>>20, written>>20)
	}
}

// Each connection has its own page cache size and keeps the pragmas every
// connection needs (the readers' small cache must not lose them), only the
// readers are read-only, and a new database has pages of pageSize (set
// before WAL mode writes its first page, or SQLite keeps its default).
func TestConnectionsPragmas(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	for _, c := range []struct {
		name      string
		q         *sql.DB
		cache     int
		queryOnly int64
	}{{"writer", db.W, -writerCacheKiB, 0}, {"reader", db.R, -readerCacheKiB, 1}} {
		for pragma, want := range map[string]any{"cache_size": int64(c.cache), "page_size": int64(pageSize), "journal_mode": "wal", "foreign_keys": int64(1),
			"busy_timeout": int64(10000), "synchronous": int64(1), "query_only": c.queryOnly} {
			var got any
			if err := c.q.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: PRAGMA %s = %v, want %v", c.name, pragma, got, want)
			}
		}
	}
}

// A database created by an earlier segsync, with SQLite's default 4 KiB
// pages, opens with its pages as they are (converting it is a VACUUM the
// operator runs, docs/deploy.md), says so in the log, and works.
func TestDatabaseKeepsItsPageSize(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	old, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, `CREATE TABLE earlier (id INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	var logged bytes.Buffer
	db, err := OpenFile(ctx, path, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var size int64
	if err := db.R.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	if size != 4096 {
		t.Errorf("page size %d after opening, want the database's 4096", size)
	}
	if !strings.Contains(logged.String(), "page_size=4096") {
		t.Errorf("the log does not tell of the page size:\n%s", logged.String())
	}
	if _, err := db.W.ExecContext(ctx, `INSERT INTO earlier (id) VALUES (1)`); err != nil {
		t.Fatal(err)
	}
}

// openTest opens a new store in a temporary directory, closed when the
// test ends, and gives its file's path.
func openTest(t *testing.T) (*sqldb.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := OpenFile(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}
