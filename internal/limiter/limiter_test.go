package limiter_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/limiter"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// fast is a configuration that makes the tests quick.
func fast(owner string, max int) limiter.Config {
	return limiter.Config{Owner: owner, Max: max, TTL: 600 * time.Millisecond, Tick: 50 * time.Millisecond,
		Poll: 10 * time.Millisecond, IdleHold: 30 * time.Millisecond}
}

func TestAllocate(t *testing.T) {
	tests := []struct {
		name  string
		max   int
		wants map[string]int
		want  map[string]int
	}{
		{"nobody", 10, nil, map[string]int{}},
		{"alone gets what it wants", 10, map[string]int{"a": 4}, map[string]int{"a": 4}},
		{"alone capped", 10, map[string]int{"a": 30}, map[string]int{"a": 10}},
		{"even split", 10, map[string]int{"a": 10, "b": 10}, map[string]int{"a": 5, "b": 5}},
		{"remainder to the first by name", 10, map[string]int{"c": 10, "a": 10, "b": 10}, map[string]int{"a": 4, "b": 3, "c": 3}},
		{"small want satisfied, rest to the big", 10, map[string]int{"a": 2, "b": 10, "c": 10}, map[string]int{"a": 2, "b": 4, "c": 4}},
		{"zero wants ignored", 4, map[string]int{"a": 0, "b": 9}, map[string]int{"b": 4}},
		{"more owners than slots", 2, map[string]int{"a": 1, "b": 1, "c": 1}, map[string]int{"a": 1, "b": 1, "c": 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := limiter.Allocate(tc.max, tc.wants)
			if !maps.Equal(got, tc.want) {
				t.Fatalf("Allocate(%d, %v) = %v, want %v", tc.max, tc.wants, got, tc.want)
			}
			sum := 0
			for _, n := range got {
				sum += n
			}
			if sum > tc.max {
				t.Fatalf("allocated %d > %d", sum, tc.max)
			}
		})
	}
}

// TestLimitAcrossProcesses runs three limiters ("processes") on one
// database, each with more callers than slots, and counts the calls in
// flight across all of them.
func TestLimitAcrossProcesses(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		const max, procs, callers, calls = 4, 3, 6, 15
		var inFlight, peak atomic.Int32
		var done [procs]atomic.Int32
		var wg sync.WaitGroup
		for p := range procs {
			l := limiter.New(db, fast(fmt.Sprintf("p%d", p), max))
			t.Cleanup(func() { l.Close(context.Background()) })
			for range callers {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					for range calls {
						release, err := l.Acquire(ctx, "acct-1")
						if err != nil {
							t.Error(err)
							return
						}
						n := inFlight.Add(1)
						for {
							seen := peak.Load()
							if n <= seen || peak.CompareAndSwap(seen, n) {
								break
							}
						}
						time.Sleep(2 * time.Millisecond)
						inFlight.Add(-1)
						release()
						release() // a second call is harmless
						done[p].Add(1)
					}
				})
			}
		}
		wg.Wait()
		if got := peak.Load(); got > max {
			t.Fatalf("%d calls in flight at once, limit %d", got, max)
		}
		for p := range procs {
			if got := done[p].Load(); got != callers*calls {
				t.Errorf("process %d made %d calls, want %d", p, got, callers*calls)
			}
		}
	})
}

// flaky is a store that can be cut off, like a process whose database
// connection is gone or that is frozen.
type flaky struct {
	limiter.Store
	down atomic.Bool
}

var errDown = errors.New("database unreachable")

func (f *flaky) SyncSlotLeases(ctx context.Context, s store.SlotSync) (store.SlotState, error) {
	if f.down.Load() {
		return store.SlotState{}, errDown
	}
	return f.Store.SyncSlotLeases(ctx, s)
}

func (f *flaky) ClaimSlotLeases(ctx context.Context, account, owner string, limit, n int, ttl time.Duration) ([]int, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.ClaimSlotLeases(ctx, account, owner, limit, n, ttl)
}

// TestLeasesOfADeadProcessExpire: a process that stops renewing (dead or
// cut off) loses its slots after the TTL, stops handing out slots it cannot
// vouch for, and on return does not reuse the slots it lost.
func TestLeasesOfADeadProcessExpire(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		const max = 2
		fa := &flaky{Store: db}
		a := limiter.New(fa, fast("a", max))
		defer a.Close(context.Background())
		b := limiter.New(db, fast("b", max))
		defer b.Close(context.Background())

		var held []func()
		for range max {
			release, err := a.Acquire(ctx, "acct")
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, release)
		}
		fa.down.Store(true) // a dies with both slots in use

		// b gets both slots once a's leases expire.
		var got []func()
		for range max {
			release, err := b.Acquire(ctx, "acct")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, release)
		}
		// a cannot hand out a slot while it cannot renew.
		short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
		if _, err := a.Acquire(short, "acct"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("acquire on a cut-off process: %v, want a deadline", err)
		}
		stop()
		// a comes back: its old slots were taken, so releasing them must
		// not make them usable again; it waits for b instead.
		fa.down.Store(false)
		for _, r := range held {
			r()
		}
		waiting := make(chan error, 1)
		go func() {
			release, err := a.Acquire(ctx, "acct")
			if err == nil {
				release()
			}
			waiting <- err
		}()
		select {
		case err := <-waiting:
			t.Fatalf("a acquired (%v) while b holds every slot", err)
		case <-time.After(300 * time.Millisecond):
		}
		if busy, _ := b.InUse("acct"); busy != max {
			t.Fatalf("b has %d slots in use, want %d", busy, max)
		}
		got[0]()
		if err := <-waiting; err != nil {
			t.Fatal(err)
		}
		got[1]()
	})
}

// TestFairShare: a process that holds every slot gives its share back to a
// process that arrives later, although its own callers keep asking.
func TestFairShare(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		const max = 4
		greedy := limiter.New(db, fast("greedy", max))
		defer greedy.Close(context.Background())
		late := limiter.New(db, fast("late", max))
		defer late.Close(context.Background())

		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 3 * max {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					release, err := greedy.Acquire(ctx, "acct")
					if err != nil {
						return
					}
					time.Sleep(time.Millisecond)
					release()
				}
			})
		}
		// Wait until greedy holds every slot, then ask from the other process.
		for {
			if _, held := greedy.InUse("acct"); held == max {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("greedy never held every slot")
			}
			time.Sleep(5 * time.Millisecond)
		}
		var releases []func()
		for range max / 2 {
			release, err := late.Acquire(ctx, "acct")
			if err != nil {
				t.Fatalf("the late process starved: %v", err)
			}
			releases = append(releases, release)
		}
		if _, held := greedy.InUse("acct"); held > max/2 {
			t.Errorf("greedy still holds %d slots while late holds %d", held, max/2)
		}
		for _, r := range releases {
			r()
		}
		close(stop)
		wg.Wait()
	})
}

func TestCancelAndClose(t *testing.T) {
	db := dbtest.SQLite(t)
	ctx := context.Background()
	l := limiter.New(db, fast("x", 1))
	release, err := l.Acquire(ctx, "acct")
	if err != nil {
		t.Fatal(err)
	}
	// A waiter whose context ends gets the context's error.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(short, "acct"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline", err)
	}
	// A cancelled context is refused even when a slot is free.
	release()
	done, cancel2 := context.WithCancel(ctx)
	cancel2()
	if _, err := l.Acquire(done, "acct"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want canceled", err)
	}
	// Close fails waiters and gives the slots back.
	release, err = l.Acquire(ctx, "acct")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx, "acct")
		errc <- err
	}()
	for {
		if busy, _ := l.InUse("acct"); busy == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the waiter queue
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, limiter.ErrClosed) {
		t.Fatalf("waiter got %v, want ErrClosed", err)
	}
	release()
	if _, err := l.Acquire(ctx, "acct"); !errors.Is(err, limiter.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	st, err := db.SyncSlotLeases(ctx, store.SlotSync{Account: "acct", Owner: "probe", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Holders) != 0 || len(st.Wants) != 0 {
		t.Fatalf("after Close: holders %v, wants %v", st.Holders, st.Wants)
	}
}

// BenchmarkAcquireHeld is the hot path: a slot of a block this process
// already leases.
func BenchmarkAcquireHeld(b *testing.B) {
	db := dbtest.SQLite(b)
	l := limiter.New(db, limiter.Config{Owner: "bench"})
	defer l.Close(context.Background())
	ctx := context.Background()
	release, err := l.Acquire(ctx, "acct")
	if err != nil {
		b.Fatal(err)
	}
	release()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		release, err := l.Acquire(ctx, "acct")
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
}

// BenchmarkSync is one lease heartbeat of one account (what each process
// pays per account per Tick, and per Poll while short of slots).
func BenchmarkSync(b *testing.B) {
	var db *sqldb.DB
	if testing.Short() {
		db = dbtest.SQLite(b)
	} else {
		db = dbtest.Postgres(b)
	}
	ctx := context.Background()
	if _, err := db.ClaimSlotLeases(ctx, "acct", "bench", 10, 5, time.Minute); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := db.SyncSlotLeases(ctx, store.SlotSync{Account: "acct", Owner: "bench", Want: 5, TTL: time.Minute}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkContended is three processes on PostgreSQL (SQLite with -short)
// whose callers all want one account's 10 slots at once: the cost of an
// Acquire when the slots have to be shared and handed over between
// processes.
func BenchmarkContended(b *testing.B) {
	var db *sqldb.DB
	if testing.Short() {
		db = dbtest.SQLite(b)
	} else {
		db = dbtest.Postgres(b)
	}
	const procs, callers = 3, 8
	var ls []*limiter.Shared
	for p := range procs {
		l := limiter.New(db, limiter.Config{Owner: fmt.Sprintf("p%d", p)})
		defer l.Close(context.Background())
		ls = append(ls, l)
	}
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range procs * callers {
		l := ls[i%procs]
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				release, err := l.Acquire(ctx, "acct")
				if err != nil {
					b.Error(err)
					return
				}
				time.Sleep(100 * time.Microsecond) // a (very) short request
				release()
			}
		})
	}
	wg.Wait()
}

// TestStaleDemandForgotten: the demand of a process that died is ignored
// once it expired and removed a while later.
func TestStaleDemandForgotten(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		// A process that died long ago, and one that died just now.
		if _, err := db.W.ExecContext(ctx, db.Q(`INSERT INTO limiter_demand (account, owner, want, expires_at) VALUES (?, ?, ?, ?), (?, ?, ?, ?)`),
			"acct", "dead-long-ago", 5, time.Now().Add(-time.Hour).UnixMicro(), "acct", "dead-just-now", 5, time.Now().Add(-time.Second).UnixMicro()); err != nil {
			t.Fatal(err)
		}
		st, err := db.SyncSlotLeases(ctx, store.SlotSync{Account: "acct", Owner: "alive", Want: 2, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(st.Wants, map[string]int{"alive": 2}) {
			t.Fatalf("wants = %v, want only the live process", st.Wants)
		}
		var owners []string
		rows, err := db.R.QueryContext(ctx, `SELECT owner FROM limiter_demand ORDER BY owner`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var o string
			if err := rows.Scan(&o); err != nil {
				t.Fatal(err)
			}
			owners = append(owners, o)
		}
		if fmt.Sprint(owners) != "[alive dead-just-now]" {
			t.Fatalf("demand rows %v, want [alive dead-just-now]", owners)
		}
	})
}
