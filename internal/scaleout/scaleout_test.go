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
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
	url     string // the database
	db      *sqldb.DB
	emu     *emulator.Emulator
	apiURL  string // the emulator's API base
	keys    []string
	exports []store.Export
	n       int
}

// setup creates n profiles, a segment of all of them and, per account,
// exportsPerAccount exports of that segment to audiences of their own. The
// emulator is served behind front, when given.
func setup(t *testing.T, n, accounts, exportsPerAccount int, opts emulator.Options, front func(http.Handler) http.Handler) *world {
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
	w.emu = emulator.New(opts)
	h := w.emu.Handler()
	if front != nil {
		h = front(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	w.apiURL = srv.URL + "/3.0"

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
			APIKey: k, APIBaseURL: w.apiURL, PrivacyConsent: true})
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

// front stands between the processes and the emulator. It counts the
// requests in flight per account as the processes see them, and once the
// first batch of one audience was acknowledged it holds every further
// request to that audience until opened: that audience's run is then
// certainly in the middle.
type front struct {
	mu       sync.Mutex
	gated    string // audience id
	inflight map[string]int
	peak     map[string]int // by API key

	acked    atomic.Bool
	held     chan struct{} // closed when a request is first held
	heldOnce sync.Once
	open     chan struct{}
}

func newFront() *front {
	return &front{inflight: map[string]int{}, peak: map[string]int{}, held: make(chan struct{}), open: make(chan struct{})}
}

func (f *front) gate(audience string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gated = audience
}

func (f *front) maxInFlight(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peak[key]
}

func (f *front) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, key, _ := r.BasicAuth()
		f.mu.Lock()
		f.inflight[key]++
		f.peak[key] = max(f.peak[key], f.inflight[key])
		gated := f.gated
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.inflight[key]--
			f.mu.Unlock()
		}()
		list := "/3.0/lists/" + gated
		if gated == "" || (r.URL.Path != list && !strings.HasPrefix(r.URL.Path, list+"/")) {
			next.ServeHTTP(w, r)
			return
		}
		if f.acked.Load() {
			f.heldOnce.Do(func() { close(f.held) })
			select {
			case <-f.open:
			case <-r.Context().Done(): // the caller died
				return
			}
		}
		next.ServeHTTP(w, r)
		if r.Method == http.MethodPost && r.URL.Path == list {
			f.acked.Store(true) // a batch subscribe was answered
		}
	})
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
	f := newFront()
	w := setup(t, 1500, 2, 4, emulator.Options{LatencyPerMember: time.Millisecond, Latency: 2 * time.Millisecond}, f.wrap)
	f.gate(w.exports[0].AudienceID)
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

	// The first export's run got its first batch acknowledged and is held:
	// kill the process executing it.
	select {
	case <-f.held:
	case <-time.After(60 * time.Second):
		t.Fatal("the first export's run never got past its first batch")
	}
	run, err := w.db.GetRun(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	var victim *proc
	for _, p := range procs {
		if strings.Contains(run.LeaseOwner, fmt.Sprintf("/%d/", p.cmd.Process.Pid)) {
			victim = p
		}
	}
	if run.Status != store.RunRunning || victim == nil {
		t.Fatalf("held run is %s, owned by %q", run.Status, run.LeaseOwner)
	}
	victim.kill(t)
	close(f.open)
	t.Logf("killed %s in the middle of run %d", victim.name, run.ID)

	// Another process finishes the run within 60 s of the kill.
	resumed := w.waitRuns(t, []int64{run.ID}, 60*time.Second)[0]
	t.Logf("run %d finished %v after the kill", run.ID, time.Since(victim.killed).Round(time.Millisecond))
	if resumed.Attempts < 2 {
		t.Errorf("interrupted run: attempts %d", resumed.Attempts)
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
		seen, served := f.maxInFlight(k), w.emu.MaxConcurrent(k)
		t.Logf("account %d: at most %d requests in flight (%d reached the emulator at once)", a, seen, served)
		if seen > maxConns || served > maxConns {
			t.Errorf("account %d: %d requests in flight at once, limit %d across processes", a, seen, maxConns)
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
		if id == run.ID && (len(ss) < 2 || ss[0].proc != victim.name) {
			t.Errorf("run %d: interrupted in %s but executed by %v", id, victim.name, ss)
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
	w := setup(t, 20, 2, 4, emulator.Options{}, nil)
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
