package source

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/source/stage"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// TestRefreshRunsExportsAfterPulls: the exports are queued only once every
// pull of the refresh ended, and a failed pull is named but stops nothing.
func TestRefreshRunsExportsAfterPulls(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db)
		good := newFileServer(t, "id,a\nc1,1\n")
		broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "down", http.StatusInternalServerError)
		}))
		defer broken.Close()
		w.create(httpSource("good", good.URL, 10))
		w.create(httpSource("broken", broken.URL, 20))
		off := httpSource("manual", good.URL, 30)
		off.Schedule = "off"
		w.create(off)

		f, err := w.svc.StartRefresh(w.ctx, audit.System, store.TriggerManual)
		if err != nil {
			t.Fatal(err)
		}
		if f.Status != store.RefreshPulling || len(f.Pulls) != 2 || len(f.Runs) != 0 {
			t.Fatalf("new refresh: %+v", f)
		}
		if _, err := w.w.RunOne(w.ctx); err != nil { // one pull ended, one queued
			t.Fatal(err)
		}
		if err := w.svc.Advance(w.ctx); err != nil {
			t.Fatal(err)
		}
		if w.runs.calls != 0 {
			t.Fatalf("the exports were queued before every pull ended")
		}
		if _, err := w.w.RunOne(w.ctx); err != nil {
			t.Fatal(err)
		}
		if err := w.svc.Advance(w.ctx); err != nil {
			t.Fatal(err)
		}
		f, err = w.svc.GetRefresh(w.ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		// The exports were queued (none here, so it ended at once).
		if w.runs.calls != 1 || f.Status != RefreshPartiallySucceeded || f.FinishedAt == nil {
			t.Fatalf("after the pulls: %d calls, %+v", w.runs.calls, f.Refresh)
		}
		if !strings.Contains(f.Error, `"broken" failed`) || !strings.Contains(f.Error, "500") {
			t.Errorf("the refresh does not name the failed pull: %q", f.Error)
		}
	})
}

// TestFencedPull: a worker whose lease expired and was claimed again can
// neither heartbeat, apply nor finish: only the new holder writes.
func TestFencedPull(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db)
		f := newFileServer(t, "id,a\nc1,1\n")
		src := w.create(httpSource("s", f.URL, 10))
		if _, err := w.svc.Pull(w.ctx, audit.System, src.ID, false); err != nil {
			t.Fatal(err)
		}
		old := store.Lease{Token: "old", TTL: 400 * time.Millisecond}
		p, ok, err := db.ClaimPull(w.ctx, old)
		if err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		stale := newStage(t, store.StagedRow{CustomerID: "c9", Attrs: `{"a":9}`})
		time.Sleep(900 * time.Millisecond) // the old holder is "paused" past its lease
		fresh := store.Lease{Token: "new", TTL: 5 * time.Second}
		if _, ok, err := db.ClaimPull(w.ctx, fresh); err != nil || !ok {
			t.Fatalf("take-over: %v %v", ok, err)
		}
		for what, err := range map[string]error{
			"heartbeat": func() error { _, err := db.HeartbeatPull(w.ctx, p.ID, old, store.PullCounts{}); return err }(),
			"apply": func() error {
				_, err := db.ApplyPullStage(w.ctx, p.ID, old, store.ApplyPull{Stage: stale, Full: true}, store.PullCounts{}, nil, store.RunSucceeded)
				return err
			}(),
			"finish": db.FinishPull(w.ctx, p.ID, old, store.RunFailed, store.PullCounts{}, nil, "x"),
		} {
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("%s with a lost lease: %v", what, err)
			}
		}
		if n, _ := db.CountProfiles(w.ctx); n != 0 {
			t.Errorf("the stale holder changed profiles: %d", n)
		}
		// The new holder applies its own stage.
		if _, err := db.ApplyPullStage(w.ctx, p.ID, fresh, store.ApplyPull{Stage: newStage(t, store.StagedRow{CustomerID: "c1", Attrs: `{"a":1}`}), Full: true, MinRatio: 0.5},
			store.PullCounts{}, nil, store.RunSucceeded); err != nil {
			t.Fatal(err)
		}
		if _, err := db.GetProfile(w.ctx, "c9"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the stale stage was applied: %v", err)
		}
		if _, err := db.GetProfile(w.ctx, "c1"); err != nil {
			t.Errorf("the new holder's stage was not applied: %v", err)
		}
	})
}

// newStage stages rows in a stage that the test removes.
func newStage(t *testing.T, rows ...store.StagedRow) *stage.Stage {
	t.Helper()
	s, err := stage.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Add(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRefreshQueuesItsPulls: a refresh is created with all its pulls at
// once; it adopts a pull queued already and leaves out a deleted source.
func TestRefreshQueuesItsPulls(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db)
		f := newFileServer(t, "id,a\nc1,1\n")
		a := w.create(httpSource("a", f.URL, 10))
		b := w.create(httpSource("b", f.URL, 20))
		manual, err := w.svc.Pull(w.ctx, audit.System, a.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		r, err := db.CreateRefresh(w.ctx, store.TriggerManual, "t", []int64{a.ID, b.ID, 9999})
		if err != nil {
			t.Fatal(err)
		}
		pulls, err := db.RefreshPulls(w.ctx, r.ID)
		if err != nil || len(pulls) != 2 {
			t.Fatalf("pulls of the refresh: %+v, %v", pulls, err)
		}
		adopted := false
		for _, p := range pulls {
			adopted = adopted || p.ID == manual.ID
			if p.Status != store.RunQueued || (p.SourceID != a.ID && p.SourceID != b.ID) {
				t.Errorf("pull %+v", p)
			}
		}
		if !adopted {
			t.Errorf("the queued pull %d of a was not adopted: %+v", manual.ID, pulls)
		}
	})
}
