package sqldb_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
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
		StreamMembersOfHashes(context.Context, []*segment.Rule, string, []string, []string, func(store.HashedMember) error) error
	}) {
		t.Helper()
		want := map[string]string{emailaddr.Hash("p7@shop.io"): "c0007", emailaddr.Hash("p2999@shop.io"): "c2999"}
		got := map[string]string{}
		err := db.StreamMembersOfHashes(ctx, []*segment.Rule{rule}, "email", nil, []string{emailaddr.Hash("p7@shop.io"), emailaddr.Hash("p2999@shop.io")},
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

// TestSortMembersEarly: once the address table is filled and up to date,
// a first run's member sort streams the members whose hash sorts below a
// bound before it has read the others. The stream is the one of a sort of
// them all, in the same order: several id ranges, addresses that differ
// in case only, invalid and missing ones, and profiles changed after the
// fill (then the table is behind and the sort reads them all).
func TestSortMembersEarly(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		db.SpanProfiles, db.RangeProfiles = 50, 90 // a dozen id ranges, two read at once
		email := func(i, g int) string {
			switch {
			case i%37 == 0:
				return `"not-an-address"`
			case i%41 == 0:
				return `null`
			case i%10 == 3: // the same address as profile i-1, in capitals
				return fmt.Sprintf(`"P%d.G%d@Shop.IO"`, i-1, g)
			}
			return fmt.Sprintf(`"p%d.g%d@shop.io"`, i, g)
		}
		write := func(from, to, g int) {
			t.Helper()
			var ps []store.ProfilePatch
			for i := from; i < to; i++ {
				ps = append(ps, store.ProfilePatch{CustomerID: fmt.Sprintf("c%04d", i),
					Attrs: fmt.Sprintf(`{"email":%s,"score":%d,"city":%q}`, email(i, g), (i*7)%100, []string{"Amsterdam", "Utrecht"}[i%2])})
			}
			if _, err := db.UpsertProfiles(ctx, ps); err != nil {
				t.Fatal(err)
			}
		}
		write(0, 800, 0)
		rules := parseRules(t, `{"attribute":"score","op":"gte","value":30}`, `{"attribute":"city","op":"eq","value":"Amsterdam"}`)
		sorted := func() []string {
			t.Helper()
			each, release, err := db.SortMembersByHash(ctx, rules, "email", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			var out []string
			if err := each(func(m store.HashedMember) error {
				out = append(out, fmt.Sprint(m.Hash, " ", m.CustomerID, " ", m.Segments, " ", string(m.Attrs), " ", m.UpdatedAt.UnixMicro()))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return out
		}
		early := func(want bool) {
			t.Helper()
			if ok, err := db.EarlySortable(ctx, "email"); err != nil || ok != want {
				t.Fatalf("early sort %t, %v; want %t", ok, err, want)
			}
		}
		same := func(got, want []string) {
			t.Helper()
			below := 0
			for _, m := range want {
				if m < "2" {
					below++
				}
			}
			if below == 0 || below == len(want) {
				t.Fatalf("%d of %d members below the bound: the test covers one part only", below, len(want))
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("the early sort streamed %d members, the full sort %d:\n%s\nwant\n%s", len(got), len(want), strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}

		early(false)
		all := sorted()
		if err := db.RefreshAddresses(ctx, "email"); err != nil {
			t.Fatal(err)
		}
		early(true)
		same(sorted(), all)

		// The first part goes through the table, and each part keeps its
		// side of the bound: a profile the table places above the bound
		// though its address is below it is left out, as one whose address
		// moved below it during the run would be; one the table places
		// below though its address is above it is streamed once, by the
		// second part, which reads every profile.
		var low, high string // a member's customer id on each side
		for _, m := range all {
			f := strings.Split(m, " ")
			if f[0] == "" {
				continue
			}
			if f[0] < "2" && low == "" {
				low = f[1]
			} else if f[0] >= "2" && high == "" {
				high = f[1]
			}
		}
		for id, hash := range map[string]string{low: "ffffffff", high: "00000000"} {
			if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE profile_addresses SET hash = ? WHERE profile_id = (SELECT id FROM profiles WHERE customer_id = ?)`), hash, id); err != nil {
				t.Fatal(err)
			}
		}
		var without []string
		for _, m := range all {
			if f := strings.Split(m, " "); f[1] != low {
				without = append(without, m)
			}
		}
		same(sorted(), without)

		// New addresses for a quarter of the profiles, and new profiles:
		// the table is behind until it is caught up.
		write(200, 1000, 1)
		early(false)
		all = sorted()
		if err := db.RefreshAddresses(ctx, "email"); err != nil {
			t.Fatal(err)
		}
		early(true)
		same(sorted(), all)
	})
}

// TestExportFillsAddresses: creating an export has the address table of
// its e-mail attribute filled in the background, so that its first run
// finds it ready; changing the attribute has the new one's filled.
func TestExportFillsAddresses(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.UpsertProfiles(ctx, []store.ProfilePatch{
			{CustomerID: "c1", Attrs: `{"email":"a@shop.io","work_email":"a@work.io"}`},
		}); err != nil {
			t.Fatal(err)
		}
		exp := store.Export{Name: "e", AudienceID: "list", Mapping: store.Mapping{Email: "email"}, OnLeave: "untag"}
		if err := db.CreateExport(ctx, &exp); err != nil {
			t.Fatal(err)
		}
		dbtest.WaitAddressesFilled(t, db, "email")
		exp.Mapping.Email = "work_email"
		if err := db.UpdateExport(ctx, &exp); err != nil {
			t.Fatal(err)
		}
		dbtest.WaitAddressesFilled(t, db, "work_email")
	})
}
