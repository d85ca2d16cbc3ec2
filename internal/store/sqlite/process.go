package sqlite

import (
	"fmt"
	"sync"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	configureOnce sync.Once
	configureErr  error
)

// configureSQLite sets SQLite's process-wide configuration and initializes
// it, once, before the first connection opens: segsync's mutexes (see
// mutex.go) and one pool for every connection's page cache.
//
// The pool (SQLITE_CONFIG_PAGECACHE) holds as many pages as the store's
// connections cache together (cacheSlots). Without it each page is a
// malloc of the driver's libc: a reader's cache is emptied whenever it
// begins to read after a commit (every second while a run records), and
// the allocator gave the freed pages back to the OS (madvise) and faulted
// them in again when the next read allocated them, 0.25 s and 0.03 s of
// CPU in a first export of 1M contacts (docs/benchmarks.md, twentieth
// round). A pool's slots are taken and put back; a page that finds the
// pool full is a malloc as before.
//
// If SQLite was initialized before (a connection opened through the
// driver elsewhere in the process), it keeps its own configuration.
func configureSQLite() error {
	configureOnce.Do(func() { configureErr = configure() })
	return configureErr
}

func configure() error {
	tls := libc.NewTLS()
	defer tls.Close()
	methods := sqlite3.Sqlite3_mutex_methods{
		FxMutexInit:    cFunc(func(*libc.TLS) int32 { return sqlite3.SQLITE_OK }),
		FxMutexEnd:     cFunc(func(*libc.TLS) int32 { return sqlite3.SQLITE_OK }),
		FxMutexAlloc:   cFunc(mutexAlloc),
		FxMutexFree:    cFunc(mutexFree),
		FxMutexEnter:   cFunc(mutexEnter),
		FxMutexTry:     cFunc(mutexTry),
		FxMutexLeave:   cFunc(mutexLeave),
		FxMutexHeld:    cFunc(func(*libc.TLS, uintptr) int32 { return 1 }), // for SQLite's asserts only
		FxMutexNotheld: cFunc(func(*libc.TLS, uintptr) int32 { return 1 }),
	}
	// SQLite reads its arguments, and the methods it copies, from C memory.
	size := unsafe.Sizeof(methods)
	c := libc.Xmalloc(tls, uint64(size+32)) // the methods, then the argument list
	if c == 0 {
		return fmt.Errorf("configuring SQLite: out of memory")
	}
	defer libc.Xfree(tls, c)
	*(*sqlite3.Sqlite3_mutex_methods)(cPointer(c)) = methods
	args := c + size
	if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_MUTEX, libc.VaList(args, c)); rc != sqlite3.SQLITE_OK {
		return nil // SQLITE_MISUSE: initialized already, with its own configuration
	}

	// A slot is a page and SQLite's header for it.
	hdr := c // reuses the methods' bytes: SQLite has copied them
	if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_PCACHE_HDRSZ, libc.VaList(args, hdr)); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("configuring SQLite's page cache: %s", libc.GoString(sqlite3.Xsqlite3_errstr(tls, rc)))
	}
	slot := pageSize + int(*(*int32)(cPointer(hdr)))
	pool := libc.Xmalloc(tls, uint64(slot*cacheSlots)) // for the life of the process
	if pool == 0 {
		return fmt.Errorf("configuring SQLite's page cache: out of memory")
	}
	if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_PAGECACHE, libc.VaList(args, pool, int32(slot), int32(cacheSlots))); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("configuring SQLite's page cache: %s", libc.GoString(sqlite3.Xsqlite3_errstr(tls, rc)))
	}

	if rc := sqlite3.Xsqlite3_initialize(tls); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("initializing SQLite: %s", libc.GoString(sqlite3.Xsqlite3_errstr(tls, rc)))
	}
	connMutexes.Store(true)
	return nil
}
