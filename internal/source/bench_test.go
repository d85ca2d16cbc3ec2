package source

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// benchRows is the size of the benchmark table (SEGSYNC_BENCH_ROWS,
// default 1,000,000).
func benchRows(b *testing.B) int {
	if s := os.Getenv("SEGSYNC_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 1_000_000
}

// heapPeak samples the Go heap until stop is called and returns its peak.
func heapPeak() (stop func() uint64) {
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 { close(done); wg.Wait(); return peak }
}

// timedPull pulls a source once and reports its figures.
func timedPull(b *testing.B, w *world, id int64, what string) store.Pull {
	runtime.GC()
	stop := heapPeak()
	t0, c0 := time.Now(), cpuTime()
	p := w.pull(id, false)
	d, cpu := time.Since(t0), cpuTime()-c0
	peak := stop()
	if p.Status != store.RunSucceeded {
		b.Fatalf("%s: %s %s", what, p.Status, p.Error)
	}
	b.Logf("%-28s %8d rows in %7.2fs = %9.0f rows/s (%6.2fs CPU = %9.0f rows per CPU-s), peak heap %4d MiB; new %d updated %d unchanged %d removed %d",
		what, p.Counts.Received, d.Seconds(), float64(p.Counts.Received)/d.Seconds(), cpu.Seconds(), float64(p.Counts.Received)/cpu.Seconds(), peak>>20,
		p.Counts.New, p.Counts.Updated, p.Counts.Unchanged, p.Counts.Removed)
	return p
}

// cpuTime is the process's user and system CPU time so far: under a loaded
// machine, rows per CPU-second says what a pull costs when wall time cannot.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const benchQuery = `SELECT id, email, first_name, city, points, spend, vip, born, updated_at, note FROM customers`

// BenchmarkPullPostgres pulls a PostgreSQL table of benchRows rows (ten
// columns of mixed types) into SQLite: a full pull, the same pull with
// nothing changed, and an incremental pull after 1% of the rows changed.
//
//	SEGSYNC_TEST_POSTGRES_URL=… go test -run '^$' -bench PullPostgres -benchtime 1x ./internal/source
func BenchmarkPullPostgres(b *testing.B) {
	url := dbtest.PostgresURL(b)
	n := benchRows(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`CREATE TABLE customers (id text PRIMARY KEY, email text, first_name text, city text, points int, spend numeric(10,2),
			vip boolean, born date, updated_at timestamptz, note text)`,
		fmt.Sprintf(`INSERT INTO customers SELECT 'C' || lpad(i::text, 8, '0'), 'p' || i || '@shop.example', 'Name' || (i %% 500),
			'City' || (i %% 40), i %% 10000, (i %% 100000) / 100.0, i %% 7 = 0, date '1950-01-01' + (i %% 20000),
			timestamptz '2024-01-01' + (i || ' seconds')::interval, CASE WHEN i %% 3 = 0 THEN NULL ELSE 'note ' || i END
			FROM generate_series(1, %d) i`, n),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	w := newWorld(&testing.T{}, dbtest.SQLite(b))
	full := w.create(Input{Name: "pg", Kind: "postgres", Key: "id", DSN: url, Query: benchQuery})
	b.ResetTimer()
	for range b.N {
		timedPull(b, w, full.ID, "postgres full, first")
		timedPull(b, w, full.ID, "postgres full, unchanged")
		inc := w.create(Input{Name: "pg-inc", Kind: "postgres", Key: "id", DSN: url, Query: benchQuery, Mode: ModeIncremental, Cursor: "updated_at"})
		timedPull(b, w, inc.ID, "postgres incremental, first")
		if _, err := conn.Exec(ctx, `UPDATE customers SET points = points + 1, updated_at = now() WHERE right(id, 2) = '00'`); err != nil {
			b.Fatal(err)
		}
		timedPull(b, w, inc.ID, "postgres incremental, 1%")
	}
}

// BenchmarkPullMariaDB pulls a MariaDB table of benchRows rows into SQLite.
//
//	go test -run '^$' -bench PullMariaDB -benchtime 1x ./internal/source
func BenchmarkPullMariaDB(b *testing.B) {
	base := os.Getenv("SEGSYNC_TEST_MYSQL_DSN")
	if base == "" {
		base = "root@tcp(127.0.0.1:3306)/"
	}
	admin, err := sql.Open("mysql", base)
	if err != nil || admin.Ping() != nil {
		b.Skip("no MariaDB")
	}
	defer admin.Close()
	n := benchRows(b)
	name := fmt.Sprintf("segsync_bench_%d", time.Now().UnixNano()%1e9)
	for _, q := range []string{
		"CREATE DATABASE " + name,
		"CREATE TABLE " + name + `.customers (id varchar(12) PRIMARY KEY, email varchar(64), first_name varchar(32), city varchar(32),
			points int, spend decimal(10,2), vip bit(1), born date, updated_at datetime(3), note text)`,
		fmt.Sprintf("INSERT INTO "+name+`.customers SELECT CONCAT('C', LPAD(seq, 8, '0')), CONCAT('p', seq, '@shop.example'),
			CONCAT('Name', seq %% 500), CONCAT('City', seq %% 40), seq %% 10000, (seq %% 100000) / 100, seq %% 7 = 0,
			DATE_ADD('1950-01-01', INTERVAL seq %% 20000 DAY), DATE_ADD('2024-01-01', INTERVAL seq SECOND),
			IF(seq %% 3 = 0, NULL, CONCAT('note ', seq)) FROM `+name+`.seq_1_to_%d`, n),
	} {
		if _, err := admin.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	defer admin.Exec("DROP DATABASE " + name)
	mc, _ := mysql.ParseDSN(base)
	mc.DBName = name
	w := newWorld(&testing.T{}, dbtest.SQLite(b))
	src := w.create(Input{Name: "maria", Kind: "mysql", Key: "id", DSN: mc.FormatDSN(), Query: benchQuery})
	b.ResetTimer()
	for range b.N {
		timedPull(b, w, src.ID, "mariadb full, first")
		timedPull(b, w, src.ID, "mariadb full, unchanged")
	}
	_ = audit.System
}
