package sqldb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

func newExport(t *testing.T, db *sqldb.DB) store.Export {
	t.Helper()
	conn := int64(7)
	e := store.Export{Name: "vip", ConnectionID: &conn, AudienceID: "aud1", SegmentIDs: []int64{1, 2},
		Mapping:     store.Mapping{Email: "email", FirstName: "first", Attributes: []store.AttributeMap{{Attribute: "city", MergeTag: "CITY"}}},
		StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "refresh"}
	if err := db.CreateExport(context.Background(), &e); err != nil {
		t.Fatalf("CreateExport: %v", err)
	}
	return e
}

func TestExportCRUD(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		e := newExport(t, db)
		got, err := db.GetExport(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "vip" || *got.ConnectionID != 7 || len(got.SegmentIDs) != 2 || got.Mapping.Attributes[0].MergeTag != "CITY" {
			t.Fatalf("GetExport = %+v", got)
		}
		got.Name, got.TagPrefix = "vip2", "seg:"
		if err := db.UpdateExport(ctx, &got); err != nil {
			t.Fatal(err)
		}
		if ids, _ := db.ExportsUsingConnection(ctx, 7); len(ids) != 1 {
			t.Fatalf("ExportsUsingConnection = %v", ids)
		}
		if n, err := db.DetachExports(ctx, 7); err != nil || n != 1 {
			t.Fatalf("DetachExports = %d, %v", n, err)
		}
		list, err := db.ListExports(ctx)
		if err != nil || len(list) != 1 || list[0].ConnectionID != nil || list[0].Name != "vip2" || list[0].TagPrefix != "seg:" {
			t.Fatalf("ListExports = %+v, %v", list, err)
		}
		if _, _, err := db.EnqueueRun(ctx, e.ID, store.TriggerManual, false, ""); err != nil {
			t.Fatal(err)
		}
		if err := db.ApplySynced(ctx, e.ID, []store.SyncedChange{{Hash: "aa", Set: &store.Synced{Email: "a@x.io"}}}); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteExport(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.GetExport(ctx, e.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetExport after delete: %v", err)
		}
		if err := db.DeleteExport(ctx, e.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DeleteExport twice: %v", err)
		}
	})
}

func TestSyncedState(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		e := newExport(t, db)
		bits, err := db.ExportTags(ctx, e.ID, []string{"a", "b"})
		if err != nil || bits["a"] == bits["b"] {
			t.Fatalf("ExportTags = %v, %v", bits, err)
		}
		again, _ := db.ExportTags(ctx, e.ID, []string{"b", "c"})
		if again["b"] != bits["b"] || again["c"] == bits["a"] {
			t.Fatalf("ExportTags again = %v (first %v)", again, bits)
		}
		a, b := uint64(1)<<bits["a"], uint64(1)<<bits["b"]
		err = db.ApplySynced(ctx, e.ID, []store.SyncedChange{
			{Hash: "ff", Set: &store.Synced{Email: "f@x.io", CustomerID: "f", InAudience: true, Status: "subscribed"}},
			{Hash: "0a", Set: &store.Synced{Email: "a@x.io", CustomerID: "a", InAudience: true, InExport: true, CreatedByUs: true, Tags: a, FieldsHash: "h1"}},
			{Hash: "0a", AddTags: b},
			{Hash: "ff", AddTags: a | b, RemoveTags: a},
			{Hash: "1b", Set: &store.Synced{Email: "old@x.io"}},
			{Hash: "1b", Set: &store.Synced{Email: "b@x.io", RejectedHash: "r"}}, // the last Set wins
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.UpdateSyncedStatuses(ctx, e.ID, map[string]string{"ff": "unsubscribed", "zz": "cleaned"}); err != nil {
			t.Fatal(err)
		}
		var got []store.Synced
		if err := db.StreamSynced(ctx, e.ID, func(s store.Synced) error { got = append(got, s); return nil }); err != nil {
			t.Fatal(err)
		}
		want := []store.Synced{
			{Hash: "0a", Email: "a@x.io", CustomerID: "a", InAudience: true, InExport: true, CreatedByUs: true, Tags: a | b, FieldsHash: "h1"},
			{Hash: "1b", Email: "b@x.io", RejectedHash: "r"},
			{Hash: "ff", Email: "f@x.io", CustomerID: "f", InAudience: true, Status: "unsubscribed", Tags: b},
		}
		if len(got) != len(want) {
			t.Fatalf("StreamSynced = %+v", got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
			}
		}
		// Tag "c" (no contact carries it) is released; "a" and "b" stay.
		if err := db.ReleaseUnusedTags(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		all, _ := db.AllExportTags(ctx, e.ID)
		if len(all) != 2 || all[bits["a"]] != "a" {
			t.Fatalf("AllExportTags after release = %v", all)
		}
		now := time.Now().Truncate(time.Microsecond)
		if err := db.SetStatusAsOf(ctx, e.ID, now); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.StatusAsOf(ctx, e.ID); !got.Equal(now) {
			t.Fatalf("StatusAsOf = %v, want %v", got, now)
		}
	})
}

func TestRunQueue(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		e := newExport(t, db)
		r1, created, err := db.EnqueueRun(ctx, e.ID, store.TriggerManual, false, "ann")
		if err != nil || !created || r1.Status != store.RunQueued {
			t.Fatalf("EnqueueRun = %+v, %v, %v", r1, created, err)
		}
		dup, created, err := db.EnqueueRun(ctx, e.ID, store.TriggerSchedule, false, "")
		if err != nil || created || dup.ID != r1.ID {
			t.Fatalf("second EnqueueRun = %+v, %v, %v (want the queued one)", dup, created, err)
		}
		claimed, ok, err := db.ClaimRun(ctx, "w1", time.Minute)
		if err != nil || !ok || claimed.ID != r1.ID || claimed.Status != store.RunRunning {
			t.Fatalf("ClaimRun = %+v, %v, %v", claimed, ok, err)
		}
		// While it runs, a trigger is queued once, and not started.
		r2, created, _ := db.EnqueueRun(ctx, e.ID, store.TriggerManual, false, "")
		if !created {
			t.Fatal("a trigger while running must queue a run")
		}
		if _, created, _ := db.EnqueueRun(ctx, e.ID, store.TriggerManual, false, ""); created {
			t.Fatal("a second trigger while running must not queue another run")
		}
		if _, ok, _ := db.ClaimRun(ctx, "w2", time.Minute); ok {
			t.Fatal("a second run of a running export was claimed")
		}
		l1 := store.RunLease{RunID: r1.ID, Token: claimed.LeaseToken}
		if len(l1.Token) != 32 {
			t.Fatalf("lease token %q", l1.Token)
		}
		cancel, err := db.HeartbeatRun(ctx, l1, time.Minute, store.Progress{Done: 1, Total: 2}, store.RunCounts{Created: 1}, store.RunTimings{PlanMS: 5})
		if err != nil || cancel {
			t.Fatalf("HeartbeatRun = %v, %v", cancel, err)
		}
		stranger := store.RunLease{RunID: r1.ID, Token: "0123456789abcdef0123456789abcdef"}
		if _, err := db.HeartbeatRun(ctx, stranger, time.Minute, store.Progress{}, store.RunCounts{}, store.RunTimings{}); !errors.Is(err, store.ErrLeaseLost) || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("HeartbeatRun by a stranger: %v", err)
		}
		if _, err := db.CancelRun(ctx, r1.ID); err != nil {
			t.Fatal(err)
		}
		if cancel, _ := db.HeartbeatRun(ctx, l1, time.Minute, store.Progress{}, store.RunCounts{}, store.RunTimings{}); !cancel {
			t.Fatal("cancel request not reported")
		}
		if err := db.AddRejections(ctx, r1.ID, []store.Rejection{{Email: "x@y.io", CustomerID: "x", Reason: "fake", Kind: "permanent"}}); err != nil {
			t.Fatal(err)
		}
		if err := db.FinishRun(ctx, l1, store.RunCancelled, store.Progress{Done: 1, Total: 2}, store.RunCounts{Created: 1}, store.RunTimings{PlanMS: 7, StatusRefreshMS: 1, SendMS: 20, RecordMS: 3, IdleMS: 2}, nil, "cancelled"); err != nil {
			t.Fatal(err)
		}
		got, _ := db.GetRun(ctx, r1.ID)
		if got.Status != store.RunCancelled || got.Counts.Created != 1 || got.FinishedAt == nil || got.Progress.Total != 2 ||
			got.Timings != (store.RunTimings{PlanMS: 7, StatusRefreshMS: 1, SendMS: 20, RecordMS: 3, IdleMS: 2}) {
			t.Fatalf("finished run = %+v", got)
		}
		var rej []store.Rejection
		_ = db.StreamRejections(ctx, r1.ID, func(r store.Rejection) error { rej = append(rej, r); return nil })
		if len(rej) != 1 || rej[0].Reason != "fake" {
			t.Fatalf("rejections = %+v", rej)
		}
		// Now the queued one starts; with a zero lease it is abandoned at once
		// and another worker resumes it.
		c2, ok, _ := db.ClaimRun(ctx, "w1", 0)
		if !ok || c2.ID != r2.ID {
			t.Fatalf("ClaimRun = %+v, %v", c2, ok)
		}
		time.Sleep(2 * time.Millisecond)
		c3, ok, _ := db.ClaimRun(ctx, "w3", time.Minute)
		if !ok || c3.ID != r2.ID || c3.Attempts != 2 || c3.LeaseOwner != "w3" {
			t.Fatalf("resume ClaimRun = %+v, %v", c3, ok)
		}
		// The first claim is fenced off: same owner name, older token.
		old := store.RunLease{RunID: r2.ID, Token: c2.LeaseToken}
		if err := db.FinishRun(ctx, old, store.RunSucceeded, store.Progress{}, store.RunCounts{}, store.RunTimings{}, nil, ""); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("FinishRun by the old claim: %v", err)
		}
		if _, err := db.HeartbeatRun(ctx, old, time.Minute, store.Progress{}, store.RunCounts{}, store.RunTimings{}); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("HeartbeatRun by the old claim: %v", err)
		}
		if c3.LeaseToken == c2.LeaseToken {
			t.Fatal("a new claim got the old token")
		}
		// A live lease is never claimed, even by its owner's name.
		if _, ok, _ := db.ClaimRun(ctx, "w3", time.Minute); ok {
			t.Fatal("a run with a live lease was claimed")
		}
		// Handing the run back lets the next worker resume it at once.
		l3 := store.RunLease{RunID: r2.ID, Token: c3.LeaseToken}
		if err := db.ReleaseRun(ctx, l3, store.Progress{Done: 1}, store.RunCounts{}, store.RunTimings{SendMS: 4}); err != nil {
			t.Fatal(err)
		}
		if err := db.ReleaseRun(ctx, l3, store.Progress{Done: 1}, store.RunCounts{}, store.RunTimings{SendMS: 4}); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("second ReleaseRun: %v", err)
		}
		c4, ok, _ := db.ClaimRun(ctx, "w4", time.Minute)
		if !ok || c4.ID != r2.ID || c4.Attempts != 3 || c4.Progress.Done != 1 || c4.Timings.SendMS != 4 {
			t.Fatalf("ClaimRun after release = %+v, %v", c4, ok)
		}
		if err := db.FinishRun(ctx, store.RunLease{RunID: r2.ID, Token: c4.LeaseToken}, store.RunSucceeded, store.Progress{}, store.RunCounts{}, store.RunTimings{}, nil, ""); err != nil {
			t.Fatal(err)
		}
		list, _ := db.ListRuns(ctx, e.ID, 0)
		if len(list) != 2 || list[0].ID != r2.ID {
			t.Fatalf("ListRuns = %+v", list)
		}
		// Cancelling a queued run ends it at once.
		r4, _, _ := db.EnqueueRun(ctx, e.ID, store.TriggerManual, true, "")
		if c, _ := db.CancelRun(ctx, r4.ID); c.Status != store.RunCancelled {
			t.Fatalf("cancelled queued run = %+v", c)
		}
	})
}

// execer returns a function that runs a statement on the writer, failing
// the test on an error (for tests that take the schema back before a
// migration).
func execer(t *testing.T, db *sqldb.DB) func(q string, args ...any) {
	return func(q string, args ...any) {
		t.Helper()
		if _, err := db.W.ExecContext(context.Background(), db.Q(q), args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
