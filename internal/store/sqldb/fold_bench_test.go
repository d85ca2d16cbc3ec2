package sqldb_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// BenchmarkCountTextFold counts a text segment over SEGSYNC_BENCH_ROWS
// profiles (default 1,000,000, half of them with accented names) on the
// same data in the same run: the ASCII-only equality segsync used before
// (lower() / COLLATE NOCASE), and today's Unicode folding for each text
// operator: values that fold to ASCII (the database's ASCII lowering, see
// segment.textClass), accented ones (the folded shadow, attrs_fold) and
// ordering (the shadow, else ASCII lowering).
//
//	go test -run '^$' -bench CountTextFold -benchtime 3x ./internal/store/sqldb
func BenchmarkCountTextFold(b *testing.B) {
	n, open := benchStores()
	names := []string{"Émile", "Emma", "Zoë", "Özil", "Noah", "Ångström", "Daan", "émilie", "Sophie", "Lucas"}
	for dialect, op := range open {
		db := op(b)
		ctx := context.Background()
		loadProfiles(b, db, n, func(i int) string {
			return fmt.Sprintf(`{"city":"City%d","name":%q,"spend":%d}`, i%50, names[i%len(names)], i%1000)
		})
		// The SQL the compiler wrote for an equality before textfold.
		old := "SELECT COUNT(*) FROM profiles WHERE json_extract(attrs, '$.name') COLLATE NOCASE = 'emma'"
		if dialect == "postgres" {
			old = `SELECT COUNT(*) FROM profiles WHERE jsonb_typeof(attrs -> 'name') = 'string' AND lower((attrs ->> 'name') COLLATE "C") = 'emma'`
		}
		b.Run(dialect+"/before:ascii-lower-eq", func(b *testing.B) {
			benchCPU(b, nil, func() {
				var c int64
				if err := db.R.QueryRowContext(ctx, old).Scan(&c); err != nil || c != int64(n/10) {
					b.Fatalf("%d, %v", c, err)
				}
			})
		})
		for _, tc := range []struct {
			name, rule string
			tenths     int // of the profiles that match
		}{
			{"fold-eq", `{"attribute":"name","op":"eq","value":"EMMA"}`, 1},
			{"fold-eq-accented", `{"attribute":"name","op":"eq","value":"ÉMILE"}`, 1},
			{"fold-starts_with", `{"attribute":"name","op":"starts_with","value":"Em"}`, 1},
			{"fold-starts_with-accented", `{"attribute":"name","op":"starts_with","value":"émi"}`, 2},
			{"fold-in-accented", `{"attribute":"name","op":"in","value":["ÉMILE","zoë"]}`, 2},
			{"fold-contains-accented", `{"attribute":"name","op":"contains","value":"Ö"}`, 2},
			{"fold-ends_with-accented", `{"attribute":"name","op":"ends_with","value":"STRÖM"}`, 1},
			{"fold-neq", `{"attribute":"name","op":"neq","value":"EMMA"}`, 9},
			{"fold-neq-accented", `{"attribute":"name","op":"neq","value":"ÉMILE"}`, 9},
			{"fold-not_in", `{"attribute":"name","op":"not_in","value":["EMMA","noah"]}`, 8},
			{"fold-not_in-accented", `{"attribute":"name","op":"not_in","value":["ÉMILE","zoë"]}`, 8},
			{"fold-lt", `{"attribute":"name","op":"lt","value":"E"}`, 1},
			{"fold-gte-accented", `{"attribute":"name","op":"gte","value":"ÉMILE"}`, 3},
		} {
			r, err := segment.Parse([]byte(tc.rule), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(dialect+"/"+tc.name, func(b *testing.B) {
				benchCPU(b, nil, func() {
					c, err := db.CountMatching(ctx, r)
					if err != nil || c != int64(n/10*tc.tenths) {
						b.Fatalf("%d, %v", c, err)
					}
				})
			})
		}
	}
}

// benchStores returns how many profiles a store benchmark loads
// (SEGSYNC_BENCH_ROWS, default 1,000,000) and the databases it runs on:
// SQLite, and PostgreSQL when SEGSYNC_TEST_POSTGRES_URL is set.
func benchStores() (int, map[string]func(testing.TB) *sqldb.DB) {
	n := 1_000_000
	if s := os.Getenv("SEGSYNC_BENCH_ROWS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	open := map[string]func(testing.TB) *sqldb.DB{"sqlite": dbtest.SQLite}
	if os.Getenv("SEGSYNC_TEST_POSTGRES_URL") != "" {
		open["postgres"] = dbtest.Postgres
	}
	return n, open
}

// loadProfiles upserts n profiles c0000000, c0000001, … with the
// attributes attrs gives each, 5,000 at a time.
func loadProfiles(b *testing.B, db *sqldb.DB, n int, attrs func(i int) string) {
	b.Helper()
	batch := make([]store.ProfilePatch, 0, 5000)
	for i := range n {
		batch = append(batch, store.ProfilePatch{CustomerID: fmt.Sprintf("c%07d", i), Attrs: attrs(i)})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := db.UpsertProfiles(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// benchCPU runs op b.N times and reports, beside the wall time, the CPU
// time this process spent in op per run (processCPU); reset, when not nil,
// runs before each op outside both.
func benchCPU(b *testing.B, reset, op func()) {
	b.Helper()
	var cpu time.Duration
	for range b.N {
		if reset != nil {
			b.StopTimer()
			reset()
			b.StartTimer()
		}
		start := processCPU()
		op()
		cpu += processCPU() - start
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}

// processCPU is the CPU time this process has used: on SQLite the whole
// count's, on PostgreSQL only the client's (the server does the work).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
