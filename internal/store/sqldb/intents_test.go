package sqldb_test

import (
	"context"
	"testing"

	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// TestCreateIntentsMigration: migration 0021 turns the intents a database
// kept a row per contact into a batch per export, which the next run
// reads back.
func TestCreateIntentsMigration(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		exec := execer(t, db)
		e, other := newExport(t, db), newExport(t, db)
		// Back to the schema before 0021, with intents of two exports.
		exec(`DROP TABLE create_intents`)
		exec(`CREATE TABLE synced_intents (export_id BIGINT NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
			hash TEXT NOT NULL, email TEXT NOT NULL, customer_id TEXT NOT NULL, fields_hash TEXT NOT NULL, PRIMARY KEY (export_id, hash))`)
		exec(`DELETE FROM schema_migrations WHERE version = 21`)
		exec(`INSERT INTO synced_intents (export_id, hash, email, customer_id, fields_hash) VALUES (?, 'h1', 'a@x.io', 'c1', 'f1'),
			(?, 'h2', 'b"@x.io', 'c2', 'f2'), (?, 'h3', 'c@x.io', 'c3', 'f3')`, e.ID, e.ID, other.ID)
		if err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		left, err := db.LeftIntents(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 2 || left["h1"] != "f1" || left["h2"] != "f2" {
			t.Fatalf("intents left for the export: %v, want h1 f1 and h2 f2", left)
		}
		if left, err := db.LeftIntents(ctx, other.ID); err != nil || len(left) != 1 || left["h3"] != "f3" {
			t.Fatalf("intents left for the other export: %v (%v), want h3 f3", left, err)
		}
		// The person is reached through the migrated intent.
		er, err := db.CreateErasure(ctx, "c2", "admin")
		if err != nil {
			t.Fatal(err)
		}
		if len(er.Audiences) != 1 || er.Audiences[0].Email != `b"@x.io` {
			t.Fatalf("erasure targets %+v, want b\"@x.io", er.Audiences)
		}
	})
}
