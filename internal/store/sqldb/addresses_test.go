package sqldb_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqlite"
)

// TestBackgroundFillStopsAtClose: the first lookup of some addresses
// finds their members without the address table and has it filled in the
// background when a run is over (StartDeferred); closing the store stops
// that fill between two steps, and it goes on to the end after reopening.
func TestBackgroundFillStopsAtClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	ps := make([]store.ProfilePatch, n)
	for i := range ps {
		ps[i] = store.ProfilePatch{CustomerID: fmt.Sprintf("c%04d", i), Attrs: fmt.Sprintf(`{"email":"p%d@shop.io"}`, i)}
	}
	if _, err := db.UpsertProfiles(ctx, ps); err != nil {
		t.Fatal(err)
	}
	rule, err := segment.Parse([]byte(`{"attribute":"email","op":"is_not_empty"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	// members looks up two addresses and checks what it finds.
	members := func(db interface {
		StreamMembersOfHashes(context.Context, []*segment.Rule, string, []string, func(store.HashedMember) error) error
	}) {
		t.Helper()
		want := map[string]string{emailaddr.Hash("p7@shop.io"): "c0007", emailaddr.Hash("p2999@shop.io"): "c2999"}
		got := map[string]string{}
		err := db.StreamMembersOfHashes(ctx, []*segment.Rule{rule}, "email", []string{emailaddr.Hash("p7@shop.io"), emailaddr.Hash("p2999@shop.io")},
			func(m store.HashedMember) error { got[m.Hash] = m.CustomerID; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("members %v, want %v", got, want)
		}
	}
	// A fill step of one profile each: 3,000 transactions.
	db.AddressSpan = 1
	members(db)
	db.StartDeferred()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = sqlite.Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, filled int
	state := func() {
		t.Helper()
		if err := db.R.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM profile_addresses),
			(SELECT COUNT(*) FROM profile_address_marks WHERE through >= 0 AND fill_next > fill_end)`).Scan(&rows, &filled); err != nil {
			t.Fatal(err)
		}
	}
	state()
	if filled != 0 || rows >= n {
		t.Fatalf("after Close: %d address rows, filled %d; want the fill stopped before the end", rows, filled)
	}
	db.AddressSpan = 0
	members(db)
	db.StartDeferred()
	dbtest.WaitAddressesFilled(t, db, "email")
	state()
	if rows != n {
		t.Fatalf("%d address rows after the fill went on, want %d", rows, n)
	}
	members(db) // through the table now
}
