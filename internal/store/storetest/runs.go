package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// newExport creates a minimal export.
func newExport(t *testing.T, db *sqldb.DB) store.Export {
	t.Helper()
	conn := int64(1)
	e := store.Export{Name: "x", ConnectionID: &conn, AudienceID: "aud", Mapping: store.Mapping{Email: "email"},
		StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
	if err := db.CreateExport(context.Background(), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRunTimings: a run's phase timings are saved by heartbeats, releases
// and the finish under the run's claim, read back as saved, and refused
// (with the rest of the write) to a claim that is no longer the run's.
func (s Suite) TestRunTimings(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t)
	e := newExport(t, db)
	queued, _, err := db.EnqueueRun(ctx, e.ID, store.TriggerManual, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if queued.Timings != (store.RunTimings{}) {
		t.Fatalf("a queued run has timings %+v", queued.Timings)
	}
	claim, ok, err := db.ClaimRun(ctx, "w1", time.Minute)
	if err != nil || !ok {
		t.Fatalf("ClaimRun = %v, %v", ok, err)
	}
	l := store.RunLease{RunID: claim.ID, Token: claim.LeaseToken}
	beat := store.RunTimings{PlanMS: 1, StatusRefreshMS: 2, SendMS: 3, RecordMS: 4, IdleMS: 5}
	if _, err := db.HeartbeatRun(ctx, l, time.Minute, store.Progress{}, store.RunCounts{}, beat); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetRun(ctx, claim.ID); got.Timings != beat {
		t.Fatalf("after a heartbeat the run has timings %+v, want %+v", got.Timings, beat)
	}
	if err := db.ReleaseRun(ctx, l, store.Progress{}, store.RunCounts{}, beat.Add(beat)); err != nil {
		t.Fatal(err)
	}
	resumed, ok, err := db.ClaimRun(ctx, "w2", time.Minute)
	if err != nil || !ok || resumed.Timings != beat.Add(beat) {
		t.Fatalf("resumed run = %+v, %v, %v; want timings %+v", resumed.Timings, ok, err, beat.Add(beat))
	}
	final := store.RunTimings{PlanMS: 1500, StatusRefreshMS: 250, SendMS: 93_200, RecordMS: 4100, IdleMS: 12}
	if err := db.FinishRun(ctx, l, store.RunSucceeded, store.Progress{}, store.RunCounts{}, store.RunTimings{SendMS: 9}, nil, ""); err == nil {
		t.Fatal("the released claim finished the run")
	}
	l2 := store.RunLease{RunID: resumed.ID, Token: resumed.LeaseToken}
	if err := db.FinishRun(ctx, l2, store.RunSucceeded, store.Progress{}, store.RunCounts{}, final, nil, ""); err != nil {
		t.Fatal(err)
	}
	runs, err := db.ListRuns(ctx, e.ID, 0)
	if err != nil || len(runs) != 1 || runs[0].Timings != final {
		t.Fatalf("ListRuns = %+v, %v; want timings %+v", runs, err, final)
	}
}
