// Package dbtest opens throwaway databases for tests: SQLite in a temporary
// directory always, PostgreSQL in a fresh schema when SEGSYNC_TEST_POSTGRES_URL
// is set. Under CI=true a missing or unreachable PostgreSQL fails the test
// instead of skipping it.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/segsync/segsync/internal/store/postgres"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/store/sqlite"
)

// SQLite opens a migrated store in t.TempDir().
func SQLite(t testing.TB) *sqldb.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatalf("opening SQLite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PostgresURL returns the URL of a fresh, empty schema on the test server
// (dropped when the test ends), or skips the test when none is configured.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SEGSYNC_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but SEGSYNC_TEST_POSTGRES_URL is not: PostgreSQL tests must run in CI")
		}
		t.Skip("SEGSYNC_TEST_POSTGRES_URL is not set")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("opening PostgreSQL: %v", err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("PostgreSQL at SEGSYNC_TEST_POSTGRES_URL is unreachable or refuses: %v", err)
	}
	t.Cleanup(func() { dropSchema(t, base, schema) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SEGSYNC_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// dropLockTimeout bounds how long dropSchema waits for the schema's locks.
var dropLockTimeout = "60s"

// dropSchema drops a test's schema. A session still inside a transaction
// there (a leaked sql.Tx or unclosed sql.Rows) holds locks that DROP would
// wait for without end, hanging the test binary until its timeout: after a
// minute the test fails instead, naming the sessions and their last
// statements, which are then ended so that the schema still goes.
func dropSchema(t testing.TB, base, schema string) {
	a, err := sql.Open("pgx", base)
	if err != nil {
		return
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conn, err := a.Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	drop := func() error {
		_, err := conn.ExecContext(ctx, `SET lock_timeout = '`+dropLockTimeout+`'; DROP SCHEMA IF EXISTS `+schema+` CASCADE`)
		return err
	}
	err = drop()
	if err == nil {
		return
	}
	t.Errorf("dropping test schema %s: %v; sessions holding locks in it (a leaked transaction or unclosed rows?): %s",
		schema, err, lockHolders(ctx, conn, schema))
	_, _ = conn.ExecContext(ctx, `SELECT pg_terminate_backend(l.pid) FROM pg_locks l
		JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND l.granted AND l.pid <> pg_backend_pid()`, schema)
	_ = drop()
}

// lockHolders describes the other sessions holding locks in schema.
func lockHolders(ctx context.Context, conn *sql.Conn, schema string) string {
	rows, err := conn.QueryContext(ctx, `SELECT DISTINCT a.pid, a.state, left(a.query, 300) FROM pg_locks l
		JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE n.nspname = $1 AND l.granted AND l.pid <> pg_backend_pid()`, schema)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var pid int
		var state, query sql.NullString
		if err := rows.Scan(&pid, &state, &query); err != nil {
			return err.Error()
		}
		out = append(out, fmt.Sprintf("pid %d (%s): %s", pid, state.String, query.String))
	}
	if len(out) == 0 {
		return "none found"
	}
	return strings.Join(out, "; ")
}

// Postgres opens a migrated store in a fresh schema (see PostgresURL).
func Postgres(t testing.TB) *sqldb.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), PostgresURL(t), nil)
	if err != nil {
		t.Fatalf("opening PostgreSQL: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Each runs fn once per available dialect as a subtest.
func Each(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// WaitAddressesFilled waits until the store's address table of attribute
// attr has been filled once (its fill runs in the background, package
// sqldb), and fails the test after 30 s.
func WaitAddressesFilled(t testing.TB, db *sqldb.DB, attr string) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		var n int
		if err := db.R.QueryRowContext(context.Background(), db.Q(`SELECT COUNT(*) FROM profile_address_marks
			WHERE attr = ? AND through >= 0 AND fill_next > fill_end`), attr).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			return
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the address table of %q was not filled within 30 s", attr)
		}
	}
}
