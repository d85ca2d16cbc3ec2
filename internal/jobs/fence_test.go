package jobs_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/jobs"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/store/sqlite"
	"github.com/segsync/segsync/internal/syncer"
)

// sends records when each request of one worker left for Mailchimp.
type sends struct {
	mu    sync.Mutex
	times []time.Time
	next  http.RoundTripper
}

func (s *sends) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.times = append(s.times, time.Now())
	s.mu.Unlock()
	return s.next.RoundTrip(r)
}

// after counts the requests that left after t.
func (s *sends) after(t time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, at := range s.times {
		if at.After(t) {
			n++
		}
	}
	return n
}

// countingClients gives clients whose requests s records.
type countingClients struct {
	url, key string
	s        *sends
}

func (c countingClients) ClientFor(ctx context.Context, id int64) (*mailchimp.Client, error) {
	return mailchimp.New(mailchimp.Config{APIKey: c.key, BaseURL: c.url, RetryBaseDelay: time.Millisecond,
		RetryMaxDelay: 50 * time.Millisecond, HTTPClient: &http.Client{Transport: c.s}})
}

// faultyStore fails (or, blocking, never answers) heartbeats once broken.
type faultyStore struct {
	*sqldb.DB
	broken atomic.Bool
	block  bool
}

func (f *faultyStore) HeartbeatRun(ctx context.Context, l store.RunLease, lease time.Duration, p store.Progress, c store.RunCounts, t store.RunTimings) (bool, error) {
	if f.broken.Load() {
		if f.block { // a database that stops answering
			<-ctx.Done()
			return false, ctx.Err()
		}
		return false, errors.New("injected: connection reset by peer")
	}
	return f.DB.HeartbeatRun(ctx, l, lease, p, c, t)
}

// ClaimRun fails alike once broken: the worker's database is gone for it,
// so it cannot take the run again once the lease expired (which would be a
// fresh, legitimate claim, not the stale sending the test looks for).
func (f *faultyStore) ClaimRun(ctx context.Context, owner string, lease time.Duration) (store.Run, bool, error) {
	if f.broken.Load() {
		if f.block {
			<-ctx.Done()
			return store.Run{}, false, ctx.Err()
		}
		return store.Run{}, false, errors.New("injected: connection reset by peer")
	}
	return f.DB.ClaimRun(ctx, owner, lease)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func openSQLite(t *testing.T) (*sqldb.DB, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, filepath.Join(dir, sqlite.FileName)
}

// waitLogged waits until log holds msg.
func waitLogged(t *testing.T, log *syncBuffer, msg string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !strings.Contains(log.String(), msg); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not logged within %v:\n%s", msg, timeout, log)
		}
	}
}

// testLease is short for a test, yet long enough that a loaded machine
// running the race detector renews it in time (its writer queue stalls
// for over a second at times).
const testLease = 5 * time.Second

// slack is how late, after its claim lapsed, a request that passed the
// send gate may still reach the transport on a loaded test machine (the
// race detector on two busy cores stalls goroutines for most of a second).
// It is the 0.2 × lease the gate keeps in hand, so the test still fails
// when a request leaves after the database could have given the run away.
const slack = testLease * 2 / 10

// TestHeartbeatFailures: a worker whose heartbeats fail, or whose database
// stops answering them, stops sending within 0.8 × the lease, does not
// finish the run, and another worker resumes it once the lease expired by
// the database's clock; the audience ends up exact and nothing is counted
// twice.
func TestHeartbeatFailures(t *testing.T) {
	for _, block := range []bool{false, true} {
		name := map[bool]string{false: "heartbeat errors", true: "database stops answering"}[block]
		t.Run(name, func(t *testing.T) {
			db, _ := openSQLite(t)
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			// Slow enough that the run outlasts the lease after its first
			// 500 contacts are recorded (the recorder commits every second,
			// and a created contact's row may wait for its tags).
			const n = 3000
			f := setup(t, db, n, emulator.Options{LatencyPerMember: 2 * time.Millisecond})
			faulty := &faultyStore{DB: db, block: block}
			aSends := &sends{next: http.DefaultTransport}
			aLog := &syncBuffer{}
			a := &jobs.Runner{Store: faulty, Engine: &syncer.Engine{Store: db, Source: db, Concurrency: 1},
				Clients: countingClients{f.srv.URL, f.srv.Key(), aSends}, Log: slog.New(slog.NewTextHandler(aLog, nil)),
				Lease: testLease, Poll: 20 * time.Millisecond}
			run, _, err := a.Enqueue(ctx, f.exp.ID, store.TriggerManual, false, "t")
			if err != nil {
				t.Fatal(err)
			}
			aCtx, stopA := context.WithCancel(ctx)
			aDone := make(chan struct{})
			go func() { defer close(aDone); a.Run(aCtx) }()
			waitRun(t, db, run.ID, 30*time.Second, func(r store.Run) bool { return r.Counts.Created >= 500 })
			broken := time.Now()
			faulty.broken.Store(true)

			waitLogged(t, aLog, "run abandoned: lease lost", 10*time.Second)
			lastAllowed := broken.Add(testLease * 8 / 10).Add(slack)
			if late := aSends.after(lastAllowed); late > 0 {
				t.Errorf("%d requests left the worker more than 0.8 × lease after its heartbeats stopped", late)
			}
			mid, _ := db.GetRun(ctx, run.ID)
			if mid.Status != store.RunRunning {
				t.Fatalf("the worker that lost its lease ended the run: %+v", mid)
			}
			stopA()
			<-aDone
			if n := aSends.after(broken.Add(testLease * 8 / 10).Add(slack)); n > 0 {
				t.Errorf("%d requests after the worker stopped", n)
			}

			// Another worker resumes the run once the lease expired.
			b := &jobs.Runner{Store: db, Engine: &syncer.Engine{Store: db, Source: db}, Clients: clients{f.srv.URL, f.srv.Key()},
				Lease: testLease, Poll: 20 * time.Millisecond}
			go b.Run(ctx)
			got := waitRun(t, db, run.ID, 60*time.Second, finished)
			if got.Status != store.RunSucceeded || got.Attempts < 2 || got.Counts.Created != n {
				t.Fatalf("resumed run = %s (%s), attempts %d, %+v", got.Status, got.Error, got.Attempts, got.Counts)
			}
			f.converged(t)
		})
	}
}

// skewedClock is the process clock set off by d (keeping the monotonic
// reading, as a wall clock that is simply wrong would).
func skewedClock(d time.Duration) func() time.Time {
	return func() time.Time { return time.Now().Add(d) }
}

// TestClockSkew: two workers whose process clocks are 60 s ahead and 60 s
// behind share the queue. The run is executed by one of them from start to
// end: neither worker gives up its own live lease nor takes over the
// other's, because who holds a run is decided by the database's clock and
// a worker only measures elapsed time on its own.
func TestClockSkew(t *testing.T) {
	db, _ := openSQLite(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	const n = 3000
	f := setup(t, db, n, emulator.Options{LatencyPerMember: time.Millisecond})
	logs := &syncBuffer{}
	var runners []*jobs.Runner
	for _, skew := range []time.Duration{60 * time.Second, -60 * time.Second} {
		r := &jobs.Runner{Store: db, Engine: &syncer.Engine{Store: db, Source: db, Concurrency: 1},
			Clients: clients{f.srv.URL, f.srv.Key()}, Log: slog.New(slog.NewTextHandler(logs, nil)).With("skew", skew),
			Lease: testLease, Poll: 20 * time.Millisecond, Clock: skewedClock(skew)}
		runners = append(runners, r)
	}
	run, _, err := runners[0].Enqueue(ctx, f.exp.ID, store.TriggerManual, false, "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runners {
		go r.Run(ctx)
	}
	defer func() {
		if t.Failed() {
			t.Log(logs)
		}
	}()
	got := waitRun(t, db, run.ID, 90*time.Second, finished)
	if got.Status != store.RunSucceeded || got.Attempts != 1 || got.Counts.Created != n {
		t.Fatalf("run = %s, attempts %d, %+v\n%s", got.Status, got.Attempts, got.Counts, logs)
	}
	if strings.Contains(logs.String(), "run abandoned") {
		t.Fatalf("a worker gave up its lease:\n%s", logs)
	}
	f.converged(t)
}

// TestSQLiteWriterBusy: another connection holds SQLite's single write lock
// for three leases. The worker cannot renew its lease, stops sending within
// 0.8 × the lease and records nothing under its lost claim; once the lock
// is gone the run is claimed again (a new token) and finishes exactly.
func TestSQLiteWriterBusy(t *testing.T) {
	db, path := openSQLite(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	const n = 3000
	f := setup(t, db, n, emulator.Options{LatencyPerMember: time.Millisecond})
	aSends := &sends{next: http.DefaultTransport}
	aLog := &syncBuffer{}
	a := &jobs.Runner{Store: db, Engine: &syncer.Engine{Store: db, Source: db, Concurrency: 1},
		Clients: countingClients{f.srv.URL, f.srv.Key(), aSends}, Log: slog.New(slog.NewTextHandler(aLog, nil)),
		Lease: testLease, Poll: 20 * time.Millisecond}
	run, _, err := a.Enqueue(ctx, f.exp.ID, store.TriggerManual, false, "t")
	if err != nil {
		t.Fatal(err)
	}
	go a.Run(ctx)
	waitRun(t, db, run.ID, 30*time.Second, func(r store.Run) bool { return r.Counts.Created >= 500 })
	first, _ := db.GetRun(ctx, run.ID)

	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	busy := time.Now()
	waitLogged(t, aLog, "lease lost: stopping the run", 15*time.Second)
	if late := aSends.after(busy.Add(testLease * 8 / 10).Add(slack)); late > 0 {
		t.Errorf("%d requests left more than 0.8 × lease after the writer became busy", late)
	}
	time.Sleep(3*testLease - time.Since(busy))
	if late := aSends.after(busy.Add(testLease * 8 / 10).Add(slack)); late > 0 {
		t.Errorf("%d requests while the writer was busy", late)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	got := waitRun(t, db, run.ID, 60*time.Second, finished)
	if got.Status != store.RunSucceeded || got.Attempts < 2 || got.Counts.Created != n {
		t.Fatalf("run = %s, attempts %d, %+v", got.Status, got.Attempts, got.Counts)
	}
	if got.LeaseToken != "" || first.LeaseToken == "" {
		t.Fatalf("tokens: first claim %q, finished run %q", first.LeaseToken, got.LeaseToken)
	}
	f.converged(t)
}
