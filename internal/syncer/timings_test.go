package syncer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/syncer"
)

// slowRecords makes every acknowledgement record take a while.
type slowRecords struct {
	*sqldb.DB
	delay time.Duration
}

func (s *slowRecords) ApplySynced(ctx context.Context, exportID int64, changes []store.SyncedChange) error {
	time.Sleep(s.delay)
	return s.DB.ApplySynced(ctx, exportID, changes)
}

// TestPhaseTimings: a run says where its time went. Each call takes 30 ms,
// recording 40 ms, and the account's only connection is held by someone
// else for the run's first 300 ms: the run waits that long (idle), plans
// at least one call long (the merge fields), refreshes statuses at least one
// call long (archived members), sends at least a batch and a tag call long, and records
// at least one write long. Earlier attempts' timings are added, and the
// phases are observed in the metrics.
func TestPhaseTimings(t *testing.T) {
	ctx := context.Background()
	db := dbtest.SQLite(t)
	w := newWorld(t, db, emulator.Options{Latency: 30 * time.Millisecond})
	lim := mailchimp.NewLocalLimiter(1)
	mc, err := mailchimp.New(mailchimp.Config{APIKey: w.srv.Key(), BaseURL: w.srv.URL, Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	var ps []person
	for i := range 20 {
		ps = append(ps, person{id: fmt.Sprintf("c%02d", i), email: fmt.Sprintf("u%d@shop.io", i), first: "F", tier: "gold"})
	}
	w.upsert(ps...)
	gold := w.segment("Gold", `{"attribute":"tier","op":"eq","value":"gold"}`)
	w.exp = store.Export{Name: "x", AudienceID: w.list, SegmentIDs: []int64{gold},
		Mapping: store.Mapping{Email: "email", FirstName: "first"}, StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
	if err := db.CreateExport(ctx, &w.exp); err != nil {
		t.Fatal(err)
	}

	release, err := lim.Acquire(ctx, mc.Account())
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(300*time.Millisecond, release)
	reg := prometheus.NewRegistry()
	e := &syncer.Engine{Store: &slowRecords{DB: db, delay: 40 * time.Millisecond}, Source: db, Metrics: syncer.NewMetrics(reg)}
	earlier := store.RunTimings{PlanMS: 1000, StatusRefreshMS: 1000, SendMS: 1000, RecordMS: 1000, IdleMS: 1000}
	tr := syncer.NewTracker(store.Progress{}, store.RunCounts{}, earlier)
	start := time.Now()
	res, err := e.Execute(ctx, w.exp, mc, syncer.Options{Tracker: tr})
	wall := time.Since(start).Milliseconds()
	if err != nil || res.Counts.Created != 20 {
		t.Fatalf("run = %+v, %v", res.Counts, err)
	}
	got := res.Timings
	t.Logf("timings %+v, wall %d ms", got, wall)
	for _, c := range []struct {
		name    string
		ms      int64
		atLeast int64
	}{
		{"plan", got.PlanMS, 30}, {"status refresh", got.StatusRefreshMS, 30}, {"send", got.SendMS, 60},
		{"record", got.RecordMS, 40}, {"idle", got.IdleMS, 250},
	} {
		if this := c.ms - 1000; this < c.atLeast || this > wall {
			t.Errorf("%s took %d ms in this attempt; want between %d ms and the wall time, %d ms", c.name, this, c.atLeast, wall)
		}
	}
	if tr.Timings() != got {
		t.Errorf("tracker timings %+v, result %+v", tr.Timings(), got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	observed := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "segsync_run_phase_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetHistogram().GetSampleCount() != 1 {
				t.Errorf("%v: %d observations, want 1", m.GetLabel(), m.GetHistogram().GetSampleCount())
			}
			observed[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleSum()
		}
	}
	if observed[syncer.PhaseIdle] < 0.25 || observed[syncer.PhaseSend] < 0.06 || len(observed) != 5 {
		t.Errorf("phases observed (s): %v", observed)
	}
}
