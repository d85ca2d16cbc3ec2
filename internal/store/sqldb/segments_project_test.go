package sqldb_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// TestMemberAttrsProjection checks that a member stream asked for some
// attributes yields the members of the stream asked for none, each with
// the same named attributes: the members whose key is written as a name
// (as package syncer's pickAttrs reads them), with the same values in the
// same order. Where the rules are evaluated in Go (SQLite, no status rule)
// the object holds nothing else. Raw rows hold a key written with an
// escape (not the name it decodes to), a name twice and whitespace, as
// data from an older version or another tool could.
func TestMemberAttrsProjection(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		db.SpanProfiles, db.RangeProfiles = 50, 90 // several id ranges
		var ps []store.ProfilePatch
		for i := range 300 {
			first := fmt.Sprintf(`,"first":"F\"%d\u00e9"`, i)
			if i%7 == 0 {
				first = ""
			}
			email := fmt.Sprintf(`"p%d@shop.io"`, i)
			if i%23 == 0 {
				email = "42"
			}
			ps = append(ps, store.ProfilePatch{CustomerID: fmt.Sprintf("c%04d", i),
				Attrs: fmt.Sprintf(`{"email":%s%s,"score":%d,"city":%q,"vip":%t,"note":"n%d"}`,
					email, first, (i*7)%100, []string{"Amsterdam", "Utrecht"}[i%2], i%3 == 0, i)})
		}
		if _, err := db.UpsertProfiles(ctx, ps); err != nil {
			t.Fatal(err)
		}
		for id, attrs := range map[string]string{
			"r1": `{"email":"esc@shop.io","n\u0061me":"escaped","name":"plain","nick\"name":"q","score":50}`,
			"r2": `{"score":60,"name":"first","email":"dup@shop.io","name":{"x":1},"first":true}`,
			"r3": `{ "email" : "ws@shop.io" , "name" : [1, 2] , "first" : 1.50 , "score" : 70 }`,
		} {
			if _, err := db.W.ExecContext(ctx, db.Q(`INSERT INTO profiles (customer_id, attrs, updated_at) VALUES (?, ?, 0)`), id, attrs); err != nil {
				t.Fatal(err)
			}
		}
		names := []string{"email", "first", "name", `nick"name`, "missing"}

		// named lists obj's members of names, in order, as name=value.
		named := func(t *testing.T, obj []byte, all bool) []string {
			t.Helper()
			mm, err := attrjson.Split(nil, obj)
			if err != nil {
				t.Fatalf("attributes %s: %v", obj, err)
			}
			var out []string
			for _, m := range mm {
				if all || slices.Contains(names, string(m.Name)) {
					out = append(out, string(m.Name)+"="+string(m.Value))
				}
			}
			return out
		}
		type member struct {
			head  string // hash, customer, segments, updated
			attrs []byte
		}
		collect := func(t *testing.T, stream func(fn func(store.HashedMember) error) error) []member {
			t.Helper()
			var out []member
			if err := stream(func(m store.HashedMember) error {
				out = append(out, member{fmt.Sprint(m.Hash, " ", m.CustomerID, " ", m.Segments, " ", m.UpdatedAt.UnixMicro()), slices.Clone(m.Attrs)})
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return out
		}
		// same checks a projected stream against the whole one; exact: the
		// projection holds only the named attributes.
		same := func(t *testing.T, whole, proj []member, exact bool) {
			t.Helper()
			if len(whole) < 5 || len(proj) != len(whole) {
				t.Fatalf("%d members projected, %d whole", len(proj), len(whole))
			}
			shorter := 0
			for i, w := range whole {
				p := proj[i]
				if p.head != w.head {
					t.Fatalf("member %d: %s projected, %s whole", i, p.head, w.head)
				}
				want := named(t, w.attrs, false)
				if got := named(t, p.attrs, false); !slices.Equal(got, want) {
					t.Errorf("member %s: named attributes %q from %s, want %q from %s", w.head, got, p.attrs, want, w.attrs)
				}
				if exact {
					if got := named(t, p.attrs, true); !slices.Equal(got, want) {
						t.Errorf("member %s: attributes %q, want only %q", w.head, got, want)
					}
				}
				if len(p.attrs) < len(w.attrs) {
					shorter++
				}
			}
			// Every profile has attributes beyond names.
			if want := map[bool]int{true: len(whole), false: 0}[exact]; shorter != want {
				t.Errorf("%d of %d projected objects shorter than the whole, want %d", shorter, len(whole), want)
			}
		}
		var hashes []string
		for _, e := range []string{"esc@shop.io", "dup@shop.io", "ws@shop.io", "p1@shop.io", "p2@shop.io", "p3@shop.io", "p4@shop.io", "p8@shop.io", "p10@shop.io"} {
			hashes = append(hashes, emailaddr.Hash(e))
		}
		slices.Sort(hashes)
		inGo := db.Dialect() == "sqlite"
		// Without the address table, then through it (the early sort of
		// SortMembersByHash, the members of hashes found in it).
		for _, filled := range []bool{false, true} {
			if filled {
				if err := db.RefreshAddresses(ctx, "email"); err != nil {
					t.Fatal(err)
				}
			}
			if ok, err := db.EarlySortable(ctx, "email"); err != nil || ok != filled {
				t.Fatalf("early sort %t, %v; want %t", ok, err, filled)
			}
			for _, tc := range []struct {
				name  string
				rules []*segment.Rule
				inGo  bool
			}{
				{"one rule", parseRules(t, `{"attribute":"score","op":"gte","value":20}`), inGo},
				{"two rules", parseRules(t, `{"attribute":"score","op":"gte","value":40}`, `{"attribute":"city","op":"eq","value":"Amsterdam"}`), inGo},
				{"status rule", parseRules(t, `{"attribute":"mailchimp.aud1.status","op":"neq","value":"unsubscribed"}`, `{"attribute":"vip","op":"eq","value":true}`), false},
			} {
				t.Run(fmt.Sprintf("%s, address table %t", tc.name, filled), func(t *testing.T) {
					all := func(names []string) func(fn func(store.HashedMember) error) error {
						return func(fn func(store.HashedMember) error) error {
							return db.StreamMembersByHash(ctx, tc.rules, "email", names, fn)
						}
					}
					ofHashes := func(names []string) func(fn func(store.HashedMember) error) error {
						return func(fn func(store.HashedMember) error) error {
							return db.StreamMembersOfHashes(ctx, tc.rules, "email", names, hashes, fn)
						}
					}
					for _, stream := range []func([]string) func(func(store.HashedMember) error) error{all, ofHashes} {
						same(t, collect(t, stream(nil)), collect(t, stream(names)), tc.inGo)
					}
				})
			}
		}
	})
}
