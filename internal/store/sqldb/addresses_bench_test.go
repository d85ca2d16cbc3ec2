package sqldb_test

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkAddressFill fills the address table over SEGSYNC_BENCH_ROWS
// profiles (default 1,000,000), beside computing every profile's address
// once (what an incremental run's member read did before the table).
//
//	go test -run '^$' -bench AddressFill -benchtime 3x ./internal/store/sqldb
func BenchmarkAddressFill(b *testing.B) {
	n, open := benchStores()
	for dialect, op := range open {
		db := op(b)
		ctx := context.Background()
		loadProfiles(b, db, n, func(i int) string {
			return fmt.Sprintf(`{"email":"member%d@segsync-bench.net","first_name":"Ann","city":"City%d","spend":%d}`, i, i%10, i%1000)
		})
		hash := `segsync_hash(json_extract(attrs, '$.email'))`
		if dialect == "postgres" {
			hash = `segsync_hash(attrs -> 'email')`
		}
		b.Run(dialect+"/addresses", func(b *testing.B) {
			benchCPU(b, nil, func() {
				var c int
				if err := db.R.QueryRowContext(ctx, `SELECT COUNT(`+hash+`) FROM profiles`).Scan(&c); err != nil || c != n {
					b.Fatalf("%d, %v", c, err)
				}
			})
		})
		empty := func() {
			for _, table := range []string{"profile_addresses", "profile_address_marks"} {
				if _, err := db.W.ExecContext(ctx, `DELETE FROM `+table); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run(dialect+"/fill", func(b *testing.B) {
			benchCPU(b, empty, func() {
				if err := db.RefreshAddresses(ctx, "email"); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
