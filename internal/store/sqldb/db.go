// Package sqldb implements store.Store over database/sql for SQLite and
// PostgreSQL alike. Queries are written once with '?' placeholders and
// rebound for PostgreSQL; the few places where the dialects differ ask d.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Dialect is the SQL flavour of a database.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is the store over one database. For SQLite, W is a single-connection
// pool that does every write and R a pool of readers, so long streaming reads
// never block writes; for PostgreSQL both are the same pool.
type DB struct {
	d          Dialect
	W, R       *sql.DB
	migrations fs.FS
	log        *slog.Logger
	stmts      sync.Map // query → *sql.Stmt prepared on W (stmtcache.go)
	upserts    sync.Map // upsertKind → the text of a full syncedUpsertQuery
	onClose    []func() error
	synced     syncedGrowth    // when to analyze the synced state (analyze.go)
	fills      backgroundFills // address tables filled in the background (addresses.go)

	// SpanProfiles is how many profiles make a member stream read them in
	// several id ranges at once (0: 20,000); set before use.
	SpanProfiles int64
	// RangeProfiles is how many profile ids one read of a member stream
	// covers at most (0: 100,000); set before use.
	RangeProfiles int64
	// AddressSpan is how many profiles one transaction of an address table
	// refresh reads at most (0: 65,536 on SQLite, 1,048,576 on
	// PostgreSQL); set before use.
	AddressSpan int64
}

// New wraps opened pools. migrations holds NNNN_name.sql files.
func New(d Dialect, w, r *sql.DB, migrations fs.FS, log *slog.Logger) *DB {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DB{d: d, W: w, R: r, migrations: migrations, log: log}
}

// OnClose has Close call f first (an opener's background work).
func (db *DB) OnClose(f func() error) { db.onClose = append(db.onClose, f) }

// Dialect names the SQL flavour.
func (db *DB) Dialect() string { return string(db.d) }

// SQLDialect is the typed dialect.
func (db *DB) SQLDialect() Dialect { return db.d }

// Close closes both pools.
func (db *DB) Close() error {
	db.fills.stop()
	var err error
	for _, f := range db.onClose {
		err = errors.Join(err, f())
	}
	err = errors.Join(err, db.W.Close())
	if db.R != db.W {
		err = errors.Join(err, db.R.Close())
	}
	return err
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.R.PingContext(ctx); err != nil {
		return fmt.Errorf("pinging %s: %w", db.d, err)
	}
	return nil
}

// Ready checks that the database answers and all migrations are applied.
func (db *DB) Ready(ctx context.Context) error {
	want, err := db.migrationFiles()
	if err != nil {
		return err
	}
	var have int
	if err := db.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("reading schema_migrations: %w", err)
	}
	if have < len(want) {
		return fmt.Errorf("%d of %d migrations applied", have, len(want))
	}
	return nil
}

// Q rebinds a query written with '?' placeholders for the dialect.
func (db *DB) Q(query string) string {
	if db.d != Postgres {
		return query
	}
	return Rebind(query)
}

// Rebind turns '?' placeholders into $1, $2, … (outside quoted text).
func Rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	inQuote := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inQuote = !inQuote
			b.WriteByte(c)
		case c == '?' && !inQuote:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Tx runs fn in a write transaction and commits it when fn returns nil.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

type migration struct {
	version int
	name    string
}

func (db *DB) migrationFiles() ([]migration, error) {
	entries, err := fs.ReadDir(db.migrations, ".")
	if err != nil {
		return nil, fmt.Errorf("reading migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", e.Name())
		}
		ms = append(ms, migration{version: v, name: e.Name()})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// Migrate applies every migration not yet applied, each in its own
// transaction. On PostgreSQL an advisory lock keeps concurrent processes from
// migrating at the same time.
func (db *DB) Migrate(ctx context.Context) error {
	ms, err := db.migrationFiles()
	if err != nil {
		return err
	}
	conn, err := db.W.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	defer conn.Close()
	if db.d == Postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(7411001)`); err != nil {
			return fmt.Errorf("taking the migration lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7411001)`)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := conn.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("reading schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		applied[v] = true
	}
	rows.Close()
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		body, err := fs.ReadFile(db.migrations, m.name)
		if err != nil {
			return fmt.Errorf("reading migration %s: %w", m.name, err)
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, db.Q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			m.version, m.name, time.Now().UTC().Format(time.RFC3339)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("recording migration %s: %w", m.name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		db.log.Info("migration applied", "dialect", db.d, "migration", m.name)
	}
	return nil
}

// sendCtx sends v on ch unless ctx ends first.
func sendCtx[T any](ctx context.Context, ch chan<- T, v T) error {
	select {
	case ch <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// uniqueViolation reports a UNIQUE (or primary key) constraint failure on
// either dialect.
func uniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505")
}
