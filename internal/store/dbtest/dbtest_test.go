package dbtest

import (
	"context"
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
