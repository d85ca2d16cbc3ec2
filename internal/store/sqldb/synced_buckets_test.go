package sqldb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/store/dbtest"
)

// TestSyncedCustomerLookupsSeek: on SQLite, every statement of the store
// that finds synced rows by customer (an erasure's read and delete, a
// plan's changed profiles, the status flow-back's update and insert of a
// range) seeks synced_customer through its hash bucket and customer id
// (migration 0022). Without the buckets' condition (syncedBuckets), or
// with an index expression that no longer matches it, SQLite scans the
// export's rows instead, and this fails.
func TestSyncedCustomerLookupsSeek(t *testing.T) {
	db := dbtest.SQLite(t)
	queries, err := db.LookupsByCustomer()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queries {
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
