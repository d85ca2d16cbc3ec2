package source

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// fileServer serves a CSV whose body a test can change, behind a token.
type fileServer struct {
	mu   sync.Mutex
	body string
	*httptest.Server
}

func newFileServer(t *testing.T, body string) *fileServer {
	f := &fileServer{body: body}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret-token" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "text/csv")
		fmt.Fprint(w, f.body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fileServer) set(body string) {
	f.mu.Lock()
	f.body = body
	f.mu.Unlock()
}

type fakeRuns struct {
	mu    sync.Mutex
	calls int
}

func (f *fakeRuns) Refresh(ctx context.Context, trigger, by string) ([]store.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return nil, nil
}

type world struct {
	t    *testing.T
	db   *sqldb.DB
	svc  *Service
	w    *Worker
	ctx  context.Context
	runs *fakeRuns
}

func newWorld(t *testing.T, db *sqldb.DB) *world {
	vault, err := connection.NewVault(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	svc := NewService(db, vault, audit.New(db, nil), nil)
	runs := &fakeRuns{}
	svc.SetRunQueuer(runs)
	return &world{t: t, db: db, svc: svc, w: &Worker{Service: svc, Store: db, Lease: 30 * time.Second}, ctx: context.Background(), runs: runs}
}

func (w *world) create(in Input) View {
	w.t.Helper()
	v, err := w.svc.Create(w.ctx, audit.System, in)
	if err != nil {
		w.t.Fatalf("creating source %q: %v", in.Name, err)
	}
	return v
}

// pull queues a pull and runs it to its end in this goroutine.
func (w *world) pull(id int64, allowShrink bool) store.Pull {
	w.t.Helper()
	p, err := w.svc.Pull(w.ctx, audit.System, id, allowShrink)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.w.RunOne(w.ctx); err != nil {
		w.t.Fatal(err)
	}
	p, err = w.svc.GetPull(w.ctx, p.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

func (w *world) attrs(id string) map[string]any {
	w.t.Helper()
	p, err := w.db.GetProfile(w.ctx, id)
	if err != nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(p.Attrs, &m); err != nil {
		w.t.Fatal(err)
	}
	return m
}

func httpSource(name, url string, prio int) Input {
	return Input{Name: name, Kind: "http", Key: "id", URL: url, Headers: map[string]string{"Authorization": "Bearer s3cret-token"}, Priority: &prio}
}

func TestPullsMergeAndRemove(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db)
		// An upload gives c1 and c2 a city and a name.
		if _, err := db.UpsertProfiles(w.ctx, []store.ProfilePatch{
			{CustomerID: "c1", Attrs: `{"city":"Utrecht","name":"Ann"}`},
			{CustomerID: "c2", Attrs: `{"city":"Delft"}`},
		}); err != nil {
			t.Fatal(err)
		}
		// While uploads is the only source, its layer is the profile.
		if srcs, err := db.ProfileSources(w.ctx, "c1"); err != nil || len(srcs) != 2 || srcs["city"] != "uploads" || srcs["name"] != "uploads" {
			t.Errorf("sources of c1 before any pull = %v, %v", srcs, err)
		}
		// c2 unsubscribed in Mailchimp (a reserved attribute, kept apart
		// from the layers): c2 keeps it whatever its sources do.
		flow := `INSERT INTO profile_statuses (customer, audience_id, status, changed_at) VALUES ('c2', 'a1', 'unsubscribed', '2026-01-02T03:04:05Z')`
		if _, err := db.W.ExecContext(w.ctx, flow); err != nil {
			t.Fatal(err)
		}
		crm := newFileServer(t, "id,city,points\nc1,Amsterdam,10\nc3,Gouda,30\n")
		src := w.create(httpSource("crm", crm.URL+"/people.csv", 5))
		if src.DSNSet || len(src.Headers) != 1 || src.Headers[0] != "Authorization" {
			t.Errorf("view shows secrets wrongly: %+v", src)
		}
		p := w.pull(src.ID, false)
		if p.Status != store.RunSucceeded || p.Counts.Received != 2 || p.Counts.New != 2 {
			t.Fatalf("first pull: %+v", p)
		}
		// uploads has priority 0 and wins over crm (5) for the city.
		if a := w.attrs("c1"); a["city"] != "Utrecht" || a["points"] != 10.0 || a["name"] != "Ann" {
			t.Errorf("c1 = %v", a)
		}
		if a := w.attrs("c3"); a["city"] != "Gouda" {
			t.Errorf("c3 = %v", a)
		}
		if a := w.attrs("c2"); a["city"] != "Delft" || a["mailchimp.a1.status"] != "unsubscribed" {
			t.Errorf("c2 = %v", a)
		}
		var layer string
		if err := db.R.QueryRowContext(w.ctx, db.Q(`SELECT attrs FROM profile_layers WHERE source_id = 1 AND customer_id = ?`), "c2").Scan(&layer); err != nil || layer != `{"city":"Delft"}` {
			t.Errorf("uploads layer of c2 = %s, %v", layer, err)
		}
		srcs, err := db.ProfileSources(w.ctx, "c1")
		if err != nil || srcs["city"] != "uploads" || srcs["points"] != "crm" {
			t.Errorf("sources of c1 = %v, %v", srcs, err)
		}
		// Nothing changed: nothing is written.
		before, _ := db.GetProfile(w.ctx, "c3")
		p = w.pull(src.ID, false)
		if p.Counts.Unchanged != 2 || p.Counts.New+p.Counts.Updated+p.Counts.Removed != 0 {
			t.Errorf("unchanged pull: %+v", p.Counts)
		}
		if after, _ := db.GetProfile(w.ctx, "c3"); !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("an unchanged pull rewrote c3")
		}
		// Each applied pull is a profile import in the audit log, naming
		// the source and the counts, never a profile.
		evs, err := db.ListAuditEvents(w.ctx, store.AuditFilter{Kinds: []string{"profile"}})
		if err != nil || len(evs) != 2 {
			t.Fatalf("audit of two pulls: %+v, %v", evs, err)
		}
		if ev := evs[1]; ev.Action != audit.ProfileImport || ev.Detail["via"] != "source" || ev.Detail["source_id"] != float64(src.ID) ||
			ev.Detail["source"] != "crm" || ev.Detail["new"] != 2.0 || ev.Detail["rejected"] != 0.0 || ev.ActorEmail != "system" {
			t.Errorf("audit of the first pull: %+v", ev)
		}
		// c3 leaves the file: its only source drops it, the profile goes;
		// c1 loses points but keeps its uploaded attributes.
		crm.set("id,city\nc1,Amsterdam\nc4,Ede\n")
		p = w.pull(src.ID, false)
		if p.Counts.Removed != 1 || p.Counts.Deleted != 1 || p.Counts.Updated != 1 || p.Counts.New != 1 {
			t.Errorf("third pull: %+v", p.Counts)
		}
		if w.attrs("c3") != nil {
			t.Errorf("c3 survived although no source holds it")
		}
		if a := w.attrs("c1"); a["points"] != nil || a["city"] != "Utrecht" {
			t.Errorf("c1 = %v", a)
		}
		// Deleting the source removes what only it gave.
		if _, err := w.svc.Delete(w.ctx, audit.System, src.ID); err != nil {
			t.Fatal(err)
		}
		if w.attrs("c4") != nil || w.attrs("c1")["city"] != "Utrecht" {
			t.Errorf("after deleting the source: c4=%v c1=%v", w.attrs("c4"), w.attrs("c1"))
		}
		// uploads is alone again: its layer lives in the profiles, and
		// c2 still has its status.
		var layers int
		if err := db.R.QueryRowContext(w.ctx, `SELECT COUNT(*) FROM profile_layers`).Scan(&layers); err != nil || layers != 0 {
			t.Errorf("%d layers stored after the last source went (%v)", layers, err)
		}
		if _, err := db.UpsertProfiles(w.ctx, []store.ProfilePatch{{CustomerID: "c2", Attrs: `{"name":"Bo"}`}}); err != nil {
			t.Fatal(err)
		}
		if a := w.attrs("c2"); a["city"] != "Delft" || a["name"] != "Bo" || a["mailchimp.a1.status"] != "unsubscribed" {
			t.Errorf("c2 after an upload = %v", a)
		}
		if srcs, err := db.ProfileSources(w.ctx, "c2"); err != nil || srcs["name"] != "uploads" || srcs["city"] != "uploads" || len(srcs) != 2 {
			t.Errorf("sources of c2 = %v, %v", srcs, err)
		}
		// A source created and deleted without a pull stores no layer.
		never := w.create(httpSource("never", crm.URL+"/people.csv", 7))
		if _, err := w.svc.Delete(w.ctx, audit.System, never.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.R.QueryRowContext(w.ctx, `SELECT COUNT(*) FROM profile_layers`).Scan(&layers); err != nil || layers != 0 {
			t.Errorf("%d layers stored after deleting a source never pulled (%v)", layers, err)
		}
	})
}

func TestShrinkGuardAndBadRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db)
		var rows strings.Builder
		rows.WriteString("id,score\n")
		for i := range 100 {
			fmt.Fprintf(&rows, "k%03d,%d\n", i, i)
		}
		f := newFileServer(t, rows.String())
		src := w.create(httpSource("scores", f.URL+"/s.csv", 10))
		if p := w.pull(src.ID, false); p.Status != store.RunSucceeded || p.Counts.New != 100 {
			t.Fatalf("first pull: %+v", p)
		}
		// A broken upstream returns 10 rows: refused, nothing changes.
		f.set("id,score\nk000,1\nk001,2\nk002,3\nk003,4\nk004,5\nk005,6\nk006,7\nk007,8\nk008,9\nk009,10\n")
		p := w.pull(src.ID, false)
		if p.Status != store.RunFailed || !strings.Contains(p.Error, "shrink guard") {
			t.Fatalf("shrinking pull: %s %q", p.Status, p.Error)
		}
		if n, _ := db.CountProfiles(w.ctx); n != 100 {
			t.Fatalf("the refused pull changed the profiles: %d left", n)
		}
		if p := w.pull(src.ID, true); p.Status != store.RunSucceeded || p.Counts.Removed != 90 {
			t.Fatalf("allowed shrink: %+v %q", p.Counts, p.Error)
		}
		// Bad rows are reported with their line; the rest is applied.
		f.set("id,score\nk000,1\nk000,2\n,3\nk001,\"unterminated\n")
		p = w.pull(src.ID, true)
		if p.Status != store.RunPartiallySucceeded || p.Counts.Rejected < 2 {
			t.Fatalf("bad rows: %+v %+v", p.Counts, p.Errors)
		}
		var dup bool
		for _, e := range p.Errors {
			dup = dup || (e.Row == 3 && strings.Contains(e.Reason, "duplicate key"))
		}
		if !dup {
			t.Errorf("the duplicate key is not reported on line 3: %+v", p.Errors)
		}
		// A rename onto a reserved name is refused, naming the field.
		_, err := w.svc.Create(w.ctx, audit.System, Input{Name: "x", Kind: "http", Key: "id", URL: f.URL,
			Rename: map[string]string{"score": "mailchimp.x.status"}})
		if err == nil || !strings.Contains(err.Error(), "rename") || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("reserved rename: %v", err)
		}
		// A missing key column fails the pull and changes nothing.
		f.set("name,score\nk000,1\n")
		if p := w.pull(src.ID, true); p.Status != store.RunFailed || !strings.Contains(p.Error, `"id"`) {
			t.Errorf("missing key: %s %q", p.Status, p.Error)
		}
		if n, _ := db.CountProfiles(w.ctx); n != 1 {
			t.Errorf("the failed pull changed the profiles: %d", n)
		}
	})
}

// TestLargePullPages: a full pull of more rows than one staging batch and
// one page of the comparison, with every kind of change spread over the
// pages (new, changed, unchanged, removed) and a key repeated across
// staging batches.
func TestLargePullPages(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db)
		file := func(n int, changed func(i int) bool, extra string) string {
			var b strings.Builder
			b.WriteString("id,score\n")
			for i := range n {
				score := i
				if changed(i) {
					score = -i
				}
				fmt.Fprintf(&b, "k%05d,%d\n", i, score)
			}
			b.WriteString(extra)
			return b.String()
		}
		never := func(int) bool { return false }
		f := newFileServer(t, file(7000, never, ""))
		src := w.create(httpSource("big", f.URL+"/s.csv", 10))
		if p := w.pull(src.ID, false); p.Status != store.RunSucceeded || p.Counts.New != 7000 {
			t.Fatalf("first pull: %+v %q", p.Counts, p.Error)
		}
		// k07000..k08999 are new; every third row changes; the rows from
		// k06000 on are gone except the new ones, and k00010 comes twice
		// (two staging batches apart).
		var b strings.Builder
		b.WriteString(file(6000, func(i int) bool { return i%3 == 1 }, ""))
		for i := 7000; i < 9000; i++ {
			fmt.Fprintf(&b, "k%05d,%d\n", i, i)
		}
		b.WriteString("k00010,99\n")
		f.set(b.String())
		p := w.pull(src.ID, true)
		if p.Status != store.RunPartiallySucceeded || p.Counts.New != 2000 || p.Counts.Updated != 2000 ||
			p.Counts.Unchanged != 4000 || p.Counts.Removed != 1000 || p.Counts.Deleted != 1000 || p.Counts.Rejected != 1 {
			t.Fatalf("second pull: %s %+v %q", p.Status, p.Counts, p.Error)
		}
		if len(p.Errors) != 1 || !strings.Contains(p.Errors[0].Reason, `duplicate key "k00010"`) {
			t.Errorf("errors: %+v", p.Errors)
		}
		if n, _ := db.CountProfiles(w.ctx); n != 8000 {
			t.Errorf("%d profiles, want 8000", n)
		}
		for id, want := range map[string]float64{"k00003": 3, "k00004": -4, "k00010": -10, "k05998": -5998, "k08999": 8999} {
			if a := w.attrs(id); a["score"] != want {
				t.Errorf("%s = %v, want score %v", id, a, want)
			}
		}
		if w.attrs("k06000") != nil || w.attrs("k06999") != nil {
			t.Error("rows the source no longer has are still there")
		}
	})
}

// TestLargePullsOverSources merges pages of thousands of profiles from an
// upload and two sources (the merger writes one page while it merges the
// next) and checks every profile and the attribute catalogue.
func TestLargePullsOverSources(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db)
		var up []store.ProfilePatch
		for i := range 3000 {
			up = append(up, store.ProfilePatch{CustomerID: fmt.Sprintf("k%05d", i), Attrs: `{"city":"U"}`})
		}
		if _, err := db.UpsertProfiles(w.ctx, up); err != nil {
			t.Fatal(err)
		}
		file := func(from, to int, row func(i int) string) string {
			var b strings.Builder
			b.WriteString("id,city,score\n")
			for i := from; i < to; i++ {
				fmt.Fprintf(&b, "k%05d,%s\n", i, row(i))
			}
			return b.String()
		}
		a := newFileServer(t, file(1000, 5000, func(i int) string { return fmt.Sprintf("A%d,%d", i%7, i) }))
		b := newFileServer(t, file(2500, 4500, func(i int) string { return fmt.Sprintf(",%d", -i) }))
		sa := w.create(httpSource("a", a.URL+"/a.csv", 5))
		sb := w.create(httpSource("b", b.URL+"/b.csv", 1))
		for _, s := range []View{sa, sb} {
			if p := w.pull(s.ID, false); p.Status != store.RunSucceeded {
				t.Fatalf("pull of %s: %s %+v %q", s.Name, p.Status, p.Counts, p.Error)
			}
		}
		want := func(i int) map[string]any {
			m := map[string]any{}
			if i < 3000 {
				m["city"] = "U" // uploads (priority 0) first
			} else if i < 5000 {
				m["city"] = fmt.Sprintf("A%d", i%7)
			}
			if i >= 1000 && i < 5000 {
				m["score"] = float64(i)
			}
			if i >= 2500 && i < 4500 {
				m["score"] = float64(-i) // b (1) over a (5); b's empty city is absent
			}
			return m
		}
		for i := range 5000 {
			id := fmt.Sprintf("k%05d", i)
			if got, exp := w.attrs(id), want(i); fmt.Sprint(got) != fmt.Sprint(exp) {
				t.Fatalf("%s = %v, want %v", id, got, exp)
			}
		}
		// a drops everything from k02000 on: profiles only a and b held go
		// when b has none of them either.
		a.set(file(1000, 2000, func(i int) string { return fmt.Sprintf("A%d,%d", i%7, i) }))
		if p := w.pull(sa.ID, true); p.Status != store.RunSucceeded || p.Counts.Removed != 3000 || p.Counts.Deleted != 500 {
			t.Fatalf("shrinking pull: %s %+v %q", p.Status, p.Counts, p.Error)
		}
		if n, _ := db.CountProfiles(w.ctx); n != 4500 {
			t.Errorf("%d profiles, want 4500", n)
		}
		cat, err := db.ProfileAttributes(w.ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, c := range cat {
			got[c.Name+"/"+c.Type] = c.Count
		}
		// city: 3000 uploads + k03000..k04499 from... none (a dropped them): 3000;
		// score: a's k01000..k01999 and b's k02500..k04499.
		if got["city/string"] != 3000 || got["score/number"] != 3000 || len(got) != 2 {
			t.Errorf("catalogue = %v", got)
		}
	})
}

// TestPullHandedBackOnShutdown: a worker shut down while its pull streams
// hands it back; another worker claims it at once, not after the lease.
func TestPullHandedBackOnShutdown(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db)
		streaming := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Type", "text/csv")
			fmt.Fprint(rw, "id,a\nc1,1\n")
			rw.(http.Flusher).Flush()
			close(streaming)
			<-r.Context().Done() // the rest never comes before the shutdown
		}))
		defer slow.Close()
		src := w.create(Input{Name: "slow", Kind: "http", Key: "id", URL: slow.URL + "/s.csv"})
		p, err := w.svc.Pull(w.ctx, audit.System, src.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		ctx, shutdown := context.WithCancel(w.ctx)
		go func() { <-streaming; shutdown() }()
		if ok, err := w.w.RunOne(ctx); !ok || err != nil {
			t.Fatalf("the interrupted pull: %v %v", ok, err)
		}
		got, ok, err := db.ClaimPull(w.ctx, store.Lease{Token: "next", TTL: time.Minute})
		if err != nil || !ok || got.ID != p.ID || got.Attempts != 2 {
			t.Fatalf("the next worker could not take the pull at once: %+v %v %v", got, ok, err)
		}
	})
}
