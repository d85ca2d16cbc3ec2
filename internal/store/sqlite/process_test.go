package sqlite

import (
	"context"
	"testing"
	"time"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The store's connections open in SQLite's multi-thread mode: their own
// mutexes are no-ops, and the shared ones are real (TestMutexes).
func TestConnectionMutexesAreNoOps(t *testing.T) {
	openTest(t)
	if !connMutexes.Load() {
		t.Fatal("SQLite was initialized without segsync's mutexes")
	}
	tls := libc.NewTLS()
	defer tls.Close()
	if m := mutexAlloc(tls, sqlite3.SQLITE_MUTEX_RECURSIVE); toMutex(m) != &noopMutex {
		t.Fatalf("a connection's mutex is %#x, not the no-op", m)
	}
}

func TestMutexes(t *testing.T) {
	if err := configureSQLite(); err != nil {
		t.Fatal(err)
	}
	a, b := libc.NewTLS(), libc.NewTLS()
	defer a.Close()
	defer b.Close()

	if mutexAlloc(a, sqlite3.SQLITE_MUTEX_STATIC_LRU) != mutexAlloc(b, sqlite3.SQLITE_MUTEX_STATIC_LRU) {
		t.Error("a static mutex is not the same for every caller")
	}
	if mutexAlloc(a, sqlite3.SQLITE_MUTEX_STATIC_LRU) == mutexAlloc(a, sqlite3.SQLITE_MUTEX_STATIC_MEM) {
		t.Error("two static mutexes are one")
	}
	if m := mutexAlloc(a, 99); m != 0 {
		t.Errorf("an unknown type gave mutex %#x", m)
	}

	fast := mutexAlloc(a, sqlite3.SQLITE_MUTEX_FAST)
	defer mutexFree(a, fast)
	mutexEnter(a, fast)
	if mutexTry(b, fast) != sqlite3.SQLITE_BUSY {
		t.Error("a held fast mutex let another in")
	}
	mutexLeave(a, fast)
	if mutexTry(b, fast) != sqlite3.SQLITE_OK {
		t.Error("a free fast mutex kept another out")
	}
	mutexLeave(b, fast)

	// A recursive mutex as SQLite's initialization has one.
	rec := newMutex(a, true)
	defer mutexFree(a, rec)
	mutexEnter(a, rec)
	mutexEnter(a, rec)
	if mutexTry(a, rec) != sqlite3.SQLITE_OK {
		t.Error("the owner could not enter its recursive mutex again")
	}
	mutexLeave(a, rec)
	mutexLeave(a, rec)
	if mutexTry(b, rec) != sqlite3.SQLITE_BUSY {
		t.Error("a recursive mutex let another in before its owner left as often as it entered")
	}
	entered := make(chan struct{})
	go func() {
		tls := libc.NewTLS()
		defer tls.Close()
		mutexEnter(tls, rec)
		close(entered)
		mutexLeave(tls, rec)
	}()
	select {
	case <-entered:
		t.Fatal("another entered a held recursive mutex")
	case <-time.After(50 * time.Millisecond):
	}
	mutexLeave(a, rec)
	<-entered
}

// The connections' pages come from SQLite's page cache pool
// (configureSQLite), not from a malloc each.
func TestPageCachePool(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	if _, err := db.W.ExecContext(ctx, `CREATE TABLE pages (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	for range 64 {
		if _, err := db.W.ExecContext(ctx, `INSERT INTO pages (b) VALUES (zeroblob(8000))`); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.R.QueryRowContext(ctx, `SELECT count(*) FROM pages WHERE length(b) = 8000`).Scan(&n); err != nil || n != 64 {
		t.Fatalf("read %d rows: %v", n, err)
	}
	tls := libc.NewTLS()
	defer tls.Close()
	out := libc.Xmalloc(tls, 16)
	defer libc.Xfree(tls, out)
	if rc := sqlite3.Xsqlite3_status(tls, sqlite3.SQLITE_STATUS_PAGECACHE_USED, out, out+8, 0); rc != sqlite3.SQLITE_OK {
		t.Fatalf("sqlite3_status: %d", rc)
	}
	if used := *(*int32)(cPointer(out)); used < 64 {
		t.Errorf("%d pages of the pool in use, want the database's pages (at least 64)", used)
	}
}
