package sqldb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/store/dbtest"
)

// TestSyncedCustomerLookupsSeek: on SQLite, every shape of lookup by
// customer the store makes (an erasure's join and delete, a plan's changed
// profiles, the status flow-back's ranges) seeks synced_customer through
// its hash bucket and customer id (migration 0022). Without the buckets'
// condition, or with an index expression that no longer matches it, SQLite
// scans the export's rows instead, and this fails.
func TestSyncedCustomerLookupsSeek(t *testing.T) {
	db := dbtest.SQLite(t)
	b := db.SyncedBuckets
	for _, q := range []string{
		`SELECT s.email FROM exports e CROSS JOIN synced s WHERE s.export_id = e.id AND ` + b("s.") + ` AND s.customer_id = ?`,
		`DELETE FROM synced WHERE export_id IN (SELECT id FROM exports) AND ` + b("") + ` AND customer_id = ?`,
		`SELECT s.hash FROM profiles p CROSS JOIN synced s ON s.export_id = ? AND ` + b("s.") + ` AND s.customer_id = p.customer_id WHERE p.updated_at > ?`,
		`SELECT s.customer_id, s.status FROM synced s WHERE s.export_id = ? AND ` + b("s.") + ` AND s.customer_id > ? AND s.customer_id <= ?
			AND s.in_audience AND s.status NOT IN ('', 'creating') ORDER BY s.customer_id`,
	} {
		rows, err := db.R.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+q, args(q)...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if p := strings.Join(plan, "\n"); !strings.Contains(p, "INDEX synced_customer (export_id=? AND <expr>=? AND customer_") {
			t.Errorf("%s\nplan:\n%s\nwant a seek of synced_customer by export, bucket and customer", q, p)
		}
	}
}

// args is a value for each placeholder of q.
func args(q string) []any {
	a := make([]any, strings.Count(q, "?"))
	for i := range a {
		a[i] = "x"
	}
	return a
}
