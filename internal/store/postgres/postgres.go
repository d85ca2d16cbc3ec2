// Package postgres opens segsync's store on PostgreSQL through pgx.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/segsync/segsync/internal/store/sqldb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Open connects to the database at url and migrates it.
func Open(ctx context.Context, url string, log *slog.Logger) (*sqldb.DB, error) {
	pool, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("opening PostgreSQL: %w", err)
	}
	pool.SetMaxOpenConns(20)
	pool.SetMaxIdleConns(10)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	sub, _ := fs.Sub(migrationFiles, "migrations")
	db := sqldb.New(sqldb.Postgres, pool, pool, sub, log)
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
