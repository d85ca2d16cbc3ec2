package syncer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/syncer"
)

// stallingStore holds the recorder's writes until released, like a
// process about to be killed before its recorder writes.
type stallingStore struct {
	*sqldb.DB
	release chan struct{}
}

// FenceRun fences the run's writes as the DB does, keeping them held.
func (s *stallingStore) FenceRun(l store.RunLease) store.RunScoped {
	return &stallingFenced{Fenced: s.DB.Fenced(l), release: s.release}
}

type stallingFenced struct {
	*sqldb.Fenced
	release chan struct{}
}

func (s *stallingFenced) ApplySyncedRun(ctx context.Context, exportID int64, changes []store.SyncedChange, runID int64, token string, c store.RunCounts) error {
	<-s.release
	return s.Fenced.ApplySyncedRun(ctx, exportID, changes, runID, token, c)
}

// TestCountsFollowRecords: the counts a run shows (and its heartbeats save)
// include a contact only once its acknowledgement is recorded, so a run
// resumed after a crash neither counts a contact twice (acknowledged,
// counted, lost before recording, re-sent) nor misses one.
func TestCountsFollowRecords(t *testing.T) {
	ctx := context.Background()
	db := dbtest.SQLite(t)
	w := newWorld(t, db, emulator.Options{})
	var ps []person
	// Few enough that every acknowledgement fits in the recorder's queue.
	for i := range 400 {
		ps = append(ps, person{id: fmt.Sprintf("c%04d", i), email: fmt.Sprintf("u%d@shop.io", i), first: "F", last: "L", tier: "gold", spend: 1})
	}
	w.upsert(ps...)
	gold := w.segment("Gold", `{"attribute":"tier","op":"eq","value":"gold"}`)
	conn := int64(1)
	w.exp = store.Export{Name: "x", ConnectionID: &conn, AudienceID: w.list, SegmentIDs: []int64{gold},
		Mapping: store.Mapping{Email: "email", FirstName: "first"}, StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
	if err := db.CreateExport(ctx, &w.exp); err != nil {
		t.Fatal(err)
	}
	run, _, err := db.EnqueueRun(ctx, w.exp.ID, store.TriggerManual, false, "t")
	if err != nil {
		t.Fatal(err)
	}
	claim, ok, err := db.ClaimRun(ctx, "w1", time.Minute)
	if err != nil || !ok {
		t.Fatalf("ClaimRun = %v, %v", ok, err)
	}
	st := &stallingStore{DB: db, release: make(chan struct{})}
	e := &syncer.Engine{Store: st, Source: db, Concurrency: 4}
	tr := syncer.NewTracker(store.Progress{}, store.RunCounts{}, store.RunTimings{})
	type outcome struct {
		res syncer.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := e.Execute(ctx, w.exp, w.mc, syncer.Options{RunID: run.ID, LeaseToken: claim.LeaseToken, Tracker: tr})
		done <- outcome{res, err}
	}()

	// Every contact acknowledged (created and tagged) and handed to the
	// recorder, whose writes are held.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if p, _ := tr.Snapshot(); p.Done == int64(len(ps)) {
			break
		}
		if time.Now().After(deadline) {
			p, _ := tr.Snapshot()
			t.Fatalf("only %d of %d contacts acknowledged", p.Done, len(ps))
		}
	}
	_, counts := tr.Snapshot()
	saved, err := db.GetRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Created != 0 || counts.TagsAdded != 0 || saved.Counts.Created != 0 {
		t.Fatalf("with no acknowledgement recorded yet, the run counts %d created, %d tagged (saved: %d created)",
			counts.Created, counts.TagsAdded, saved.Counts.Created)
	}

	close(st.release)
	out := <-done
	if out.err != nil || out.res.Counts.Created != int64(len(ps)) || out.res.Counts.TagsAdded != int64(len(ps)) {
		t.Fatalf("run = %+v, %v; want %d created and tagged", out.res.Counts, out.err, len(ps))
	}
}
