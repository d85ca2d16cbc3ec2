package sqldb_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// SQLite's conflict resolutions as EXPLAIN shows them in P2 of Halt and
// HaltIfNull.
const oeAbort = 2

// TestSyncedWritesNeedNoStatementJournal: SQLite keeps a statement journal
// (a copy of every page a statement changes) for a statement that writes
// several rows and may stop half way with ABORT; its program then has a
// Halt or HaltIfNull that aborts, a count of an immediate foreign key
// (FkCounter with P1 0) or a function called from an index (PureFunc,
// Function). The insert of new contacts and the tag change (orFail) must
// have none of them; the upsert, whose DO UPDATE checks NOT NULL with
// ABORT, has them, which shows this test can tell.
func TestSyncedWritesNeedNoStatementJournal(t *testing.T) {
	db := dbtest.SQLite(t)
	insert, upsert := db.SyncedStatements(2)
	if why := abortsHalfWay(t, db, insert); why != "" {
		t.Errorf("the insert of new contacts may stop half way (%s): SQLite keeps a statement journal for it\n%s", why, insert)
	}
	tags := db.SyncedTagStatement(2)
	if why := abortsHalfWay(t, db, tags); why != "" {
		t.Errorf("the tag change may stop half way (%s): SQLite keeps a statement journal for it\n%s", why, tags)
	}
	if why := abortsHalfWay(t, db, upsert); why == "" {
		t.Errorf("the upsert shows no way to stop half way: the test no longer sees what it checks\n%s", upsert)
	}
}

// abortsHalfWay returns the first instruction of q's program that lets it
// stop half way with ABORT, or "".
func abortsHalfWay(t *testing.T, db *sqldb.DB, q string) string {
	t.Helper()
	args := make([]any, strings.Count(q, "?")+8)
	for i := range args {
		args[i] = "0"
	}
	rows, err := db.R.QueryContext(context.Background(), "EXPLAIN "+q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		op, p1, p2 := fmt.Sprint(vals[1]), fmt.Sprint(vals[2]), fmt.Sprint(vals[3])
		switch {
		case (op == "Halt" || op == "HaltIfNull") && p1 != "0" && p2 == fmt.Sprint(oeAbort),
			op == "FkCounter" && p1 == "0",
			op == "PureFunc" || op == "Function":
			return fmt.Sprintf("%s %s %s at %v", op, p1, p2, vals[0])
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ""
}

// TestSyncedRebuildMigration: migration 0024 writes the synced state anew
// with its rows as they were; deleting an export still deletes its rows,
// and a transaction that records a contact of an export that does not
// exist fails (at its commit now).
func TestSyncedRebuildMigration(t *testing.T) {
	db := dbtest.SQLite(t)
	ctx := context.Background()
	exec := execer(t, db)
	e, other := newExport(t, db), newExport(t, db)
	rows := map[int64][]store.Synced{
		e.ID: {{Hash: "0a", Email: "a@x.io", CustomerID: "c1", InAudience: true, InExport: true, FieldsHash: "f1", Tags: 5, CreatedByUs: true, Status: "subscribed"},
			{Hash: "f9", Email: "b@x.io", CustomerID: "c2", ArchivedByUs: true, Status: "archived", RejectedHash: "r2"}},
		other.ID: {{Hash: "77", Email: "c@x.io", CustomerID: "c3", InAudience: true, Status: "unsubscribed"}},
	}
	for id, rs := range rows {
		var changes []store.SyncedChange
		for _, r := range rs {
			changes = append(changes, store.SyncedChange{Hash: r.Hash, Set: &r})
		}
		if err := db.ApplySynced(ctx, id, changes); err != nil {
			t.Fatal(err)
		}
	}
	exec(`DELETE FROM schema_migrations WHERE version = 24`)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range rows {
		var got []store.Synced
		if err := db.StreamSynced(ctx, id, func(s store.Synced) error { got = append(got, s); return nil }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("export %d after the migration:\n got %+v\nwant %+v", id, got, want)
		}
	}
	row := store.Synced{Hash: "11", Email: "d@x.io", CustomerID: "c4"}
	if err := db.ApplySynced(ctx, 999, []store.SyncedChange{{Hash: row.Hash, Set: &row}}); err == nil {
		t.Error("recorded a contact of an export that does not exist")
	}
	if err := db.DeleteExport(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := db.R.QueryRowContext(ctx, `SELECT count(*) FROM synced WHERE export_id = ?`, e.ID).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d rows of a deleted export left (%v)", left, err)
	}
}

// TestSyncedNewThatExists: a Set marked New is inserted without a look for
// its row; when the row exists after all (the hint was wrong), the batch
// is still recorded as if the hint were not there: the row is updated, its
// tags kept and its tag change applied, and the other rows of the batch
// are written too.
func TestSyncedNewThatExists(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		e := newExport(t, db)
		old := store.Synced{Hash: "aa", Email: "a@x.io", CustomerID: "c1", InAudience: true, FieldsHash: "f1", Tags: 1, Status: "subscribed"}
		if err := db.ApplySynced(ctx, e.ID, []store.SyncedChange{{Hash: old.Hash, Set: &old}}); err != nil {
			t.Fatal(err)
		}
		again := store.Synced{Hash: "aa", Email: "a@x.io", CustomerID: "c1", InAudience: true, FieldsHash: "f2", Status: "subscribed"}
		fresh := store.Synced{Hash: "bb", Email: "b@x.io", CustomerID: "c2", InAudience: true, FieldsHash: "f3", Status: "subscribed"}
		err := db.ApplySynced(ctx, e.ID, []store.SyncedChange{
			{Hash: again.Hash, Set: &again, New: true, AddTags: 2},
			{Hash: fresh.Hash, Set: &fresh, New: true, AddTags: 4},
		})
		if err != nil {
			t.Fatalf("a wrong New hint: %v", err)
		}
		got := map[string]store.Synced{}
		if err := db.StreamSynced(ctx, e.ID, func(s store.Synced) error { got[s.Hash] = s; return nil }); err != nil {
			t.Fatal(err)
		}
		want := map[string]store.Synced{"aa": again, "bb": fresh}
		w := want["aa"]
		w.Tags = 1 | 2 // the row's tags stay, the change's are added
		want["aa"] = w
		w = want["bb"]
		w.Tags = 4
		want["bb"] = w
		if !reflect.DeepEqual(got, want) {
			t.Errorf("synced state:\n got %+v\nwant %+v", got, want)
		}
	})
}
