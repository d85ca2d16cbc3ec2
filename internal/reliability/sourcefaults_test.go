package reliability

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/jobs"
	"github.com/segsync/segsync/internal/source"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/postgres"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/store/sqlite"
)

// slowCSV serves a CSV source. While held, it writes the first part of the
// file, says so on streamed, and then blocks until the client goes away: a
// pull that is half-way when the test kills its process.
type slowCSV struct {
	mu       sync.Mutex
	body     string
	holdAt   int // bytes written before blocking; 0: serve it all
	streamed chan struct{}
	once     sync.Once
	requests atomic.Int32
	release  chan struct{} // closed: a held request finishes the file
	*httptest.Server
}

func newSlowCSV(t *testing.T) *slowCSV {
	s := &slowCSV{streamed: make(chan struct{}), release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		body, holdAt := s.body, s.holdAt
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/csv")
		if holdAt == 0 {
			fmt.Fprint(w, body)
			return
		}
		fmt.Fprint(w, body[:holdAt])
		w.(http.Flusher).Flush()
		s.once.Do(func() { close(s.streamed) })
		select {
		case <-r.Context().Done(): // the puller died
		case <-s.release:
			fmt.Fprint(w, body[holdAt:])
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *slowCSV) set(body string, holdAt int) {
	s.mu.Lock()
	s.body, s.holdAt = body, holdAt
	s.mu.Unlock()
}

// loyaltyCSV is n customers with a tier and points; version changes values.
func loyaltyCSV(n int, tier string) string {
	var b strings.Builder
	b.WriteString("id,tier,points\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "c%05d,%s,%d\n", i, tier, i)
	}
	return b.String()
}

// TestServeKilledMidPull kills `segsync serve` with SIGKILL while a full
// pull is half-way (rows staged, the source still streaming): no profile
// changes and nothing is deleted; the restarted process claims the pull
// again when its lease expired, starts it from scratch and completes it.
func TestServeKilledMidPull(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		db, err := sqlite.Open(context.Background(), dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		testServeKilledMidPull(t, db, dir, newServer(t, dir, ""))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		url := dbtest.PostgresURL(t)
		db, err := postgres.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dir := t.TempDir()
		testServeKilledMidPull(t, db, dir, newServer(t, dir, url))
	})
}

func newSourceService(t *testing.T, db *sqldb.DB) *source.Service {
	t.Helper()
	key, err := connection.ParseKey(vaultKey)
	if err != nil {
		t.Fatal(err)
	}
	vault, err := connection.NewVault(key)
	if err != nil {
		t.Fatal(err)
	}
	return source.NewService(db, vault, audit.New(db, nil), nil)
}

func testServeKilledMidPull(t *testing.T, db *sqldb.DB, dataDir string, srv *server) {
	ctx := context.Background()
	const n = 20000
	csv := newSlowCSV(t)
	csv.set(loyaltyCSV(n, "silver"), 0)
	svc := newSourceService(t, db)
	src, err := svc.Create(ctx, audit.System, source.Input{Name: "loyalty", Kind: "http", Key: "id", Mode: "full",
		Schedule: "off", URL: csv.URL + "/loyalty.csv"})
	if err != nil {
		t.Fatal(err)
	}
	// The first pull, in this process: every profile silver.
	first, err := svc.Pull(ctx, audit.System, src.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	wk := &source.Worker{Service: svc, Store: db, Lease: 5 * time.Second}
	if ok, err := wk.RunOne(ctx); !ok || err != nil {
		t.Fatalf("first pull: %v %v", ok, err)
	}
	if p, _ := db.GetPull(ctx, first.ID); p.Status != store.RunSucceeded {
		t.Fatalf("first pull: %+v", p)
	}
	before := profileDigest(t, db)
	if len(before) != n {
		t.Fatalf("%d profiles after the first pull, want %d", len(before), n)
	}

	// The second pull changes every tier and drops a quarter of the
	// customers; it is killed half-way through the file.
	next := loyaltyCSV(n*3/4, "gold")
	csv.set(next, len(next)/2)
	pull, err := svc.Pull(ctx, audit.System, src.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	srv.start()
	waitFor(t, csv.streamed, "the pull streaming")
	deadline := time.Now().Add(30 * time.Second)
	for staged(t, dataDir) < 64<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("no row was staged; serve log:\n%s", srv.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.kill()
	mid, err := db.GetPull(ctx, pull.ID)
	if err != nil {
		t.Fatal(err)
	}
	if mid.Status != store.RunRunning {
		t.Fatalf("after the kill the pull is %s; the kill came too late", mid.Status)
	}
	t.Logf("killed with %d bytes staged", staged(t, dataDir))
	if after := profileDigest(t, db); !sameDigest(before, after) {
		t.Fatalf("the killed pull changed profiles: %d before, %d after", len(before), len(after))
	}

	// Restarted, the process resumes the pull after its lease (3 s) and
	// completes it from scratch.
	csv.set(next, 0)
	srv.start()
	var got store.Pull
	for deadline := time.Now().Add(90 * time.Second); ; {
		got, err = db.GetPull(ctx, pull.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != store.RunQueued && got.Status != store.RunRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pull never finished: %+v; serve log:\n%s", got, srv.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The process removes the stage once the pull ended (the killed
	// one's when it started again).
	for deadline := time.Now().Add(10 * time.Second); staged(t, dataDir) != 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	srv.kill()
	t.Logf("after the restart: %s, attempt %d, counts %+v", got.Status, got.Attempts, got.Counts)
	if got.Status != store.RunSucceeded || got.Attempts < 2 {
		t.Fatalf("the resumed pull: %s attempts %d error %q", got.Status, got.Attempts, got.Error)
	}
	if got.Counts.Received != n*3/4 || got.Counts.Updated != n*3/4 || got.Counts.Removed != n/4 {
		t.Errorf("counts of the completed pull: %+v", got.Counts)
	}
	after := profileDigest(t, db)
	if len(after) != n*3/4 {
		t.Errorf("%d profiles after the completed pull, want %d", len(after), n*3/4)
	}
	for id, attrs := range after {
		if !strings.Contains(attrs, `"tier":"gold"`) {
			t.Fatalf("profile %s after the completed pull: %s", id, attrs)
		}
	}
	if _, err := db.GetProfile(ctx, fmt.Sprintf("c%05d", n)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a customer the source no longer has is still there: %v", err)
	}
	if n := staged(t, dataDir); n != 0 {
		t.Errorf("stages were left behind: %d bytes", n)
	}
}

// profileDigest maps every customer id to its attributes and update time.
func profileDigest(t *testing.T, db *sqldb.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	cursor := ""
	for {
		page, err := db.ListProfiles(context.Background(), 1000, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Profiles {
			out[p.CustomerID] = string(p.Attrs) + "@" + p.UpdatedAt.String()
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

func sameDigest(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// staged is the size of the pull stages in a data directory (package
// source/stage): a process stages a pull in a scratch file there.
func staged(t *testing.T, dataDir string) int64 {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dataDir, "segsync-stage-*.db"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestTwoServesOnePull: two `segsync serve` processes share a PostgreSQL
// database. A pull of a source runs in exactly one of them (the source is
// read once); asking for another pull meanwhile queues one (as for runs:
// one queued, one running), which starts only after the first ended.
func TestTwoServesOnePull(t *testing.T) {
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
	ctx := context.Background()
	csv := newSlowCSV(t)
	body := loyaltyCSV(5000, "silver")
	csv.set(body, len(body)/2)
	svc := newSourceService(t, db)
	src, err := svc.Create(ctx, audit.System, source.Input{Name: "loyalty", Kind: "http", Key: "id", Mode: "full",
		Schedule: "off", URL: csv.URL + "/loyalty.csv"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := newServer(t, t.TempDir(), url), newServer(t, t.TempDir(), url)
	a.start()
	b.start()
	pull, err := svc.Pull(ctx, audit.System, src.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, csv.streamed, "the pull streaming")
	// Both processes poll for work every second; give the idle one time
	// to find (and not take) the running pull.
	time.Sleep(3 * time.Second)
	again, err := svc.Pull(ctx, audit.System, src.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == pull.ID || again.Status != store.RunQueued {
		t.Errorf("asking again while pull %d runs: %+v", pull.ID, again)
	}
	if third, err := svc.Pull(ctx, audit.System, src.ID, false); err != nil || third.ID != again.ID {
		t.Errorf("a third request did not join the queued pull %d: %+v %v", again.ID, third, err)
	}
	if n := csv.requests.Load(); n != 1 {
		t.Errorf("the source was read %d times while one pull ran", n)
	}
	if got, _ := db.GetPull(ctx, again.ID); got.Status != store.RunQueued {
		t.Errorf("the second pull started while the first ran: %s", got.Status)
	}
	csv.set(body, 0)   // the second pull reads the whole file at once
	close(csv.release) // the first one gets the rest of its file
	var got store.Pull
	for deadline := time.Now().Add(60 * time.Second); ; {
		if got, err = db.GetPull(ctx, pull.ID); err != nil {
			t.Fatal(err)
		}
		if got.Status != store.RunQueued && got.Status != store.RunRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pull never finished: %+v\nlogs:\n%s\n%s", got, a.log(), b.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got.Status != store.RunSucceeded || got.Attempts != 1 || got.Counts.New != 5000 {
		t.Errorf("the first pull: %s, claimed %d times, counts %+v, error %q", got.Status, got.Attempts, got.Counts, got.Error)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		if got, err = db.GetPull(ctx, again.ID); err != nil {
			t.Fatal(err)
		}
		if got.Status != store.RunQueued && got.Status != store.RunRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second pull never finished: %+v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.kill()
	b.kill()
	t.Logf("second pull %s after %d attempt(s), %d source reads in all, counts %+v", got.Status, got.Attempts, csv.requests.Load(), got.Counts)
	if got.Status != store.RunSucceeded || got.Attempts != 1 || got.Counts.Unchanged != 5000 {
		t.Errorf("the second pull: %s, claimed %d times, counts %+v, error %q", got.Status, got.Attempts, got.Counts, got.Error)
	}
	if n := csv.requests.Load(); n != 2 {
		t.Errorf("the source was read %d times by two pulls", n)
	}
	if pulls, err := db.ListPulls(ctx, src.ID, 10); err != nil || len(pulls) != 2 {
		t.Errorf("%d pulls of the source, want 2 (%v)", len(pulls), err)
	}
}

// TestServeRefreshOrder runs the system refresh end to end in a `segsync
// serve` process against the emulator: an export scheduled "refresh" and
// two sources scheduled "refresh", one slow and one broken (HTTP 500). The
// export's run is queued only after both pulls ended; the broken pull does
// not stop it, and the refresh names it.
func TestServeRefreshOrder(t *testing.T) {
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
	w := newWorld(t, db, worldOpts{people: 300, noRunner: true})
	ctx := w.ctx
	if _, err := db.W.ExecContext(ctx, `UPDATE exports SET schedule = 'refresh' WHERE id = ?`, w.exp.ID); err != nil {
		t.Fatal(err)
	}
	csv := newSlowCSV(t)
	body := loyaltyCSV(2000, "gold")
	csv.set(body, len(body)/2)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the CRM is down", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	svc := newSourceService(t, db)
	svc.SetRunQueuer(&jobs.Runner{Store: db})
	for name, url := range map[string]string{"loyalty": csv.URL + "/loyalty.csv", "crm": broken.URL + "/crm.csv"} {
		if _, err := svc.Create(ctx, audit.System, source.Input{Name: name, Kind: "http", Key: "id", Mode: "full", Schedule: "refresh", URL: url}); err != nil {
			t.Fatal(err)
		}
	}
	ref, err := svc.StartRefresh(ctx, audit.System, store.TriggerManual)
	if err != nil {
		t.Fatal(err)
	}
	if len(ref.Pulls) != 2 || len(ref.Runs) != 0 {
		t.Fatalf("the new refresh: %d pulls, %d runs", len(ref.Pulls), len(ref.Runs))
	}
	srv := newServer(t, dir, "")
	srv.start()
	waitFor(t, csv.streamed, "the loyalty pull streaming")
	// The broken pull fails at once; the slow one is held. The serve
	// process looks at its refreshes every few seconds: long enough.
	time.Sleep(7 * time.Second)
	if runs, err := db.ListRuns(ctx, w.exp.ID, 10); err != nil || len(runs) != 0 {
		t.Fatalf("the export was queued while a pull of the refresh was still running: %d runs (%v)", len(runs), err)
	}
	close(csv.release)
	for deadline := time.Now().Add(90 * time.Second); ; {
		if ref, err = svc.GetRefresh(ctx, ref.ID); err != nil {
			t.Fatal(err)
		}
		if ref.FinishedAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refresh never finished: %+v; serve log:\n%s", ref.Refresh, srv.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	srv.kill()
	t.Logf("refresh %s: %q; pulls %d, runs %d", ref.Status, ref.Error, len(ref.Pulls), len(ref.Runs))
	var loyaltyEnded time.Time
	for _, p := range ref.Pulls {
		if p.Status == store.RunSucceeded && p.FinishedAt != nil {
			loyaltyEnded = *p.FinishedAt
		}
	}
	if loyaltyEnded.IsZero() {
		t.Fatalf("the loyalty pull did not succeed: %+v", ref.Pulls)
	}
	if len(ref.Runs) != 1 {
		t.Fatalf("the refresh ran %d exports, want 1", len(ref.Runs))
	}
	run := ref.Runs[0]
	if run.CreatedAt.Before(loyaltyEnded) {
		t.Errorf("the run was queued at %v, before the pull ended at %v", run.CreatedAt, loyaltyEnded)
	}
	w.wantRunOK(run, "the refresh's run")
	if ref.Status != source.RefreshPartiallySucceeded || !strings.Contains(ref.Error, `"crm"`) {
		t.Errorf("the refresh does not say the crm pull failed: %s %q", ref.Status, ref.Error)
	}
}
