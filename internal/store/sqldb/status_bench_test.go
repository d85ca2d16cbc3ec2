package sqldb_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segsync/segsync/internal/segment"
)

// BenchmarkCountStatus counts segments on Mailchimp's statuses (read from
// profile_statuses through a subquery) next to one on an ordinary
// attribute, over SEGSYNC_BENCH_ROWS profiles (default 1,000,000), each with
// a status in one audience (a tenth unsubscribed).
//
//	go test -run '^$' -bench CountStatus -benchtime 3x ./internal/store/sqldb
func BenchmarkCountStatus(b *testing.B) {
	n, open := benchStores()
	for dialect, op := range open {
		db := op(b)
		ctx := context.Background()
		loadProfiles(b, db, n, func(i int) string { return fmt.Sprintf(`{"city":"City%d","spend":%d}`, i%10, i%1000) })
		if _, err := db.W.ExecContext(ctx, `INSERT INTO profile_statuses (customer, audience_id, status, changed_at)
			SELECT customer_id, 'aud1', CASE WHEN customer_id LIKE '%3' THEN 'unsubscribed' ELSE 'subscribed' END, '2026-12-01T10:00:00Z' FROM profiles`); err != nil {
			b.Fatal(err)
		}
		for _, tc := range []struct{ name, rule string }{
			{"attribute-eq", `{"attribute":"city","op":"eq","value":"City3"}`},
			{"status-eq", `{"attribute":"mailchimp.aud1.status","op":"eq","value":"unsubscribed"}`},
			{"status-neq", `{"attribute":"mailchimp.aud1.status","op":"neq","value":"subscribed"}`},
			{"status_changed_at-gte", `{"attribute":"mailchimp.aud1.status_changed_at","op":"gte","value":"2026-12-01"}`},
		} {
			r, err := segment.Parse([]byte(tc.rule), nil)
			if err != nil {
				b.Fatal(err)
			}
			want := int64(n / 10)
			if tc.name == "status_changed_at-gte" {
				want = int64(n)
			}
			b.Run(dialect+"/"+tc.name, func(b *testing.B) {
				benchCPU(b, nil, func() {
					c, err := db.CountMatching(ctx, r)
					if err != nil || c != want {
						b.Fatalf("%d, %v; want %d", c, err, want)
					}
				})
			})
		}
	}
}
