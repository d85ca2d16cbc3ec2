package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/store/sqldb"
)

func TestOpenAndReady(t *testing.T) {
	Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if err := db.Ready(ctx); err != nil {
			t.Fatalf("Ready: %v", err)
		}
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("migrating twice: %v", err)
		}
	})
}

func TestRebind(t *testing.T) {
	got := sqldb.Rebind(`SELECT '?' , a FROM t WHERE a = ? AND b IN (?, ?)`)
	want := `SELECT '?' , a FROM t WHERE a = $1 AND b IN ($2, $3)`
	if got != want {
		t.Fatalf("Rebind = %q, want %q", got, want)
	}
}

// errRecorder is a testing.TB that keeps its Errorf messages.
type errRecorder struct {
	testing.TB
	errs []string
}

func (r *errRecorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestDropSchemaNamesALeak: a transaction left open in a test's schema makes
// its cleanup fail with the leaked session's statement, rather than wait
// for ever, and the schema still goes.
func TestDropSchemaNamesALeak(t *testing.T) {
	url := PostgresURL(t)
	defer func(old string) { dropLockTimeout = old }(dropLockTimeout)
	dropLockTimeout = "1s"
	ctx := context.Background()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE leak (id int)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO leak VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	rec := &errRecorder{TB: t}
	dropSchema(rec, os.Getenv("SEGSYNC_TEST_POSTGRES_URL"), schema)
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "INSERT INTO leak") {
		t.Fatalf("cleanup reported %q, want one error naming the leaked INSERT", rec.errs)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil || n != 0 {
		t.Fatalf("schema %s still exists (%d, %v)", schema, n, err)
	}
}
