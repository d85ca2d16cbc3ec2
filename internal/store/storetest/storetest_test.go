package storetest

import (
	"testing"

	"github.com/segsync/segsync/internal/store/dbtest"
)

func TestSQLite(t *testing.T) { Run(t, dbtest.SQLite) }

func TestPostgres(t *testing.T) {
	dbtest.PostgresURL(t) // skips (or fails under CI) without a server
	Run(t, dbtest.Postgres)
}
