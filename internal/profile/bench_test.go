package profile

import (
	"context"
	"encoding/base64"
	"io"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// csvGen generates a CSV file of n profiles with 10 attributes besides the
// key, on the fly, so the input costs no memory. seed changes the values.
type csvGen struct {
	n, i int
	seed int
	buf  []byte
	off  int
}

var cities = []string{"Oslo", "Berlin", "Lyon", "Porto", "Gdańsk", "Cork", "Turku", "Graz"}

func (g *csvGen) Read(p []byte) (int, error) {
	for g.off == len(g.buf) {
		if g.i > g.n {
			return 0, io.EOF
		}
		g.buf, g.off = g.buf[:0], 0
		if g.i == 0 {
			g.buf = append(g.buf, "customer_id,email,first_name,last_name,age,score,vip,signup,city,plan,visits\n"...)
		}
		for ; g.i < g.n && len(g.buf) < 64<<10; g.i++ {
			k := g.i + g.seed
			b := g.buf
			b = append(b, "cust-"...)
			b = strconv.AppendInt(b, int64(g.i), 10)
			b = append(b, ",user"...)
			b = strconv.AppendInt(b, int64(g.i), 10)
			b = append(b, "@example.com,First"...)
			b = strconv.AppendInt(b, int64(k%1000), 10)
			b = append(b, ",Last"...)
			b = strconv.AppendInt(b, int64(k%5000), 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, int64(18+k%70), 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, int64(k%1000), 10)
			b = append(b, '.', byte('0'+k%10), byte('0'+k%7), ',')
			if k%3 == 0 {
				b = append(b, "true,"...)
			} else {
				b = append(b, "false,"...)
			}
			b = append(b, "20"...)
			b = append(b, byte('1'+k%2), byte('0'+k%10), '-', '0', byte('1'+k%9), '-', byte('1'+k%2), byte('0'+k%9), ',')
			b = append(b, cities[k%len(cities)]...)
			b = append(b, ",\"plan, "...)
			b = strconv.AppendInt(b, int64(k%4), 10)
			b = append(b, "\","...)
			b = strconv.AppendInt(b, int64(k%100000), 10)
			b = append(b, '\n')
			g.buf = b
		}
		if g.i == g.n {
			g.i++ // done after this chunk
		}
	}
	n := copy(p, g.buf[g.off:])
	g.off += n
	return n, nil
}

func benchRows(b *testing.B) int {
	if s := os.Getenv("SEGSYNC_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("SEGSYNC_BENCH_ROWS: %v", err)
		}
		return n
	}
	return 1_000_000
}

// benchImport imports rows profiles (fresh, then again unchanged, then
// changed) and reports rows/s, the peak heap seen during the import (with
// the garbage the collector has not yet reclaimed) and the live heap at its
// end (what the import keeps).
func benchImport(b *testing.B, open func(testing.TB) *sqldb.DB) {
	rows := benchRows(b)
	for _, phase := range []string{"new", "unchanged", "changed"} {
		b.Run(phase, func(b *testing.B) {
			var peak, live uint64
			var ms runtime.MemStats
			var cpu time.Duration
			for range b.N {
				b.StopTimer()
				db := open(b)
				if phase != "new" {
					if _, err := NewImporter(db, nil).Import(context.Background(), &csvGen{n: rows}, Options{Format: CSV}); err != nil {
						b.Fatal(err)
					}
				}
				seed := 0
				if phase == "changed" {
					seed = 1
				}
				runtime.GC()
				b.StartTimer()
				cpu0 := cpuTime()
				rep, err := NewImporter(db, nil).Import(context.Background(), &csvGen{n: rows, seed: seed}, Options{Format: CSV,
					Progress: func(p Progress) {
						if p.Rows == int64(rows) && live == 0 {
							// The end: only what lives through the whole import is left.
							runtime.GC()
							runtime.ReadMemStats(&ms)
							live = ms.HeapAlloc
						}
						runtime.ReadMemStats(&ms)
						peak = max(peak, ms.HeapInuse)
					}})
				if err != nil {
					b.Fatal(err)
				}
				if rep.Received != int64(rows) || rep.Rejected != 0 {
					b.Fatalf("report: %+v", rep)
				}
				cpu += cpuTime() - cpu0
				b.StopTimer()
				db.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(live)/(1<<20), "live-heap-MiB")
			b.ReportMetric(float64(cpu.Microseconds())/float64(rows*b.N), "cpu-µs/row")
		})
	}
}

// cpuTime is the CPU time the process has used (user and system, all
// threads): on a shared machine it measures the work when wall time
// measures the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkImportCSV imports SEGSYNC_BENCH_ROWS (default 1,000,000) rows of
// 10 attributes into SQLite. Run it with -benchtime=1x.
func BenchmarkImportCSV(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchImport(b, dbtest.SQLite) })
	b.Run("postgres", func(b *testing.B) { benchImport(b, dbtest.Postgres) })
}

// BenchmarkParseCSV measures the reader and typing alone.
func BenchmarkParseCSV(b *testing.B) {
	const rows = 100_000
	for range b.N {
		c, err := newCSVReader(&csvGen{n: rows}, "customer_id")
		if err != nil {
			b.Fatal(err)
		}
		var rec record
		for n := 0; ; n++ {
			if err := c.next(&rec); err == io.EOF {
				if n != rows {
					b.Fatalf("%d rows", n)
				}
				break
			} else if err != nil || rec.reason != "" {
				b.Fatal(err, rec.reason)
			}
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkProfileReads measures the reads beside an import over
// SEGSYNC_BENCH_ROWS profiles on SQLite: the attribute catalogue, the count
// and a page of the listing from the middle.
func BenchmarkProfileReads(b *testing.B) {
	rows := benchRows(b)
	db := dbtest.SQLite(b)
	ctx := context.Background()
	if _, err := NewImporter(db, nil).Import(ctx, &csvGen{n: rows}, Options{Format: CSV}); err != nil {
		b.Fatal(err)
	}
	b.Run("attributes", func(b *testing.B) {
		for range b.N {
			attrs, err := db.ProfileAttributes(ctx)
			if err != nil || len(attrs) != 11 || attrs[0].Count != int64(rows) {
				b.Fatalf("%+v, %v", attrs, err)
			}
		}
	})
	b.Run("count", func(b *testing.B) {
		for range b.N {
			if n, err := db.CountProfiles(ctx); err != nil || n != int64(rows) {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("list-page-100", func(b *testing.B) {
		cursor := base64.RawURLEncoding.EncodeToString([]byte("cust-5"))
		for range b.N {
			page, err := db.ListProfiles(ctx, 100, cursor)
			if err != nil || len(page.Profiles) != 100 {
				b.Fatal(err)
			}
		}
	})
}
