package syncer_test

import (
	"context"
	"testing"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// TestCreateIntentRecognised: a contact whose create was answered but whose
// answer never reached the store (a crash) exists in Mailchimp with no
// synced row. The next run hears "contact exists": with the run's create
// intent for the same fields it is the export's own contact (created),
// without one it is somebody else's (adopted), and with an intent for other
// fields it is not taken for ours either.
func TestCreateIntentRecognised(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, dbtest.SQLite(t), emulator.Options{})
	w.goldExport("untag")
	for _, p := range []person{
		{id: "c1", email: "ours@shop.io", first: "A", tier: "gold"},
		{id: "c2", email: "theirs@shop.io", first: "B", tier: "gold"},
		{id: "c3", email: "stale@shop.io", first: "C", tier: "gold"},
	} {
		w.upsert(p)
	}
	if res := w.run(false); res.Counts.Created != 3 {
		t.Fatalf("first run: %+v", res.Counts)
	}
	// The run's batch of intents went with the outcomes of its creates.
	var batches int
	if err := w.db.R.QueryRowContext(ctx, `SELECT count(*) FROM create_intents`).Scan(&batches); err != nil || batches != 0 {
		t.Fatalf("batches of create intents after the run: %d (%v), want none", batches, err)
	}
	// Forget the three acknowledgements, as a crash before they were
	// recorded would; note intents for c1 (same fields) and c3 (others).
	var forget []store.SyncedChange
	var intents []store.Intent
	for _, e := range []string{"ours@shop.io", "theirs@shop.io", "stale@shop.io"} {
		h := emailaddr.Hash(e)
		row, ok, err := w.db.SyncedByHash(ctx, w.exp.ID, h)
		if err != nil || !ok {
			t.Fatalf("synced row of %s: %v %v", e, ok, err)
		}
		forget = append(forget, store.SyncedChange{Hash: h, Delete: true})
		switch e {
		case "ours@shop.io":
			intents = append(intents, store.Intent{Hash: h, Email: e, CustomerID: row.CustomerID, FieldsHash: row.FieldsHash})
		case "stale@shop.io":
			intents = append(intents, store.Intent{Hash: h, Email: e, CustomerID: row.CustomerID, FieldsHash: "other"})
		}
	}
	if err := w.db.ApplySynced(ctx, w.exp.ID, forget); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.AddIntents(ctx, w.exp.ID, intents); err != nil {
		t.Fatal(err)
	}
	if err := w.db.RequestFullResync(ctx, w.exp.ID); err != nil {
		t.Fatal(err)
	}
	res := w.run(false)
	if res.Counts.Created != 1 || res.Counts.Adopted != 2 {
		t.Fatalf("run after the lost answers: created %d adopted %d, want 1 and 2 (%+v)", res.Counts.Created, res.Counts.Adopted, res.Counts)
	}
	for e, ours := range map[string]bool{"ours@shop.io": true, "theirs@shop.io": false, "stale@shop.io": false} {
		h := emailaddr.Hash(e)
		row, ok, err := w.db.SyncedByHash(ctx, w.exp.ID, h)
		if err != nil || !ok || !row.InAudience || row.CreatedByUs != ours {
			t.Errorf("%s: row %+v (ok %v, err %v), want in the audience, created by us %v", e, row, ok, err, ours)
		}
	}
	if left, err := w.db.LeftIntents(ctx, w.exp.ID); err != nil || len(left) != 0 {
		t.Errorf("intents left after the outcomes were recorded: %v (%v)", left, err)
	}
}
