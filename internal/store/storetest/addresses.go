package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// TestAddressTable: the members of some addresses, which the address
// table finds (profile_addresses), are those a scan of every profile
// finds, through writes, address changes, deletions and re-creations, with
// refreshes of a few profiles per transaction, two of them at once, and
// after a fill that stopped half way (before the background fill goes on
// with it, and after); a deleted profile leaves no row behind.
func (s Suite) TestAddressTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := s.Open(t)
	db.AddressSpan = 3
	rule, err := segment.Parse([]byte(`{"attribute":"n","op":"gte","value":0}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	rules := []*segment.Rule{rule}
	rng := rand.New(rand.NewPCG(1, 2))
	// Few addresses, so that profiles share them; some invalid or absent.
	emails := []string{"a@x.io", "A@x.io ", "b@x.io", "c@x.io", "d@x.io", "e@x.io", "not an address", ""}
	attrs := func() string {
		e := emails[rng.IntN(len(emails))]
		if e == "" {
			return fmt.Sprintf(`{"n":%d}`, rng.IntN(3))
		}
		return fmt.Sprintf(`{"email":%q,"n":%d}`, e, rng.IntN(3)-1) // n -1: not a member
	}
	var hashes []string
	for _, e := range emails {
		if h := emailaddr.Hash(e); e != "" && !slices.Contains(hashes, h) {
			hashes = append(hashes, h)
		}
	}
	slices.Sort(hashes)

	// members lists "hash customer" of the members stream passes whose
	// address is one of only.
	members := func(only []string, stream func(fn func(store.HashedMember) error) error) []string {
		var got []string
		if err := stream(func(m store.HashedMember) error {
			if slices.Contains(only, m.Hash) {
				got = append(got, m.Hash+" "+m.CustomerID)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	scan := func(only []string) []string { // every profile
		return members(only, func(fn func(store.HashedMember) error) error {
			return db.StreamMembersByHash(ctx, rules, "email", nil, fn)
		})
	}
	viaTable := func(only []string) []string {
		var n int
		got := members(only, func(fn func(store.HashedMember) error) error {
			return db.StreamMembersOfHashes(ctx, rules, "email", nil, only, func(m store.HashedMember) error { n++; return fn(m) })
		})
		if n != len(got) {
			t.Fatalf("StreamMembersOfHashes passed %d members of other addresses", n-len(got))
		}
		return got
	}
	// filled waits until the table has been filled once: the first lookup
	// computes every profile's address instead and has the table filled
	// in the background when a run is over.
	filled := func() {
		t.Helper()
		db.StartDeferred()
		dbtest.WaitAddressesFilled(t, db, "email")
	}
	for round := range 30 {
		var patches []store.ProfilePatch
		for _, i := range rng.Perm(40)[:1+rng.IntN(12)] {
			patches = append(patches, pp(fmt.Sprintf("c%02d", i), attrs()))
		}
		upsert(t, db, patches...)
		for range rng.IntN(3) {
			_ = db.DeleteProfile(ctx, fmt.Sprintf("c%02d", rng.IntN(40))) // may be absent
		}
		var only []string
		for _, h := range hashes {
			if rng.IntN(2) == 0 {
				only = append(only, h)
			}
		}
		if round%5 == 4 { // two refreshes at once
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					if err := db.StreamMembersOfHashes(ctx, rules, "email", nil, only, func(store.HashedMember) error { return nil }); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
		}
		if want, got := scan(only), viaTable(only); !slices.Equal(got, want) {
			t.Fatalf("round %d: members of %d addresses via the address table:\n%v\nwant (a scan):\n%v", round, len(only), got, want)
		}
		if round == 0 {
			filled()
		}
	}
	// A fill that stopped half way (the process died between two of its
	// transactions) goes on from its mark.
	var maxID int64
	if err := db.R.QueryRowContext(ctx, `SELECT MAX(id) FROM profiles`).Scan(&maxID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE profile_address_marks SET fill_next = ?, fill_end = ? WHERE attr = 'email'`), maxID/2, maxID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.W.ExecContext(ctx, db.Q(`DELETE FROM profile_addresses WHERE profile_id >= ?`), maxID/2); err != nil {
		t.Fatal(err)
	}
	want := scan(hashes)
	if got := viaTable(hashes); !slices.Equal(got, want) {
		t.Fatalf("before a fill that stopped half way went on: members:\n%v\nwant (a scan):\n%v", got, want)
	}
	filled()
	if got := viaTable(hashes); !slices.Equal(got, want) {
		t.Fatalf("after a fill that stopped half way: members via the address table:\n%v\nwant (a scan):\n%v", got, want)
	}

	var orphans int
	if err := db.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM profile_addresses a WHERE NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = a.profile_id)`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d address rows of deleted profiles", orphans)
	}
}
