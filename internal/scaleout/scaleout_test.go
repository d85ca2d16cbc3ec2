// Package scaleout holds the multi-process tests of segsync on PostgreSQL:
// several real segsync processes (this test binary re-executed as
// `segsync serve` and `segsync worker`) share one database and one emulated
// Mailchimp, which counts the requests in flight per account.
package scaleout

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/cli"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/postgres"
	"github.com/segsync/segsync/internal/store/sqldb"
)

const childEnv = "SEGSYNC_SCALEOUT_CHILD"

// TestMain doubles as the segsync binary: with SEGSYNC_SCALEOUT_CHILD set,
// the arguments are a segsync command line.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Run(ctx, os.Args[1:], cli.StdIO())
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// secretKey is the vault key every process of a test shares.
var secretKey = strings.Repeat("5e", 32)

// proc is one segsync process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *logBuffer
	exited chan struct{}
	killed time.Time
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs `segsync args…` as a child process until the test ends.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, stderr: &logBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), childEnv+"=1", "SEGSYNC_SECRET_KEY="+secretKey, "SEGSYNC_LOG_FORMAT=json")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("--- log of %s (pid %d):\n%s", p.name, p.cmd.Process.Pid, tail(p.stderr.String(), 40))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kill ends the process abruptly, as a crash or a lost machine would.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.killed = time.Now()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// logLine is a line of a child's JSON log.
type logLine struct {
	Time time.Time `json:"time"`
	Msg  string    `json:"msg"`
	Run  int64     `json:"run"`
}

func (p *proc) lines(t *testing.T) []logLine {
	t.Helper()
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits until the process logged a line with msg.
func (p *proc) waitLog(t *testing.T, msg string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.stderr.String(), `"msg":"`+msg) {
		select {
		case <-p.exited:
			t.Fatalf("%s exited before logging %q", p.name, msg)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %v", p.name, msg, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// world is a database with profiles, connections and exports, and the
// emulator the connections point at.
type world struct {
	url     string
	db      *sqldb.DB
	emu     *emulator.Server
	keys    []string
	exports []store.Export
	n       int
}

// setup creates n profiles, a segment of all of them and, per account,
// exportsPerAccount exports of that segment to audiences of their own.
func setup(t *testing.T, n, accounts, exportsPerAccount int, opts emulator.Options) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{url: dbtest.PostgresURL(t), n: n}
	var err error
	if w.db, err = postgres.Open(ctx, w.url, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.db.Close() })
	for range accounts {
		w.keys = append(w.keys, emulator.GenerateKey("us1"))
	}
	opts.APIKeys = w.keys
	w.emu = emulator.StartTest(t, opts)

	var patches []store.ProfilePatch
	for i := range n {
		b, _ := json.Marshal(map[string]any{"email": fmt.Sprintf("p%d@shop.io", i), "first": fmt.Sprintf("F%d", i), "n": i})
		patches = append(patches, store.ProfilePatch{CustomerID: fmt.Sprintf("c%05d", i), Attrs: string(b)})
	}
	if _, err := w.db.UpsertProfiles(ctx, patches); err != nil {
		t.Fatal(err)
	}
	rule, err := segment.Parse([]byte(`{"attribute":"n","op":"gte","value":0}`), segment.KnownSet("n"))
	if err != nil {
		t.Fatal(err)
	}
	seg := store.Segment{Name: "All", Rule: rule}
	if err := w.db.CreateSegment(ctx, &seg); err != nil {
		t.Fatal(err)
	}

	// Connections go through the connection service, so that the
	// credentials are sealed with the key the processes share.
	rec := audit.New(w.db, nil)
	users := auth.NewService(w.db, rec, nil, auth.Options{})
	if _, err := users.EnsureFirstAdmin(ctx, "admin@shop.io", "a long enough password"); err != nil {
		t.Fatal(err)
	}
	u, err := users.UserByEmail(ctx, auth.SystemPrincipal, "admin@shop.io")
	if err != nil {
		t.Fatal(err)
	}
	admin := auth.Principal{UserID: u.ID, Email: u.Email, Role: auth.Admin}
	key, err := connection.ParseKey(secretKey)
	if err != nil {
		t.Fatal(err)
	}
	vault, err := connection.NewVault(key)
	if err != nil {
		t.Fatal(err)
	}
	conns, err := connection.NewService(w.db, connection.Options{Vault: vault, Audit: rec})
	if err != nil {
		t.Fatal(err)
	}
	for a, k := range w.keys {
		c, err := conns.Create(ctx, admin, connection.CreateInput{DisplayName: fmt.Sprintf("Account %d", a), Type: "mailchimp",
			APIKey: k, APIBaseURL: w.emu.URL, PrivacyConsent: true})
		if err != nil {
			t.Fatal(err)
		}
		for e := range exportsPerAccount {
			list, err := w.emu.CreateList(k, fmt.Sprintf("Audience %d.%d", a, e))
			if err != nil {
				t.Fatal(err)
			}
			_ = w.emu.AddMergeField(list, "FNAME", "First name", "text") // new audiences may have it already
			exp := store.Export{Name: fmt.Sprintf("export %d.%d", a, e), ConnectionID: &c.ID, AudienceID: list,
				SegmentIDs: []int64{seg.ID}, Mapping: store.Mapping{Email: "email", FirstName: "first"},
				StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
			if err := w.db.CreateExport(ctx, &exp); err != nil {
				t.Fatal(err)
			}
			w.exports = append(w.exports, exp)
		}
	}
	return w
}

// converged checks that the export's audience holds exactly the n profiles
// as the export defines them.
func (w *world) converged(t *testing.T, e store.Export) {
	t.Helper()
	cs, err := w.emu.Contacts(e.AudienceID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != w.n {
		t.Errorf("%s: audience has %d contacts, want %d", e.Name, len(cs), w.n)
	}
	for _, c := range cs {
		var i int
		if _, err := fmt.Sscanf(c.Email, "p%d@shop.io", &i); err != nil || i < 0 || i >= w.n {
			t.Errorf("%s: unexpected contact %q", e.Name, c.Email)
			continue
		}
		if c.Status != "subscribed" || len(c.Tags) != 1 || c.Tags[0] != "All" || c.MergeFields["FNAME"] != fmt.Sprintf("F%d", i) {
			t.Errorf("%s: contact %+v", e.Name, c)
		}
	}
}

// waitRuns waits until every run is finished and returns them.
func (w *world) waitRuns(t *testing.T, ids []int64, timeout time.Duration) []store.Run {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var runs []store.Run
		done := true
		for _, id := range ids {
			r, err := w.db.GetRun(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			runs = append(runs, r)
			done = done && r.FinishedAt != nil
		}
		if done {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs not finished after %v: %+v", timeout, runs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// span is the time one process executed a run.
type span struct {
	proc       string
	start, end time.Time
}

// spans reads from the processes' logs when each of them executed which run;
// a run still open in a killed process ends at the kill.
func spans(t *testing.T, procs []*proc) map[int64][]span {
	t.Helper()
	out := map[int64][]span{}
	for _, p := range procs {
		open := map[int64]time.Time{}
		for _, l := range p.lines(t) {
			switch {
			case l.Run == 0:
			case l.Msg == "run started" || l.Msg == "resuming run":
				open[l.Run] = l.Time
			case strings.HasPrefix(l.Msg, "run finished") || strings.HasPrefix(l.Msg, "run abandoned") || strings.HasPrefix(l.Msg, "run interrupted"):
				if s, ok := open[l.Run]; ok {
					out[l.Run] = append(out[l.Run], span{p.name, s, l.Time})
					delete(open, l.Run)
				}
			}
		}
		for run, s := range open {
			end := p.killed
			if end.IsZero() {
				t.Errorf("%s: run %d started but never ended", p.name, run)
				continue
			}
			out[run] = append(out[run], span{p.name, s, end})
		}
	}
	return out
}

// TestThreeProcesses: one serve and two worker processes, eight exports over
// two accounts triggered at once, one process killed in the middle of a run.
// The connection limit holds across the processes, another process finishes
// the killed one's run, each run is executed by one process at a time, and
// every audience ends up exactly as its export defines it.
func TestThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const maxConns = 3
	w := setup(t, 1500, 2, 4, emulator.Options{LatencyPerMember: time.Millisecond, Latency: 2 * time.Millisecond})
	common := []string{"--database", w.url, "--max-conns", fmt.Sprint(maxConns), "--run-lease", "5s"}
	procs := []*proc{
		start(t, "serve", append([]string{"serve", "--listen", "127.0.0.1:0"}, common...)...),
		start(t, "worker-1", append([]string{"worker"}, common...)...),
		start(t, "worker-2", append([]string{"worker"}, common...)...),
	}
	for _, p := range procs {
		p.waitLog(t, "run workers started", 60*time.Second)
	}

	ctx := context.Background()
	var ids []int64
	for _, e := range w.exports {
		r, created, err := w.db.EnqueueRun(ctx, e.ID, store.TriggerManual, false, "test")
		if err != nil || !created {
			t.Fatalf("queueing %s: %v (created %v)", e.Name, err, created)
		}
		ids = append(ids, r.ID)
	}

	// Kill the process of a run that has made progress but is not done.
	var victim *proc
	var victimRun int64
	deadline := time.Now().Add(60 * time.Second)
	for victim == nil {
		if time.Now().After(deadline) {
			t.Fatal("no run in progress to interrupt")
		}
		for _, id := range ids {
			r, err := w.db.GetRun(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != store.RunRunning || r.Progress.Done == 0 || r.Progress.Done >= r.Progress.Total {
				continue
			}
			for _, p := range procs {
				if strings.Contains(r.LeaseOwner, fmt.Sprintf("/%d/", p.cmd.Process.Pid)) {
					victim, victimRun = p, id
				}
			}
			if victim != nil {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	victim.kill(t)
	t.Logf("killed %s in the middle of run %d", victim.name, victimRun)
	// Another process finishes the run within 60 s of the kill.
	resumed := w.waitRuns(t, []int64{victimRun}, 60*time.Second)[0]
	if resumed.Attempts < 2 || strings.Contains(resumed.LeaseOwner, fmt.Sprintf("/%d/", victim.cmd.Process.Pid)) {
		t.Errorf("interrupted run: attempts %d, owner %q", resumed.Attempts, resumed.LeaseOwner)
	}

	for _, r := range w.waitRuns(t, ids, 90*time.Second) {
		if r.Status != store.RunSucceeded {
			t.Errorf("run %d of export %d: %s %q", r.ID, r.ExportID, r.Status, r.Error)
		}
	}
	for _, e := range w.exports {
		w.converged(t, e)
	}
	for a, k := range w.keys {
		got := w.emu.MaxConcurrent(k)
		t.Logf("account %d: at most %d requests in flight", a, got)
		if got > maxConns {
			t.Errorf("account %d: %d requests in flight at once, limit %d across processes", a, got, maxConns)
		}
	}

	// Each run was executed by one process at a time.
	all := spans(t, procs)
	for _, id := range ids {
		ss := all[id]
		if len(ss) == 0 {
			t.Errorf("run %d: no process logged executing it", id)
		}
		sort.Slice(ss, func(i, j int) bool { return ss[i].start.Before(ss[j].start) })
		for i := 1; i < len(ss); i++ {
			if ss[i].start.Before(ss[i-1].end) {
				t.Errorf("run %d: executed by %s from %v and by %s from %v until %v at the same time",
					id, ss[i].proc, ss[i].start, ss[i-1].proc, ss[i-1].start, ss[i-1].end)
			}
		}
		if id == victimRun && len(ss) < 2 {
			t.Errorf("run %d: interrupted but executed only by %v", id, ss)
		}
	}
}

// TestScheduleFiresOnce: schedules that are due while three processes start
// (and so evaluate them at the same moment) are queued once each, not once
// per process.
func TestScheduleFiresOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	w := setup(t, 20, 2, 4, emulator.Options{})
	ctx := context.Background()
	// Due since last New Year, and not again before the next.
	for i := range w.exports {
		e := &w.exports[i]
		e.Schedule = "0 0 1 1 *"
		if err := w.db.UpdateExport(ctx, e); err != nil {
			t.Fatal(err)
		}
		if err := w.db.SetLastScheduled(ctx, e.ID, time.Now().AddDate(-1, -1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	common := []string{"--database", w.url, "--log-level", "debug"}
	procs := []*proc{
		start(t, "serve", append([]string{"serve", "--listen", "127.0.0.1:0"}, common...)...),
		start(t, "worker-1", append([]string{"worker"}, common...)...),
		start(t, "worker-2", append([]string{"worker"}, common...)...),
	}
	// Every process has evaluated the schedules at least once.
	for _, p := range procs {
		p.waitLog(t, "schedules checked", 60*time.Second)
	}
	for _, e := range w.exports {
		runs, err := w.db.ListRuns(ctx, e.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 1 || runs[0].Trigger != store.TriggerSchedule {
			t.Errorf("%s: %d runs, want one scheduled run: %+v", e.Name, len(runs), runs)
			continue
		}
		if r := w.waitRuns(t, []int64{runs[0].ID}, 60*time.Second)[0]; r.Status != store.RunSucceeded {
			t.Errorf("%s: scheduled run %s %q", e.Name, r.Status, r.Error)
		}
		w.converged(t, e)
	}
}
