package segment_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// benchProfiles is how many profiles the segment benchmarks run over;
// SEGSYNC_BENCH_PROFILES overrides it (e.g. for a quick look).
func benchProfiles() int {
	if n, err := strconv.Atoi(os.Getenv("SEGSYNC_BENCH_PROFILES")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// The benchmark databases outlive the benchmark that filled them (filling
// 1M profiles takes a while), so their cleanups are collected here and run
// by TestMain when every benchmark is done.
var (
	benchOnce     sync.Map // dialect -> *benchDB
	benchMu       sync.Mutex
	benchCleanups []func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	benchMu.Lock()
	for i := len(benchCleanups) - 1; i >= 0; i-- {
		benchCleanups[i]()
	}
	benchMu.Unlock()
	os.Exit(code)
}

type benchDB struct {
	once sync.Once
	db   *sqldb.DB
	err  error
}

// benchStore opens a database filled with benchProfiles() profiles of ten
// attributes, written with direct multi-row INSERTs, once per process and
// dialect (the benchmarks only read it).
func benchStore(b *testing.B, dialect string) *sqldb.DB {
	v, _ := benchOnce.LoadOrStore(dialect, &benchDB{})
	bd := v.(*benchDB)
	bd.once.Do(func() {
		if dialect == "sqlite" {
			bd.db = dbtest.SQLite(laterTB{b})
		} else {
			bd.db = dbtest.Postgres(laterTB{b})
		}
		bd.err = fillProfiles(bd.db, benchProfiles())
	})
	if bd.err != nil {
		b.Fatal(bd.err)
	}
	return bd.db
}

// laterTB defers cleanups (closing the database, removing its directory or
// dropping its schema) to TestMain.
type laterTB struct{ testing.TB }

func (laterTB) Cleanup(f func()) {
	benchMu.Lock()
	benchCleanups = append(benchCleanups, f)
	benchMu.Unlock()
}

func (l laterTB) TempDir() string {
	d, err := os.MkdirTemp("", "segsync-bench-")
	if err != nil {
		l.Fatal(err)
	}
	l.Cleanup(func() { os.RemoveAll(d) })
	return d
}

var (
	countries = []string{"NL", "BE", "DE", "FR", "GB", "US", "ES", "IT", "SE", "PL"}
	plans     = []string{"free", "basic", "pro", "enterprise"}
	cities    = []string{"Amsterdam", "Rotterdam", "Utrecht", "Den Haag", "Eindhoven", "Brussel", "Berlin", "Paris", "London", "Madrid"}
)

func fillProfiles(db *sqldb.DB, n int) error {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	const rows = 500
	var sb strings.Builder
	args := make([]any, 0, rows*3)
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		q := "INSERT INTO profiles (customer_id, attrs, updated_at) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?),", len(args)/3), ",")
		if _, err := db.W.ExecContext(ctx, db.Q(q), args...); err != nil {
			return fmt.Errorf("filling profiles: %w", err)
		}
		args = args[:0]
		return nil
	}
	for i := range n {
		sb.Reset()
		fmt.Fprintf(&sb, `{"age":%d,"city":%q,"country":%q,"email":"User%07d@Example.com","first_name":"First%d","last_name":"Last%d","plan":%q,"score":%.2f,"signup":"%04d-%02d-%02d","vip":%t}`,
			18+rng.IntN(70), cities[rng.IntN(len(cities))], countries[rng.IntN(len(countries))], i, i, i,
			plans[rng.IntN(len(plans))], rng.Float64()*100, 2015+rng.IntN(10), 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(4) == 0)
		args = append(args, fmt.Sprintf("c%07d", i), sb.String(), int64(1_700_000_000_000_000+i))
		if len(args) == rows*3 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if db.SQLDialect() == sqldb.Postgres {
		if _, err := db.W.ExecContext(ctx, `ANALYZE profiles`); err != nil {
			return err
		}
	}
	return nil
}

var benchRules = []struct{ name, rule string }{
	{"3conds", `{"all":[{"attribute":"country","op":"eq","value":"nl"},{"attribute":"age","op":"gte","value":30},{"attribute":"vip","op":"eq","value":true}]}`},
	{"3conds_date_text", `{"all":[{"attribute":"signup","op":"gte","value":"2020-01-01"},{"attribute":"city","op":"contains","value":"dam"},{"attribute":"plan","op":"in","value":["pro","enterprise"]}]}`},
	{"everyone", `{"attribute":"email","op":"is_not_empty"}`},
}

func benchDialects(b *testing.B) []string {
	ds := []string{"sqlite"}
	if os.Getenv("SEGSYNC_TEST_POSTGRES_URL") != "" {
		ds = append(ds, "postgres")
	}
	return ds
}

// BenchmarkSegmentCount counts the members of a rule over benchProfiles()
// profiles (target: three conditions over 1,000,000 under 2 s on SQLite).
func BenchmarkSegmentCount(b *testing.B) {
	for _, d := range benchDialects(b) {
		for _, br := range benchRules {
			b.Run(d+"/"+br.name, func(b *testing.B) {
				db := benchStore(b, d)
				r, err := segment.Parse([]byte(br.rule), nil)
				if err != nil {
					b.Fatal(err)
				}
				var n int64
				m := startMeasure()
				for b.Loop() {
					if n, err = db.CountMatching(context.Background(), r); err != nil {
						b.Fatal(err)
					}
				}
				m.report(b)
				b.ReportMetric(float64(n), "members")
			})
		}
	}
}

// BenchmarkSegmentStream streams the members of a rule in subscriber-hash
// order (target: over 1,000,000 profiles under 5 s), checking the order.
func BenchmarkSegmentStream(b *testing.B) {
	for _, d := range benchDialects(b) {
		for _, br := range benchRules {
			b.Run(d+"/"+br.name, func(b *testing.B) {
				db := benchStore(b, d)
				r, err := segment.Parse([]byte(br.rule), nil)
				if err != nil {
					b.Fatal(err)
				}
				var n int
				m := startMeasure()
				for b.Loop() {
					n = 0
					last := ""
					err := db.StreamMembersByHash(context.Background(), []*segment.Rule{r}, "email", nil, func(m store.HashedMember) error {
						if m.Hash < last {
							return fmt.Errorf("out of order: %s after %s", m.Hash, last)
						}
						last = m.Hash
						n++
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				m.report(b)
				b.ReportMetric(float64(n), "members")
			})
		}
	}
}

// measure reports, next to wall time, the process's CPU time per operation
// (getrusage: this process only, so SQLite's work but not PostgreSQL's
// server) and the peak heap in use, sampled every 20 ms — the machine is
// shared, so wall time alone says little.
type measure struct {
	cpu0 time.Duration
	stop chan struct{}
	done chan uint64
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startMeasure() *measure {
	runtime.GC()
	m := &measure{cpu0: cpuTime(), stop: make(chan struct{}), done: make(chan uint64)}
	go func() {
		var peak uint64
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-m.stop:
				m.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *measure) report(b *testing.B) {
	cpu := cpuTime() - m.cpu0
	close(m.stop)
	peak := <-m.done
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// BenchmarkSegmentCountEach counts ten segments (one per country) in one
// pass, as a segment listing does.
func BenchmarkSegmentCountEach(b *testing.B) {
	for _, d := range benchDialects(b) {
		b.Run(d+"/10segments", func(b *testing.B) {
			db := benchStore(b, d)
			var rules []*segment.Rule
			for _, c := range countries {
				r, err := segment.Parse([]byte(`{"all":[{"attribute":"country","op":"eq","value":"`+c+`"},{"attribute":"age","op":"gte","value":30}]}`), nil)
				if err != nil {
					b.Fatal(err)
				}
				rules = append(rules, r)
			}
			var total int64
			m := startMeasure()
			for b.Loop() {
				counts, err := db.CountMatchingEach(context.Background(), rules)
				if err != nil {
					b.Fatal(err)
				}
				total = 0
				for _, n := range counts {
					total += n
				}
			}
			m.report(b)
			b.ReportMetric(float64(total), "members")
		})
	}
}

// BenchmarkSegmentStreamMany streams the members of three segments at once
// with their membership bits, as an export of several segments does.
func BenchmarkSegmentStreamMany(b *testing.B) {
	for _, d := range benchDialects(b) {
		b.Run(d+"/3segments", func(b *testing.B) {
			db := benchStore(b, d)
			var rules []*segment.Rule
			for _, js := range []string{
				`{"attribute":"country","op":"in","value":["nl","be"]}`,
				`{"all":[{"attribute":"plan","op":"eq","value":"pro"},{"attribute":"age","op":"lt","value":40}]}`,
				`{"attribute":"vip","op":"eq","value":true}`,
			} {
				r, err := segment.Parse([]byte(js), nil)
				if err != nil {
					b.Fatal(err)
				}
				rules = append(rules, r)
			}
			var n int
			m := startMeasure()
			for b.Loop() {
				n = 0
				err := db.StreamMembersByHash(context.Background(), rules, "email", nil, func(m store.HashedMember) error {
					if m.Segments == 0 {
						return fmt.Errorf("member %s in no segment", m.CustomerID)
					}
					n++
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			m.report(b)
			b.ReportMetric(float64(n), "members")
		})
	}
}
