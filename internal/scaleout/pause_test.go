package scaleout

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/store"
)

// arrivals records when each request reached the emulator.
type arrivals struct {
	mu    sync.Mutex
	times []time.Time
	paths []string
}

func (a *arrivals) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.times = append(a.times, time.Now())
		a.paths = append(a.paths, r.Method+" "+r.URL.Path)
		a.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// after lists the requests that arrived after t.
func (a *arrivals) after(t time.Time) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for i, at := range a.times {
		if at.After(t) {
			out = append(out, a.paths[i])
		}
	}
	return out
}

// TestPausedProcessSendsNothing: the process sending a run is frozen
// (SIGSTOP, as a long GC pause, a stalled VM or a partition would) for 13 s
// with a run lease of 5 s. The other process takes the run over and
// finishes it; then the frozen one wakes (SIGCONT). It must send nothing at
// all after waking: its claim lapsed while it slept, so its send gate is
// closed and its database writes are fenced off. Only requests that were
// already on their way when it froze may reach Mailchimp twice.
func TestPausedProcessSendsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	f := newFront()
	arr := &arrivals{}
	w := setup(t, 3000, 1, 1, emulator.Options{LatencyPerMember: 200 * time.Microsecond},
		func(h http.Handler) http.Handler { return arr.wrap(f.wrap(h)) })
	f.gate(w.exports[0].AudienceID)
	common := []string{"--database", w.url, "--max-conns", "2", "--run-lease", "5s"}
	procs := []*proc{
		start(t, "serve", append([]string{"serve", "--listen", "127.0.0.1:0"}, common...)...),
		start(t, "worker", append([]string{"worker"}, common...)...),
	}
	for _, p := range procs {
		p.waitLog(t, "run workers started", 60*time.Second)
	}
	ctx := context.Background()
	run, _, err := w.db.EnqueueRun(ctx, w.exports[0].ID, store.TriggerManual, false, "test")
	if err != nil {
		t.Fatal(err)
	}
	// The first batch was acknowledged and the next requests are held: the
	// run is certainly in the middle of sending.
	select {
	case <-f.held:
	case <-time.After(60 * time.Second):
		t.Fatal("the run never got past its first batch")
	}
	mid, err := w.db.GetRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var paused, other *proc
	for _, p := range procs {
		if strings.Contains(mid.LeaseOwner, fmt.Sprintf("/%d/", p.cmd.Process.Pid)) {
			paused = p
		} else {
			other = p
		}
	}
	if paused == nil || mid.Status != store.RunRunning {
		t.Fatalf("run is %s, owned by %q", mid.Status, mid.LeaseOwner)
	}
	if err := paused.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	close(f.open) // the held requests (in flight when it froze) go through
	t.Logf("froze %s in the middle of run %d", paused.name, run.ID)

	// The other process takes the run over and finishes it.
	done := w.waitRuns(t, []int64{run.ID}, 60*time.Second)[0]
	if done.Status != store.RunSucceeded || done.Attempts < 2 {
		t.Fatalf("run after the takeover: %s, attempts %d, %q", done.Status, done.Attempts, done.Error)
	}
	if wait := 13*time.Second - time.Since(stopped); wait > 0 {
		time.Sleep(wait)
	}
	woke := time.Now()
	if err := paused.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("woke %s %v after freezing it; %s finished the run meanwhile", paused.name, woke.Sub(stopped).Round(time.Millisecond), other.name)
	paused.waitLog(t, "lease lost: stopping the run", 30*time.Second)
	time.Sleep(3 * time.Second) // time to send anything it still would

	// Nothing is left to do for anyone: every request after the wake-up
	// would be the paused process's.
	if late := arr.after(woke); len(late) > 0 {
		t.Errorf("%d requests reached Mailchimp after the paused process woke: %v", len(late), late)
	}
	final, err := w.db.GetRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.Status != store.RunSucceeded || final.Attempts != done.Attempts || final.Counts != done.Counts || !final.FinishedAt.Equal(*done.FinishedAt) {
		t.Errorf("the paused process changed the finished run: %+v, was %+v", final, done)
	}
	w.converged(t, w.exports[0])
}
