package reliability

import (
	"net/http"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// TestEmulatorFaults runs the standard scenario under each kind of fault
// Mailchimp shows on a bad day. Each ends with the exact desired audience,
// the protected contacts as they were, and no key in any output.
func TestEmulatorFaults(t *testing.T) {
	t.Parallel()
	const retryAfterBody = `{"type":"https://mailchimp.com/developer/marketing/docs/errors/","title":"Too Many Requests","status":429,"detail":"You have exceeded the limit of 10 simultaneous connections.","instance":""}`
	tests := []struct {
		name   string
		opts   worldOpts
		faults func(rq *request) action
	}{
		{
			// The emulator's own faults: 500, 503 and dropped connections in
			// equal shares, half of them after the change was applied.
			name: "ten percent of calls fail",
			opts: worldOpts{emulator: emulator.Options{FailRate: 0.1, Seed: 7}},
		},
		{
			// Someone else uses the account too: the emulator's own limit
			// (2 connections) is below the engine's concurrency (4).
			name: "the account's connection limit is taken by others",
			opts: worldOpts{emulator: emulator.Options{MaxConns: 2}},
		},
		{
			// Leavers are archived (the export created them) while calls fail.
			name: "on_leave archive under ten percent failures",
			opts: worldOpts{onLeave: "archive", emulator: emulator.Options{FailRate: 0.1, Seed: 11}},
		},
		{
			name: "on_leave unsubscribe under ten percent failures",
			opts: worldOpts{onLeave: "unsubscribe", emulator: emulator.Options{FailRate: 0.1, Seed: 12}},
		},
		{
			name: "429 bursts with Retry-After",
			faults: func(rq *request) action {
				if rq.n%15 < 3 { // bursts of three refusals in every fifteen calls of a kind
					return action{name: "429+retry-after", status: http.StatusTooManyRequests,
						header: map[string]string{"Retry-After": "1"}, body: retryAfterBody}
				}
				return action{}
			},
		},
		{
			name: "429 bursts without Retry-After",
			faults: func(rq *request) action {
				if rq.n%5 < 3 {
					return action{name: "429", status: http.StatusTooManyRequests, body: retryAfterBody}
				}
				return action{}
			},
		},
		{
			// Mailchimp's other overload signals: no JSON body at all.
			name: "429 and 403 without a body",
			faults: func(rq *request) action {
				switch rq.n % 6 {
				case 1:
					return action{name: "429 bare", status: http.StatusTooManyRequests}
				case 3:
					return action{name: "403 bare", status: http.StatusForbidden, body: "<html>Forbidden</html>"}
				}
				return action{}
			},
		},
		{
			// Answers slower than the client's timeout; half of them after
			// the change was made, so the engine cannot know it was.
			name: "answers slower than the client timeout",
			opts: worldOpts{timeout: 300 * time.Millisecond},
			faults: func(rq *request) action {
				if rq.n%4 == 2 {
					return action{name: "slow", delay: 700 * time.Millisecond, after: rq.n%8 == 2}
				}
				return action{}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, dbtest.SQLite(t), tt.opts)
			w.scenario(tt.faults)
			t.Logf("injected by the gate: %v", w.gate.injected())
		})
	}
}

// TestBatchWithMixedMemberErrors is a first run whose batches mix new
// contacts with every per-member error: existing contacts (adopted or
// protected), a fake address, a forgotten one, and the same address twice.
func TestBatchWithMixedMemberErrors(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db, worldOpts{people: 300})
		w.scenario(nil)
	})
}

// TestEverythingAtOnce combines the faults on both databases: 10% server
// errors and dropped connections, bodiless 429s, answers slower than the
// timeout, with on_leave archive.
func TestEverythingAtOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db, worldOpts{onLeave: "archive", timeout: 300 * time.Millisecond,
			emulator: emulator.Options{FailRate: 0.1, Seed: 21}})
		w.scenario(func(rq *request) action {
			switch {
			case rq.n%11 == 3:
				return action{name: "429 bare", status: http.StatusTooManyRequests}
			case rq.n%13 == 5:
				return action{name: "slow", delay: 600 * time.Millisecond, after: rq.n%2 == 1}
			}
			return action{}
		})
		t.Logf("injected by the gate: %v", w.gate.injected())
	})
}

// TestCancelledMidRun cancels a run while batches are in flight; the run
// says it was cancelled, and the next runs converge as if nothing happened.
func TestCancelledMidRun(t *testing.T) {
	t.Parallel()
	w := newWorld(t, dbtest.SQLite(t), worldOpts{batch: 50, concurrency: 2})
	inject, paused, release := pauseAt(3)
	w.gate.setInject(inject)
	run, _, err := w.runner.Enqueue(w.ctx, w.exp.ID, store.TriggerManual, false, "reliability")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, paused, "the third batch")
	if _, err := w.runner.Cancel(w.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	// The held requests end when the run stops (a heartbeat sees the
	// request); only then does Mailchimp answer again.
	got := w.waitRun(run.ID, 60*time.Second, finished)
	release()
	if got.Status != store.RunCancelled {
		t.Fatalf("cancelled run ended %s (%q)", got.Status, got.Error)
	}
	t.Logf("cancelled with %d of %d done", got.Progress.Done, got.Progress.Total)
	w.scenario(nil)
}
