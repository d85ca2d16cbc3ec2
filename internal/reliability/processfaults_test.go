package reliability

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/postgres"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/store/sqlite"
)

// server is a `segsync serve` child process.
type server struct {
	t    *testing.T
	args []string
	logs string // file collecting every process's stderr
	cmd  *exec.Cmd
}

func newServer(t *testing.T, dataDir, dbURL string) *server {
	args := []string{"serve", "--listen", "127.0.0.1:0", "--data", dataDir, "--max-conns", "2",
		"--run-lease", "5s", "--log-level", "debug"}
	if dbURL != "" {
		args = append(args, "--database", dbURL)
	}
	return &server{t: t, args: args, logs: filepath.Join(t.TempDir(), "serve.log")}
}

func (s *server) start() {
	s.t.Helper()
	f, err := os.OpenFile(s.logs, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+strings.Join(s.args, "\x1f"), "SEGSYNC_SECRET_KEY="+vaultKey)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	s.t.Cleanup(func() { s.kill() })
}

func (s *server) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *server) log() string {
	b, _ := os.ReadFile(s.logs)
	return string(b)
}

// killPoint decides when the serve process dies. arm returns the gate's
// inject function and a channel closed when the moment has come; from then
// on every request is held (in flight) until the process is gone.
type killPoint struct {
	name string
	arm  func() (func(rq *request) action, <-chan struct{})
}

// holdAfter holds every request once trigger returned true for one.
func holdAfter(trigger func(rq *request) bool) (func(rq *request) action, <-chan struct{}) {
	now := make(chan struct{})
	hold := make(chan struct{}) // never closed: held requests end with their caller
	var once sync.Once
	var fired bool
	return func(rq *request) action {
		if fired || trigger(rq) {
			fired = true
			once.Do(func() { close(now) })
			return action{name: "held", hold: hold}
		}
		return action{}
	}, now
}

var killPoints = []killPoint{
	{"while planning", func() (func(rq *request) action, <-chan struct{}) {
		// The status refresh (listing archived contacts) is part of planning.
		return holdAfter(func(rq *request) bool { return rq.kind == "members-list" })
	}},
	{"mid-send", func() (func(rq *request) action, <-chan struct{}) {
		return holdAfter(func(rq *request) bool { return rq.kind == "batch" && rq.n == 3 })
	}},
	{"while recording", func() (func(rq *request) action, <-chan struct{}) {
		// Batches 1-3 are answered; the process dies while the answers are
		// on their way into the store (acknowledgements are written in
		// batches every 250 ms).
		now := make(chan struct{})
		hold := make(chan struct{})
		var once sync.Once
		var answered atomic.Int32
		return func(rq *request) action {
			if rq.kind == "batch" && rq.n <= 3 {
				return action{answered: func() {
					if answered.Add(1) == 3 {
						once.Do(func() { close(now) })
					}
				}}
			}
			if answered.Load() >= 3 {
				return action{name: "held", hold: hold}
			}
			return action{}
		}, now
	}},
}

// TestServeKilled kills `segsync serve` with SIGKILL at several points of
// a run, starts it again, and checks that the run resumes by itself and
// converges, and that no contact reached Mailchimp twice except those of
// the batches in flight (sent but not recorded) when the process died.
func TestServeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Parallel()
	for _, kp := range killPoints {
		t.Run(kp.name, func(t *testing.T) {
			t.Parallel()
			t.Run("sqlite", func(t *testing.T) {
				dir := t.TempDir()
				db, err := sqlite.Open(context.Background(), dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				testServeKilled(t, db, newServer(t, dir, ""), kp)
			})
			t.Run("postgres", func(t *testing.T) {
				url := dbtest.PostgresURL(t)
				db, err := postgres.Open(context.Background(), url, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				testServeKilled(t, db, newServer(t, t.TempDir(), url), kp)
			})
		})
	}
}

// TestServeKilledAnotherTakesOver: two serve processes share a PostgreSQL
// database; the one running the export dies (a machine lost) and the other
// resumes the run by itself, without a restart.
func TestServeKilledAnotherTakesOver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Parallel()
	url := dbtest.PostgresURL(t)
	db, err := postgres.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	testServeKilled(t, db, newServer(t, t.TempDir(), url), killPoints[1], newServer(t, t.TempDir(), url))
}

// testServeKilled runs the export in srv, kills it at the kill point and
// lets a restarted srv, or other when given (already running), resume.
func testServeKilled(t *testing.T, db *sqldb.DB, srv *server, kp killPoint, other ...*server) {
	w := newWorld(t, db, worldOpts{people: 3000, noRunner: true})
	inject, now := kp.arm()
	w.gate.setInject(inject)
	run, _, err := db.EnqueueRun(w.ctx, w.exp.ID, store.TriggerManual, false, "reliability")
	if err != nil {
		t.Fatal(err)
	}
	srv.start()
	select {
	case <-now:
	case <-time.After(60 * time.Second):
		t.Fatalf("the kill point never came; serve log:\n%s", srv.log())
	}
	if len(other) > 0 {
		other[0].start()
	}
	time.Sleep(20 * time.Millisecond) // let the last answers reach the process
	srv.kill()
	w.gate.settle(time.Now())
	mid, _ := db.GetRun(w.ctx, run.ID)
	if mid.Status != store.RunRunning {
		t.Fatalf("after the kill the run is %s; the kill came too late to test anything", mid.Status)
	}
	// What was sent but not recorded when the process died: the in-flight
	// batches. Nothing else may be sent twice.
	sentBefore, _ := w.gate.sentCounts()
	recorded := map[string]bool{}
	if err := db.StreamSynced(w.ctx, w.exp.ID, func(s store.Synced) error {
		if s.InAudience {
			recorded[s.Hash] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	inFlight := map[string]bool{}
	for h := range sentBefore {
		if !recorded[h] {
			inFlight[h] = true
		}
	}
	t.Logf("killed: %d contacts sent, %d recorded, %d in flight; progress %+v", len(sentBefore), len(recorded), len(inFlight), mid.Progress)
	if len(inFlight) > 4*500 {
		t.Errorf("%d contacts were sent but not recorded: more than the batches a process keeps in flight", len(inFlight))
	}

	w.gate.setInject(nil)
	restarted := time.Now()
	if len(other) > 0 {
		srv = other[0]
	} else {
		srv.start()
	}
	got := w.waitRun(run.ID, 90*time.Second, finished)
	t.Logf("resumed and finished %v after the restart (attempt %d): %s %+v", time.Since(restarted).Round(time.Millisecond), got.Attempts, got.Status, got.Counts)
	if got.Attempts < 2 {
		t.Errorf("the run was not resumed: attempts %d", got.Attempts)
	}
	w.wantRunOK(got, "resumed run")
	w.verify("after the resumed run")
	sent, _ := w.gate.sentCounts()
	resent := 0
	for h, n := range sent {
		if n > 1 {
			resent++
			if !inFlight[h] && !isSeeded(h) {
				t.Errorf("contact %s was sent %d times but was not in flight when the process died", h, n)
			}
		}
	}
	t.Logf("re-sent after the restart: %d contacts (in flight: %d)", resent, len(inFlight))

	// A run over unchanged data writes nothing; the next process resumes
	// nothing stale.
	next, _, err := db.EnqueueRun(w.ctx, w.exp.ID, store.TriggerManual, false, "reliability")
	if err != nil {
		t.Fatal(err)
	}
	r := w.waitRun(next.ID, 60*time.Second, finished)
	w.wantRunOK(r, "settled run")
	if r.Counts.WriteCalls != 0 {
		t.Errorf("a run over unchanged data after the crash made %d write calls", r.Counts.WriteCalls)
	}
	w.verify("after the settled run")
	srv.kill()
	w.extraLogs = srv.log()
	if !strings.Contains(w.extraLogs, "resuming run") {
		t.Errorf("the serve log does not say the run was resumed")
	}
	w.assertNoSecrets()
}

// isSeeded tells the contacts that exist before the first run: a create
// batch names them once and the adoption writes them again.
func isSeeded(h string) bool {
	for _, i := range []int{idxSelfUnsub, idxCleaned, idxArchived, idxForgotten, idxAdopted, idxPending, idxFake} {
		if h == hashOf(emailOf(i)) {
			return true
		}
	}
	return h == hashOf("p10@example.com")
}

// TestServeKilledDuringChanges kills `segsync serve` in the middle of a
// change run (archives of leavers, field updates and tag removals in
// flight, with on_leave archive), restarts it and checks the change run
// and a rejoin run converge.
func TestServeKilledDuringChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Parallel()
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv := newServer(t, dir, "")
	w := newWorld(t, db, worldOpts{people: 1200, noRunner: true, onLeave: "archive"})
	runOnce := func(what string) store.Run {
		t.Helper()
		run, _, err := db.EnqueueRun(w.ctx, w.exp.ID, store.TriggerManual, false, "reliability")
		if err != nil {
			t.Fatal(err)
		}
		r := w.waitRun(run.ID, 90*time.Second, finished)
		w.wantRunOK(r, what)
		return r
	}
	srv.start()
	runOnce("first run")
	w.verify("after the first run")

	w.mutate()
	inject, now := holdAfter(func(rq *request) bool { return rq.kind == "member-write" || rq.kind == "segment-batch" })
	w.gate.setInject(inject)
	run, _, err := db.EnqueueRun(w.ctx, w.exp.ID, store.TriggerManual, false, "reliability")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, now, "the first change in flight")
	time.Sleep(20 * time.Millisecond)
	srv.kill()
	w.gate.setInject(nil)
	srv.start()
	got := w.waitRun(run.ID, 90*time.Second, finished)
	if got.Attempts < 2 {
		t.Errorf("the change run was not resumed: attempts %d", got.Attempts)
	}
	w.wantRunOK(got, "resumed change run")
	w.verify("after the resumed change run")
	w.rejoin()
	runOnce("rejoin run")
	w.verify("after the rejoin run")
	if r := runOnce("settled run"); r.Counts.WriteCalls != 0 {
		t.Errorf("a run over unchanged data made %d write calls", r.Counts.WriteCalls)
	}
	srv.kill()
	w.extraLogs = srv.log()
	w.assertNoSecrets()
}
