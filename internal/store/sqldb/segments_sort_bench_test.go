package sqldb_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
)

// BenchmarkSortMembers reads and sorts the members of two rules over
// SEGSYNC_BENCH_ROWS profiles (default 1,000,000) shaped like the bench's:
// what a first run does before its first create.
//
//	SEGSYNC_BENCH_ROWS=200000 go test -run '^$' -bench SortMembers -benchtime 3x ./internal/store/sqldb
func BenchmarkSortMembers(b *testing.B) {
	n, open := benchStores()
	rules := parseRules(b, `{"attribute":"score","op":"gte","value":25}`, `{"attribute":"signup_date","op":"gte","value":"2022-01-01"}`)
	epoch := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for dialect, op := range open {
		db := op(b)
		ctx := context.Background()
		loadProfiles(b, db, n, func(i int) string {
			h := uint64(i)*0x9e3779b97f4a7c15 ^ uint64(i)>>7
			return fmt.Sprintf(`{"email":"member%d@segsync-bench.net","first_name":"Ann","last_name":"Smith%d","score":%d,"signup_date":%q,"city":"City%d","vip":%t,"orders":%d}`,
				i, i%97, h%100, epoch.AddDate(0, 0, int(h>>20%1500)).Format(time.DateOnly), i%10, i%7 == 0, i%13)
		})
		sort := func(b *testing.B) {
			var first time.Duration
			benchCPU(b, nil, func() {
				members, start := 0, time.Now()
				each, release, err := db.SortMembersByHash(ctx, rules, "email", nil)
				if err != nil {
					b.Fatal(err)
				}
				defer release()
				err = each(func(store.HashedMember) error {
					if members++; members == 1 {
						first += time.Since(start)
					}
					return nil
				})
				if err != nil || members == 0 {
					b.Fatalf("%d members, %v", members, err)
				}
			})
			b.ReportMetric(first.Seconds()/float64(b.N), "first-member-s/op")
		}
		// Before the address table is filled: every member is read and
		// sorted before the first; after: an eighth of them.
		b.Run(dialect+"/sort", sort)
		if err := db.RefreshAddresses(ctx, "email"); err != nil {
			b.Fatal(err)
		}
		b.Run(dialect+"/early", sort)
	}
}

// parseRules parses segment rules given as JSON.
func parseRules(tb testing.TB, texts ...string) []*segment.Rule {
	tb.Helper()
	rules := make([]*segment.Rule, len(texts))
	for i, text := range texts {
		r, err := segment.Parse([]byte(text), nil)
		if err != nil {
			tb.Fatal(err)
		}
		rules[i] = r
	}
	return rules
}
