package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/jobs"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/mailchimp/emulator/emulatortest"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/store/sqlite"
	"github.com/segsync/segsync/internal/syncer"
)

type clients struct{ url, key string }

func (c clients) ClientFor(ctx context.Context, id int64) (*mailchimp.Client, error) {
	return mailchimp.New(mailchimp.Config{APIKey: c.key, BaseURL: c.url, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 50 * time.Millisecond})
}

// TestMain doubles as the "serve" process of the crash test: with
// SEGSYNC_JOBS_CHILD set it runs workers on the given data directory until
// it is killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("SEGSYNC_JOBS_CHILD"); dir != "" {
		ctx := context.Background()
		db, err := sqlite.Open(ctx, dir, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		r := &jobs.Runner{Store: db, Engine: &syncer.Engine{Store: db, Source: db, Concurrency: 2},
			Clients: clients{os.Getenv("MC_URL"), os.Getenv("MC_KEY")},
			Log:     slog.New(slog.NewTextHandler(os.Stderr, nil)), Lease: 10 * time.Second, Poll: 100 * time.Millisecond}
		_ = r.Run(ctx)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type fixture struct {
	srv  *emulator.Server
	list string
	exp  store.Export
	n    int
}

func setup(t *testing.T, db *sqldb.DB, n int, opts emulator.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{srv: emulatortest.Start(t, opts), n: n}
	var err error
	if f.list, err = f.srv.CreateList(f.srv.Key(), "Shop"); err != nil {
		t.Fatal(err)
	}
	_ = f.srv.AddMergeField(f.list, "FNAME", "First name", "text")
	var patches []store.ProfilePatch
	for i := 0; i < n; i++ {
		b, _ := json.Marshal(map[string]any{"email": fmt.Sprintf("p%d@shop.io", i), "first": fmt.Sprintf("F%d", i), "n": i})
		patches = append(patches, store.ProfilePatch{CustomerID: fmt.Sprintf("c%05d", i), Attrs: string(b)})
	}
	if _, err := db.UpsertProfiles(ctx, patches); err != nil {
		t.Fatal(err)
	}
	rule, err := segment.Parse([]byte(`{"attribute":"n","op":"gte","value":0}`), segment.KnownSet("n"))
	if err != nil {
		t.Fatal(err)
	}
	seg := store.Segment{Name: "All", Rule: rule}
	if err := db.CreateSegment(ctx, &seg); err != nil {
		t.Fatal(err)
	}
	conn := int64(1)
	f.exp = store.Export{Name: "all", ConnectionID: &conn, AudienceID: f.list, SegmentIDs: []int64{seg.ID},
		Mapping: store.Mapping{Email: "email", FirstName: "first"}, StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
	if err := db.CreateExport(ctx, &f.exp); err != nil {
		t.Fatal(err)
	}
	return f
}

// converged checks the audience holds exactly the n profiles, tagged.
func (f *fixture) converged(t *testing.T) {
	t.Helper()
	cs, err := f.srv.Contacts(f.list)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != f.n {
		t.Fatalf("audience has %d contacts, want %d", len(cs), f.n)
	}
	for _, c := range cs {
		if c.Status != "subscribed" || len(c.Tags) != 1 || c.Tags[0] != "All" || c.MergeFields["FNAME"] == "" {
			t.Fatalf("contact %+v", c)
		}
	}
}

func waitRun(t *testing.T, db *sqldb.DB, id int64, timeout time.Duration, done func(store.Run) bool) store.Run {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, err := db.GetRun(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if done(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d: still %+v after %v", id, r, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sent(t *testing.T, f *fixture) int {
	cs, err := f.srv.Contacts(f.list)
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

func finished(r store.Run) bool { return r.FinishedAt != nil }

func TestRunnerSingleFlightAndCancel(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		f := setup(t, db, 1500, emulator.Options{LatencyPerMember: 200 * time.Microsecond})
		// A lease of a few seconds: heartbeats renew it through the run; at
		// 1 s a loaded machine (a stalled SQLite writer) lost it over and
		// over and the run never finished in time.
		r := &jobs.Runner{Store: db, Engine: &syncer.Engine{Store: db, Source: db}, Clients: clients{f.srv.URL, f.srv.Key()},
			Lease: 3 * time.Second, Poll: 20 * time.Millisecond}
		first, created, err := r.Enqueue(ctx, f.exp.ID, store.TriggerManual, false, "t")
		if err != nil || !created {
			t.Fatal(err)
		}
		go r.Run(ctx)
		waitRun(t, db, first.ID, 10*time.Second, func(r store.Run) bool { return r.Status == store.RunRunning })
		second, created, _ := r.Enqueue(ctx, f.exp.ID, store.TriggerManual, false, "t")
		third, created3, _ := r.Enqueue(ctx, f.exp.ID, store.TriggerManual, false, "t")
		if !created || created3 || third.ID != second.ID {
			t.Fatalf("triggers while running: %v %v (%d, %d)", created, created3, second.ID, third.ID)
		}
		got := waitRun(t, db, first.ID, 30*time.Second, finished)
		if got.Status != store.RunSucceeded || got.Counts.Created != 1500 || got.Progress.Done != got.Progress.Total {
			t.Fatalf("first run = %+v", got)
		}
		got = waitRun(t, db, second.ID, 30*time.Second, finished)
		// Nothing changed since the first run: the second plans nothing.
		if got.Status != store.RunSucceeded || got.Counts.Incremental != 1 || got.Counts.Profiles != 0 || got.Counts.WriteCalls != 0 {
			t.Fatalf("second run = %+v", got)
		}
		f.converged(t)
	})
}

// TestCancel cancels a slow run and checks that it stops within seconds,
// keeping what was acknowledged.
func TestCancel(t *testing.T) {
	db := dbtest.SQLite(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	const n = 3000
	f := setup(t, db, n, emulator.Options{LatencyPerMember: 2 * time.Millisecond})
	slow := &jobs.Runner{Store: db, Engine: &syncer.Engine{Store: db, Source: db, Concurrency: 1}, Clients: clients{f.srv.URL, f.srv.Key()},
		Lease: 4 * time.Second, Poll: 20 * time.Millisecond}
	slowCtx, stopSlow := context.WithCancel(ctx)
	slowDone := make(chan struct{})
	go func() { defer close(slowDone); slow.Run(slowCtx) }()
	run, _, _ := slow.Enqueue(ctx, f.exp.ID, store.TriggerManual, false, "t")
	// Wait for the run itself to have recorded an acknowledged batch: a batch
	// the emulator applied but whose answer is still on its way when the
	// cancel lands is not acknowledged, and the next run recognises it.
	waitRun(t, db, run.ID, 20*time.Second, func(r store.Run) bool { return r.Counts.Created >= 500 })
	asked := time.Now()
	if _, err := slow.Cancel(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	got := waitRun(t, db, run.ID, 10*time.Second, finished)
	took := time.Since(asked)
	if got.Status != store.RunCancelled || got.Counts.Created < 500 || got.Counts.Created >= n {
		t.Fatalf("cancelled run = %s %+v", got.Status, got.Counts)
	}
	t.Logf("stopped %v after the cancel with %d contacts created", took.Round(time.Millisecond), got.Counts.Created)
	stopSlow()
	<-slowDone

	// The next run finishes the job from what was acknowledged.
	fast := &jobs.Runner{Store: db, Engine: &syncer.Engine{Store: db, Source: db}, Clients: clients{f.srv.URL, f.srv.Key()},
		Lease: 4 * time.Second, Poll: 20 * time.Millisecond}
	go fast.Run(ctx)
	r2, _, _ := fast.Enqueue(ctx, f.exp.ID, store.TriggerManual, false, "t")
	done := waitRun(t, db, r2.ID, 60*time.Second, finished)
	if done.Status != store.RunSucceeded || done.Counts.Created+got.Counts.Created != n {
		t.Fatalf("run after cancel = %+v (cancelled run created %d)", done, got.Counts.Created)
	}
	f.converged(t)
}

func TestSchedulerTick(t *testing.T) {
	db := dbtest.SQLite(t)
	ctx := context.Background()
	f := setup(t, db, 3, emulator.Options{})
	f.exp.Schedule = "*/5 * * * *"
	if err := db.UpdateExport(ctx, &f.exp); err != nil {
		t.Fatal(err)
	}
	r := &jobs.Runner{Store: db, Engine: &syncer.Engine{Store: db, Source: db}, Clients: clients{f.srv.URL, f.srv.Key()}}
	// The times follow the first slot after the export's creation, not
	// the creation itself: created at 06:34:59, +5m1s is still before the
	// 06:40 slot and +5m2s after it.
	slot := f.exp.CreatedAt.Truncate(5 * time.Minute).Add(5 * time.Minute)
	tests := []struct {
		at    time.Time
		queue bool
	}{
		{f.exp.CreatedAt, false},
		{slot.Add(time.Second), true},
		{slot.Add(2 * time.Second), false}, // already queued for this slot
		{slot.Add(6 * time.Minute), true},
	}
	for _, tc := range tests {
		if err := r.Tick(ctx, tc.at); err != nil {
			t.Fatal(err)
		}
		runs, _ := db.ListRuns(ctx, f.exp.ID, 0)
		queued := len(runs) > 0 && runs[0].Status == store.RunQueued
		if queued != tc.queue {
			t.Fatalf("at %v: queued %v, want %v", tc.at, queued, tc.queue)
		}
		if queued {
			if runs[0].Trigger != store.TriggerSchedule {
				t.Fatalf("trigger %q", runs[0].Trigger)
			}
			_, _ = db.CancelRun(ctx, runs[0].ID)
		}
	}
}

// TestCrashResume kills a real worker process in the middle of sending and
// checks that the run resumes by itself in the next process and converges.
func TestCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 4000
	f := setup(t, db, n, emulator.Options{LatencyPerMember: time.Millisecond})
	run, _, err := db.EnqueueRun(ctx, f.exp.ID, store.TriggerManual, false, "t")
	if err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SEGSYNC_JOBS_CHILD="+dir, "MC_URL="+f.srv.URL, "MC_KEY="+f.srv.Key())
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	child := start()
	// Kill it once the first batches went out and before the run ends.
	deadline := time.Now().Add(30 * time.Second)
	for sent(t, f) < 1000 {
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("the worker never started sending")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	mid, _ := db.GetRun(ctx, run.ID)
	if mid.Status != store.RunRunning {
		t.Fatalf("after the kill the run is %+v; the kill came too late to test anything", mid)
	}
	cs, _ := f.srv.Contacts(f.list)
	t.Logf("killed with %d of %d contacts sent, progress %+v", len(cs), n, mid.Progress)

	restarted := time.Now()
	child = start()
	defer func() { child.Process.Kill(); child.Wait() }()
	got := waitRun(t, db, run.ID, 60*time.Second, finished)
	t.Logf("resumed and finished %v after restart: %+v", time.Since(restarted).Round(time.Millisecond), got.Counts)
	// The contacts created just before the kill are recognised as ours.
	if got.Status != store.RunSucceeded || got.Attempts < 2 || got.Counts.Adopted != 0 || got.Counts.Created != int64(n) {
		t.Fatalf("run after restart = %+v", got)
	}
	f.converged(t)
}
