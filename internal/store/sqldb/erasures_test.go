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

// TestCreateErasureScrubs: an erasure removes the person from run samples
// and rejections (by customer id and by address), synced state and
// profiles, and keeps everyone else.
func TestCreateErasureScrubs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.UpsertProfiles(ctx, []store.ProfilePatch{{CustomerID: "c1", Attrs: `{"email":"ann@shop.io"}`},
			{CustomerID: "c2", Attrs: `{"email":"bob@shop.io"}`}}); err != nil {
			t.Fatal(err)
		}
		conn := int64(7)
		exp := store.Export{Name: "x", ConnectionID: &conn, AudienceID: "aud", Mapping: store.Mapping{Email: "email"},
			StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
		if err := db.CreateExport(ctx, &exp); err != nil {
			t.Fatal(err)
		}
		if err := db.ApplySynced(ctx, exp.ID, []store.SyncedChange{
			{Hash: "h1", Set: &store.Synced{Hash: "h1", Email: "ann@shop.io", CustomerID: "c1", InAudience: true}},
			{Hash: "h0", Set: &store.Synced{Hash: "h0", Email: "ann@old.io", CustomerID: "c1", InAudience: false}},
			{Hash: "h2", Set: &store.Synced{Hash: "h2", Email: "bob@shop.io", CustomerID: "c2", InAudience: true}},
		}); err != nil {
			t.Fatal(err)
		}
		run, _, err := db.EnqueueRun(ctx, exp.ID, store.TriggerManual, true, "")
		if err != nil {
			t.Fatal(err)
		}
		claimed, ok, err := db.ClaimRun(ctx, "me", time.Minute)
		if err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		sample := store.RunSample{"create": {{Email: "ann@shop.io", CustomerID: "c1"}, {Email: "bob@shop.io", CustomerID: "c2"}},
			"update": {{Email: "ann@shop.io"}}}
		if err := db.FinishRun(ctx, store.RunLease{RunID: run.ID, Token: claimed.LeaseToken}, store.RunSucceeded, store.Progress{}, store.RunCounts{}, store.RunTimings{}, sample, ""); err != nil {
			t.Fatal(err)
		}
		if err := db.AddRejections(ctx, run.ID, []store.Rejection{{Email: "ann@shop.io", CustomerID: "", Reason: "r", Kind: "permanent"},
			{Email: "bob@shop.io", CustomerID: "c2", Reason: "r", Kind: "permanent"}}); err != nil {
			t.Fatal(err)
		}
		if err := db.RefreshAddresses(ctx, "email"); err != nil {
			t.Fatal(err)
		}
		e, err := db.CreateErasure(ctx, "c1", "admin")
		if err != nil {
			t.Fatal(err)
		}
		var addresses int
		if err := db.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM profile_addresses`).Scan(&addresses); err != nil || addresses != 1 {
			t.Errorf("address rows after the erasure: %d, %v; want bob's only", addresses, err)
		}
		if len(e.Audiences) != 1 || e.Audiences[0].ConnectionID != 7 || e.Audiences[0].AudienceID != "aud" || e.Audiences[0].Email != "ann@shop.io" {
			t.Errorf("targets: %+v (only the contact in the audience)", e.Audiences)
		}
		got, _ := db.GetRun(ctx, run.ID)
		if len(got.Sample["create"]) != 1 || got.Sample["create"][0].CustomerID != "c2" || len(got.Sample["update"]) != 0 {
			t.Errorf("sample after the erasure: %+v", got.Sample)
		}
		var rejected []string
		_ = db.StreamRejections(ctx, run.ID, func(r store.Rejection) error { rejected = append(rejected, r.Email); return nil })
		if len(rejected) != 1 || rejected[0] != "bob@shop.io" {
			t.Errorf("rejections after the erasure: %v", rejected)
		}
		var hashes []string
		_ = db.StreamSynced(ctx, exp.ID, func(s store.Synced) error { hashes = append(hashes, s.Hash); return nil })
		if len(hashes) != 1 || hashes[0] != "h2" {
			t.Errorf("synced after the erasure: %v", hashes)
		}
		if _, err := db.GetProfile(ctx, "c2"); err != nil {
			t.Errorf("bob's profile: %v", err)
		}
		if err := db.RecordErasureTarget(ctx, e.ID, 99, 0, store.ErasureDeleted, ""); !errors.Is(err, store.ErrConflict) {
			t.Errorf("record without a claim: %v", err)
		}
	})
}

// TestRenewErasure: the current claim extends its lease, so no other
// worker can claim the request while it works; a stale token cannot.
func TestRenewErasure(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.UpsertProfiles(ctx, []store.ProfilePatch{{CustomerID: "c1", Attrs: `{"email":"ann@shop.io"}`}}); err != nil {
			t.Fatal(err)
		}
		e, err := db.CreateErasure(ctx, "c1", "admin")
		if err != nil {
			t.Fatal(err)
		}
		claimed, ok, err := db.ClaimErasure(ctx, "w1", time.Millisecond)
		if err != nil || !ok || claimed.ID != e.ID {
			t.Fatalf("claim: %+v %v %v", claimed, ok, err)
		}
		if err := db.RenewErasure(ctx, e.ID, claimed.Token, time.Minute); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // past the first lease, within the renewed one
		if other, ok, err := db.ClaimErasure(ctx, "w2", time.Minute); err != nil || ok {
			t.Fatalf("a renewed claim was taken over: %+v %v %v", other, ok, err)
		}
		if err := db.RenewErasure(ctx, e.ID, claimed.Token-1, time.Minute); !errors.Is(err, store.ErrConflict) {
			t.Errorf("renewal with a stale token: %v", err)
		}
		// The audit record of the erasure goes with its end, or not at all.
		done := store.AuditEvent{ActorEmail: "system", Action: "profile.erased", ObjectType: "profile", ObjectID: "c1"}
		if err := db.FinishErasure(ctx, e.ID, claimed.Token-1, true, "", time.Time{}, &done); !errors.Is(err, store.ErrConflict) {
			t.Errorf("finish with a stale token: %v", err)
		}
		if evs, err := db.ListAuditEvents(ctx, store.AuditFilter{}); err != nil || len(evs) != 0 {
			t.Errorf("a refused finish recorded %+v, %v", evs, err)
		}
		if err := db.FinishErasure(ctx, e.ID, claimed.Token, true, "", time.Time{}, &done); err != nil {
			t.Fatal(err)
		}
		if evs, err := db.ListAuditEvents(ctx, store.AuditFilter{}); err != nil || len(evs) != 1 || evs[0].Action != "profile.erased" || evs[0].ID != done.ID {
			t.Errorf("the finish recorded %+v, %v", evs, err)
		}
		if err := db.RenewErasure(ctx, e.ID, claimed.Token, time.Minute); !errors.Is(err, store.ErrConflict) {
			t.Errorf("renewal of a finished erasure: %v", err)
		}
	})
}
