package sqldb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
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
		if p := queryPlan(t, db, q, args(q)); !strings.Contains(p, "INDEX synced_customer (export_id=? AND <expr>=? AND customer_") {
			t.Errorf("%s\nplan:\n%s\nwant a seek of synced_customer by export, bucket and customer", q, p)
		}
	}
}

// queryPlan is SQLite's plan of q with args, a step per line.
func queryPlan(t *testing.T, db *sqldb.DB, q string, args []any) string {
	t.Helper()
	rows, err := db.R.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "\n")
}

// args is a value for each placeholder of q.
func args(q string) []any {
	a := make([]any, strings.Count(q, "?"))
	for i := range a {
		a[i] = "x"
	}
	return a
}

// TestMembersOfHashesSeek checks that StreamMembersOfHashes reads the
// profiles the address table named by id, not every profile.
func TestMembersOfHashesSeek(t *testing.T) {
	db := dbtest.SQLite(t)
	var rules []*segment.Rule
	for _, text := range []string{`{"attribute":"tier","op":"eq","value":"gold"}`, `{"attribute":"spend","op":"gte","value":500}`} {
		r, err := segment.Parse([]byte(text), nil)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
		q, qargs, err := db.MembersOfHashesQuery(rules)
		if err != nil {
			t.Fatal(err)
		}
		// The statement reads profiles once (two rules: in a subquery, whose
		// rows are then scanned): sought by id, it is not scanned.
		if p := queryPlan(t, db, q, qargs); !strings.Contains(p, "USING INTEGER PRIMARY KEY (rowid=?)") {
			t.Errorf("%d rule(s): %s\nplan:\n%s\nwant profiles sought by id", len(rules), q, p)
		}
	}
}

// TestAddressesSeek: the address table is sought by bucket and hash while
// few addresses are asked for, and scanned (its index, not profiles)
// beyond that.
func TestAddressesSeek(t *testing.T) {
	db := dbtest.SQLite(t)
	for _, tc := range []struct {
		n     int
		maxID int64
		want  string
	}{
		{3000, 10_000_000, "USING COVERING INDEX profile_addresses_hash (attr=? AND <expr>=? AND hash=?)"},
		{100_000, 10_000_000, "USING COVERING INDEX profile_addresses_hash (attr=?)"},
	} {
		q, args := db.AddressesQuery(tc.n, tc.maxID)
		if p := queryPlan(t, db, q, args); !strings.Contains(p, tc.want) {
			t.Errorf("%d addresses among %d profiles: %s\nplan:\n%s\nwant %s", tc.n, tc.maxID, q, p, tc.want)
		}
	}
	// A catch-up seeks the profiles written since its mark.
	end, span := sqldb.CatchUpQueries()
	for q, want := range map[string]string{end: "INDEX profiles_updated (updated_at>?)", span: "INDEX profiles_updated (updated_at>? AND updated_at<?)"} {
		if p := queryPlan(t, db, q, args(q)); !strings.Contains(p, want) {
			t.Errorf("%s\nplan:\n%s\nwant %s", q, p, want)
		}
	}
}
