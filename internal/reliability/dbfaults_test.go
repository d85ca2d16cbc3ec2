package reliability

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/postgres"
	"github.com/segsync/segsync/internal/store/sqlite"
)

// lockEnv names a SQLite file that the test binary, started with it set,
// write-locks (BEGIN IMMEDIATE) until its stdin closes: another process
// holding the database's write lock.
const lockEnv = "SEGSYNC_RELIABILITY_LOCK"

func lockMain(path string) int {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	conn, err := db.Conn(context.Background())
	if err == nil {
		_, err = conn.ExecContext(context.Background(), "BEGIN IMMEDIATE")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
	return 0
}

// pauseAt holds the n-th batch subscribe, and every request after it,
// until release is called; paused is closed when the hold began.
func pauseAt(n int) (inject func(rq *request) action, paused <-chan struct{}, release func()) {
	p := make(chan struct{})
	hold := make(chan struct{})
	fired := false
	inject = func(rq *request) action {
		if !fired && rq.kind == "batch" && rq.n == n {
			fired = true
			close(p)
		}
		select {
		case <-hold:
			return action{}
		default:
		}
		if fired {
			return action{name: "paused", hold: hold}
		}
		return action{}
	}
	return inject, p, func() { close(hold) }
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s never happened", what)
	}
}

// TestPostgresRestartMidRun terminates every backend of the run's
// connection pool in the middle of sending, which is what a database
// restart looks like to the client (the machine's shared server is not
// restarted). The run either goes on or fails with a message naming the
// database; a later run converges.
func TestPostgresRestartMidRun(t *testing.T) {
	t.Parallel()
	base := dbtest.PostgresURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	app := "segsync_reliability_" + hex.EncodeToString(b[:])
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	db, err := postgres.Open(context.Background(), u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	admin, err := sql.Open("pgx", os.Getenv("SEGSYNC_TEST_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })

	w := newWorld(t, db, worldOpts{people: 1500, batch: 100, concurrency: 2})
	inject, paused, release := pauseAt(4)
	w.gate.setInject(inject)
	run, _, err := w.runner.Enqueue(w.ctx, w.exp.ID, store.TriggerManual, false, "reliability")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, paused, "the fourth batch")
	time.Sleep(300 * time.Millisecond) // acknowledgements of the first batches are being written
	// The first termination hits the pool as it is; the following ones,
	// for a second and a half, every connection the pool opens meanwhile:
	// a restart with downtime.
	release()
	var killed int
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		var n int
		if err := admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		killed += n
	}
	if killed == 0 {
		t.Fatal("no backend of the run's pool was found to terminate")
	}
	got := w.waitRun(run.ID, 90*time.Second, finished)
	t.Logf("terminated %d backends mid-run; the run ended %s: %q", killed, got.Status, got.Error)
	if got.Status == store.RunFailed && got.Error == "" {
		t.Error("the run failed without a message")
	}
	w.gate.setInject(nil)
	if got.Status == store.RunFailed {
		w.wantRunOK(w.run(60*time.Second), "run after the restart")
	} else {
		w.wantRunOK(got, "run through the restart")
	}
	w.verify("after the database restart")
	w.settled()
	w.assertNoSecrets()
}

// TestSQLiteLockedByAnotherProcess: a process holds the write lock. Shorter
// than the busy timeout, the run waits and succeeds; longer, it fails
// with a message saying the database is locked, and a later run converges.
func TestSQLiteLockedByAnotherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and waits out the busy timeout")
	}
	t.Parallel()
	for _, tt := range []struct {
		name string
		hold time.Duration
		fail bool // the run may fail
	}{
		{"shorter than the busy timeout", 2 * time.Second, false},
		{"longer than the busy timeout", 12 * time.Second, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			db, err := sqlite.Open(context.Background(), dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			w := newWorld(t, db, worldOpts{people: 1500, batch: 100, concurrency: 2})
			inject, paused, release := pauseAt(4)
			w.gate.setInject(inject)
			run, _, err := w.runner.Enqueue(w.ctx, w.exp.ID, store.TriggerManual, false, "reliability")
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, paused, "the fourth batch")

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), lockEnv+"="+filepath.Join(dir, sqlite.FileName))
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			if strings.TrimSpace(line) != "locked" {
				t.Fatalf("the locking process said %q", line)
			}
			release()
			time.Sleep(tt.hold)
			stdin.Close() // the other process lets go
			_ = cmd.Wait()

			got := w.waitRun(run.ID, 90*time.Second, finished)
			t.Logf("write lock held %v: run ended %s %q", tt.hold, got.Status, got.Error)
			w.gate.setInject(nil)
			switch {
			case got.Status == store.RunFailed && strings.Contains(got.Error, "locked"):
				w.wantRunOK(w.run(60*time.Second), "run after the lock")
			case got.Status == store.RunFailed:
				t.Fatalf("run under a lock failed with %q, which does not say the database was locked", got.Error)
			case tt.fail:
				// Resumed after its lease expired during the lock: waiting is
				// also a correct outcome.
				t.Logf("the run outlived the lock (attempts %d)", got.Attempts)
				w.wantRunOK(got, "run that outlived the lock")
			default:
				w.wantRunOK(got, "run that waited for the lock")
			}
			w.verify("after the lock")
			w.settled()
			w.assertNoSecrets()
		})
	}
}

// TestSQLiteDiskFull simulates a full disk by capping the database's size
// (PRAGMA max_page_count on the store's one writer connection): SQLite then
// fails writes exactly as on a full disk (SQLITE_FULL). No tmpfs or real
// filling of the machine's disk is involved. The run fails with a message
// saying the disk is full; once there is room, a later run converges.
func TestSQLiteDiskFull(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	w := newWorld(t, db, worldOpts{people: 3000, batch: 100, concurrency: 2, patience: 500 * time.Millisecond})
	inject, paused, release := pauseAt(4)
	w.gate.setInject(inject)
	run, _, err := w.runner.Enqueue(w.ctx, w.exp.ID, store.TriggerManual, false, "reliability")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, paused, "the fourth batch")
	var pages int64
	if err := db.W.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.W.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages+2)); err != nil {
		t.Fatal(err)
	}
	release()
	got := w.waitRun(run.ID, 90*time.Second, finished)
	t.Logf("disk full mid-run: run ended %s %q", got.Status, got.Error)
	if got.Status != store.RunFailed || !strings.Contains(got.Error, "full") {
		t.Fatalf("run on a full disk ended %s with %q; want failed, saying the disk is full", got.Status, got.Error)
	}
	if _, err := db.W.Exec("PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	w.gate.setInject(nil)
	w.wantRunOK(w.run(60*time.Second), "run once there is room")
	w.verify("after the disk had room again")
	w.settled()
	w.assertNoSecrets()
}
