package sqlite

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite's mutexes (SQLITE_CONFIG_MUTEX), installed by configureSQLite.
//
// The driver opens every connection in SQLite's serialized mode, where each
// call into a connection (every step, every bound parameter, every column
// read) enters and leaves the connection's recursive mutex: in a first
// export of 1M contacts, 4.4 % of the CPU (0.94 s) went to the libc's
// emulation of pthread mutexes, 0.7 s of it to the connections' own
// (docs/benchmarks.md, twentieth round). That
// mutex protects nothing here: the driver requires that a connection is
// never used by two goroutines at once (its per-connection state is not
// guarded, see the driver's documentation), and database/sql hands a
// connection to one goroutine at a time, with a happens-before edge between
// them. So the connections' mutexes are no-ops, which is SQLite's
// multi-thread mode; sqlite3_interrupt, the one call another goroutine
// makes on a busy connection, takes no mutex. Every mutex SQLite shares
// between connections (the static ones: the page cache's LRU, the memory
// allocator, the VFS's file list; and the fast ones: each file's locks, the
// WAL index) stays a real one.
//
// The recursive mutex SQLite takes while it initializes itself is the one
// recursive mutex not owned by a connection; configureSQLite initializes
// SQLite before the connections' mutexes become no-ops.

// sqliteMutex is a mutex SQLite allocates (dynamic, in C memory) or a
// static one. A recursive mutex knows its owner: a libc TLS, one per
// connection and per goroutine calling SQLite.
type sqliteMutex struct {
	mu        sync.Mutex
	recursive bool
	owner     atomic.Int32 // recursive: the TLS ID that holds it, 0 for none
	count     int32        // recursive: how many times the owner entered it
}

var (
	// connMutexes is set once SQLite is initialized: from then on, a
	// recursive mutex allocated is a connection's, the no-op noopMutex.
	connMutexes atomic.Bool
	noopMutex   sqliteMutex
	// staticMutexes are SQLITE_MUTEX_STATIC_MAIN (2) to
	// SQLITE_MUTEX_STATIC_VFS3 (13).
	staticMutexes [sqlite3.SQLITE_MUTEX_STATIC_VFS3 - sqlite3.SQLITE_MUTEX_STATIC_MAIN + 1]sqliteMutex
)

// cFunc is fn as a C function pointer of the transpiled SQLite (the form
// the driver itself installs callbacks in).
func cFunc[F any](fn F) uintptr { return *(*uintptr)(unsafe.Pointer(&struct{ f F }{fn})) }

// cPointer is the pointer p holds: to C memory or to a Go global, neither
// of which moves.
func cPointer(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

func toMutex(m uintptr) *sqliteMutex { return (*sqliteMutex)(cPointer(m)) }

// mutexAlloc is xMutexAlloc: a new mutex for SQLITE_MUTEX_FAST and
// SQLITE_MUTEX_RECURSIVE (a connection's: noopMutex), the same static
// mutex for each of the others; 0 for an unknown type.
func mutexAlloc(tls *libc.TLS, typ int32) uintptr {
	switch {
	case typ == sqlite3.SQLITE_MUTEX_RECURSIVE && connMutexes.Load():
		return uintptr(unsafe.Pointer(&noopMutex))
	case typ == sqlite3.SQLITE_MUTEX_FAST || typ == sqlite3.SQLITE_MUTEX_RECURSIVE:
		return newMutex(tls, typ == sqlite3.SQLITE_MUTEX_RECURSIVE)
	case typ >= sqlite3.SQLITE_MUTEX_STATIC_MAIN && typ <= sqlite3.SQLITE_MUTEX_STATIC_VFS3:
		return uintptr(unsafe.Pointer(&staticMutexes[typ-sqlite3.SQLITE_MUTEX_STATIC_MAIN]))
	}
	return 0
}

// newMutex allocates a dynamic mutex in C memory (0 when out of memory).
func newMutex(tls *libc.TLS, recursive bool) uintptr {
	p := libc.Xcalloc(tls, 1, uint64(unsafe.Sizeof(sqliteMutex{})))
	if p != 0 {
		toMutex(p).recursive = recursive
	}
	return p
}

// mutexFree is xMutexFree, for dynamic mutexes only.
func mutexFree(tls *libc.TLS, m uintptr) {
	if m != 0 && m != uintptr(unsafe.Pointer(&noopMutex)) {
		libc.Xfree(tls, m)
	}
}

// mutexEnter is xMutexEnter (SQLite never passes 0 here).
func mutexEnter(tls *libc.TLS, m uintptr) {
	if m == uintptr(unsafe.Pointer(&noopMutex)) {
		return
	}
	x := toMutex(m)
	if !x.recursive {
		x.mu.Lock()
		return
	}
	if x.owner.Load() == tls.ID { // only this TLS stores its own ID
		x.count++
		return
	}
	x.mu.Lock()
	x.owner.Store(tls.ID)
	x.count = 1
}

// mutexTry is xMutexTry: SQLITE_OK once entered, SQLITE_BUSY if another
// holds it.
func mutexTry(tls *libc.TLS, m uintptr) int32 {
	if m == uintptr(unsafe.Pointer(&noopMutex)) {
		return sqlite3.SQLITE_OK
	}
	x := toMutex(m)
	if x.recursive && x.owner.Load() == tls.ID {
		x.count++
		return sqlite3.SQLITE_OK
	}
	if !x.mu.TryLock() {
		return sqlite3.SQLITE_BUSY
	}
	if x.recursive {
		x.owner.Store(tls.ID)
		x.count = 1
	}
	return sqlite3.SQLITE_OK
}

// mutexLeave is xMutexLeave.
func mutexLeave(tls *libc.TLS, m uintptr) {
	if m == uintptr(unsafe.Pointer(&noopMutex)) {
		return
	}
	x := toMutex(m)
	if x.recursive {
		if x.count--; x.count > 0 {
			return
		}
		x.owner.Store(0)
	}
	x.mu.Unlock()
}
