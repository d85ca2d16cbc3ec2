package erasure_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/erasure"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/mailchimp/emulator/emulatortest"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/syncer"
)

// clients hands out one emulator client per connection; the deleter of a
// connection may be wrapped to fail or to stop the worker.
type clients struct {
	mc   map[int64]*mailchimp.Client
	wrap func(conn int64, d erasure.Deleter) erasure.Deleter
}

func (c clients) DeleterFor(_ context.Context, id int64) (erasure.Deleter, error) {
	mc, ok := c.mc[id]
	if !ok {
		return nil, errors.New("no such connection")
	}
	if c.wrap != nil {
		return c.wrap(id, mc), nil
	}
	return mc, nil
}

type deleterFunc func(ctx context.Context, listID, email string) error

func (f deleterFunc) DeletePermanent(ctx context.Context, listID, email string) error {
	return f(ctx, listID, email)
}

func newClient(t *testing.T, srv *emulator.Server, key string) *mailchimp.Client {
	mc, err := mailchimp.New(mailchimp.Config{APIKey: key, BaseURL: srv.URL, Limiter: mailchimp.NewLocalLimiter(10),
		RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// TestErasureAcrossAccounts: one person sent by two exports to two
// audiences on two Mailchimp accounts is erased: removed from segsync at
// once; the first worker dies after the first audience; the job resumes
// under a new claim (the dead worker is fenced out), a failing audience is
// retried, and in the end the contact is permanently deleted everywhere.
// A later run with the same address re-imported never re-creates it.
func TestErasureAcrossAccounts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		srv := emulatortest.Start(t, emulator.Options{APIKeys: []string{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-us1", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-us1"}})
		keys := srv.Keys()
		listA, err := srv.CreateList(keys[0], "A")
		if err != nil {
			t.Fatal(err)
		}
		listB, err := srv.CreateList(keys[1], "B")
		if err != nil {
			t.Fatal(err)
		}
		mcs := map[int64]*mailchimp.Client{1: newClient(t, srv, keys[0]), 2: newClient(t, srv, keys[1])}
		if _, err := db.UpsertProfiles(ctx, []store.ProfilePatch{
			{CustomerID: "c1", Attrs: `{"email":"ann@shop.io","tier":"gold"}`},
			{CustomerID: "c2", Attrs: `{"email":"bob@shop.io","tier":"gold"}`},
		}); err != nil {
			t.Fatal(err)
		}
		r, err := segment.Parse([]byte(`{"attribute":"tier","op":"eq","value":"gold"}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		seg := store.Segment{Name: "Gold", Rule: r}
		if err := db.CreateSegment(ctx, &seg); err != nil {
			t.Fatal(err)
		}
		var exps []store.Export
		for i, list := range []string{listA, listB} {
			conn := int64(i + 1)
			e := store.Export{Name: list, ConnectionID: &conn, AudienceID: list, SegmentIDs: []int64{seg.ID},
				Mapping: store.Mapping{Email: "email"}, StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
			if err := db.CreateExport(ctx, &e); err != nil {
				t.Fatal(err)
			}
			exps = append(exps, e)
		}
		engine := &syncer.Engine{Store: db, Source: db}
		runAll := func(dry bool) {
			for i, e := range exps {
				run, _, err := db.EnqueueRun(ctx, e.ID, store.TriggerManual, dry, "")
				if err != nil {
					t.Fatal(err)
				}
				var lease store.RunLease
				if dry { // claimed, so that its sample can be saved with it
					claimed, ok, err := db.ClaimRun(ctx, "test", time.Minute)
					if err != nil || !ok || claimed.ID != run.ID {
						t.Fatalf("claiming dry run %d: %+v %v %v", run.ID, claimed, ok, err)
					}
					lease = store.RunLease{RunID: run.ID, Token: claimed.LeaseToken}
				}
				res, err := engine.Execute(ctx, e, mcs[int64(i+1)], syncer.Options{RunID: run.ID, DryRun: dry})
				if err != nil {
					t.Fatal(err)
				}
				if dry {
					if err := db.FinishRun(ctx, lease, store.RunSucceeded, res.Progress, res.Counts, res.Timings, res.Sample, ""); err != nil {
						t.Logf("saving the dry run's sample: %v", err)
					}
				}
			}
		}
		runAll(false)
		for _, l := range []string{listA, listB} {
			if _, err := srv.Contact(l, "ann@shop.io"); err != nil {
				t.Fatalf("ann not sent to %s: %v", l, err)
			}
		}
		if err := db.AddRejections(ctx, 1, []store.Rejection{{Email: "ann@shop.io", CustomerID: "c1", Reason: "x", Kind: "transient"}}); err != nil {
			t.Fatal(err)
		}

		log := audit.New(db, nil)
		var stop atomic.Bool
		wctx, kill := context.WithCancel(ctx)
		failB := 1 // the first attempt at audience B fails
		cl := clients{mc: mcs, wrap: func(conn int64, d erasure.Deleter) erasure.Deleter {
			return deleterFunc(func(ctx context.Context, list, email string) error {
				if stop.Load() {
					kill() // the worker dies after its first deletion
					return context.Canceled
				}
				if conn == 2 && failB > 0 && !stop.Load() {
					failB--
					return &mailchimp.Error{Status: 503, Title: "Service Unavailable"}
				}
				err := d.DeletePermanent(ctx, list, email)
				stop.Store(conn == 1 && failB > 0)
				return err
			})
		}}
		first := &erasure.Service{Store: db, Clients: cl, Audit: log, Owner: "w1", Lease: 50 * time.Millisecond,
			Backoff: func(int) time.Duration { return 0 }}
		e, err := first.Request(ctx, audit.Actor{ID: 1, Email: "admin@shop.io"}, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Audiences) != 2 || e.Status != store.ErasurePending {
			t.Fatalf("erasure: %+v", e)
		}
		// Removed from segsync at once.
		if _, err := db.GetProfile(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("profile after the request: %v", err)
		}
		for _, ex := range exps {
			_ = db.StreamSynced(ctx, ex.ID, func(s store.Synced) error {
				if s.CustomerID == "c1" || s.Email == "ann@shop.io" {
					t.Errorf("synced row left: %+v", s)
				}
				return nil
			})
		}
		_ = db.StreamRejections(ctx, 1, func(r store.Rejection) error {
			t.Errorf("rejection left: %+v", r)
			return nil
		})

		// The first worker dies after deleting from audience A.
		if _, err := first.RunOnce(wctx); err == nil {
			t.Fatalf("the dying worker ended well")
		}
		got, _ := db.GetErasure(ctx, e.ID)
		if got.Status != store.ErasureRunning || got.Audiences[0].Result != store.ErasureDeleted || got.Audiences[1].Result != store.ErasurePendingTarget {
			t.Fatalf("after the crash: %+v", got)
		}
		stop.Store(false)
		time.Sleep(60 * time.Millisecond) // the dead worker's lease runs out
		second := &erasure.Service{Store: db, Clients: cl, Audit: log, Owner: "w2", Lease: time.Minute,
			Backoff: func(int) time.Duration { return 0 }}
		for i := 0; i < 3; i++ {
			if _, err := second.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.RecordErasureTarget(ctx, e.ID, got.Token, 1, store.ErasureFailed, "late"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("the dead worker's token still counts: %v", err)
		}
		got, _ = db.GetErasure(ctx, e.ID)
		if got.Status != store.ErasureSucceeded || got.Audiences[0].Result != store.ErasureDeleted || got.Audiences[1].Result != store.ErasureDeleted {
			t.Fatalf("after resuming: %+v", got)
		}
		for _, l := range []string{listA, listB} {
			if _, err := srv.Contact(l, "ann@shop.io"); err == nil || !srv.Forgotten(l, "ann@shop.io") {
				t.Errorf("ann still in %s (or not permanently deleted): %v", l, err)
			}
			if _, err := srv.Contact(l, "bob@shop.io"); err != nil {
				t.Errorf("bob lost from %s: %v", l, err)
			}
		}
		evs, err := db.ListAuditEvents(ctx, store.AuditFilter{Kinds: []string{"profile"}})
		if err != nil || len(evs) != 2 {
			t.Fatalf("audit: %d events, %v", len(evs), err)
		}
		for i, action := range []string{erasure.ActionDone, erasure.ActionRequest} {
			if ev := evs[i]; ev.Action != action || ev.ObjectID != "c1" || ev.Detail["erasure"] != float64(e.ID) {
				t.Errorf("audit event %d: %+v, want %s of customer c1 naming erasure %d", i, ev, action, e.ID)
			}
		}
		b, _ := json.Marshal(evs)
		if strings.Contains(string(b), "ann@") || !strings.Contains(string(b), listB) {
			t.Errorf("audit events: %s", b)
		}

		// The same address imported again is a new profile; Mailchimp
		// refuses to bring back a permanently deleted contact.
		if _, err := db.UpsertProfiles(ctx, []store.ProfilePatch{{CustomerID: "c1", Attrs: `{"email":"ann@shop.io","tier":"gold"}`}}); err != nil {
			t.Fatal(err)
		}
		runAll(false)
		for _, l := range []string{listA, listB} {
			if _, err := srv.Contact(l, "ann@shop.io"); err == nil {
				t.Errorf("ann re-created in %s", l)
			}
		}
	})
}

// TestErasureUnknown: nothing known of the customer is ErrNotFound.
func TestErasureUnknown(t *testing.T) {
	db := dbtest.SQLite(t)
	s := &erasure.Service{Store: db}
	if _, err := s.Request(context.Background(), audit.System, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

// TestErasureRenewsItsLease: a delete that takes several leases (Mailchimp
// retrying) keeps the claim: no other worker takes the job meanwhile, and
// the slow worker's results count.
func TestErasureRenewsItsLease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		oneContact(t, db)
		const lease = time.Second
		other := &erasure.Service{Store: db, Owner: "w2", Lease: lease}
		var stolen atomic.Bool
		slow := clients{wrap: func(int64, erasure.Deleter) erasure.Deleter {
			return deleterFunc(func(ctx context.Context, _, _ string) error {
				// Three leases long; meanwhile another worker keeps trying.
				for end := time.Now().Add(3 * lease); time.Now().Before(end); time.Sleep(lease / 5) {
					if _, ok, err := db.ClaimErasure(ctx, "w2", lease); err != nil || ok {
						stolen.Store(true)
					}
				}
				return nil
			})
		}, mc: map[int64]*mailchimp.Client{1: nil}}
		w := &erasure.Service{Store: db, Clients: slow, Owner: "w1", Lease: lease}
		e, err := w.Request(ctx, audit.System, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if did, err := w.RunOnce(ctx); !did || err != nil {
			t.Fatalf("the slow worker: %v %v", did, err)
		}
		if stolen.Load() {
			t.Errorf("another worker claimed the job while its worker was still deleting")
		}
		got, _ := db.GetErasure(ctx, e.ID)
		if got.Status != store.ErasureSucceeded || got.Attempts != 1 || got.Audiences[0].Result != store.ErasureDeleted {
			t.Errorf("after the slow delete: %+v", got)
		}
		if did, err := other.RunOnce(ctx); did || err != nil {
			t.Errorf("the finished job was claimed again: %v %v", did, err)
		}
	})
}

// oneContact stores customer c1 (ann@shop.io), sent to audience "aud" of
// connection 1.
func oneContact(t *testing.T, db *sqldb.DB) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.UpsertProfiles(ctx, []store.ProfilePatch{{CustomerID: "c1", Attrs: `{"email":"ann@shop.io"}`}}); err != nil {
		t.Fatal(err)
	}
	conn := int64(1)
	exp := store.Export{Name: "x", ConnectionID: &conn, AudienceID: "aud", Mapping: store.Mapping{Email: "email"},
		StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
	if err := db.CreateExport(ctx, &exp); err != nil {
		t.Fatal(err)
	}
	if err := db.ApplySynced(ctx, exp.ID, []store.SyncedChange{
		{Hash: "h1", Set: &store.Synced{Hash: "h1", Email: "ann@shop.io", CustomerID: "c1", InAudience: true}},
	}); err != nil {
		t.Fatal(err)
	}
}

// TestErasureHandedBackOnShutdown: a worker shut down in the middle of a
// delete hands the job back; the next worker resumes it at once, not
// after the lease.
func TestErasureHandedBackOnShutdown(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		oneContact(t, db)
		started := make(chan struct{})
		stuck := clients{wrap: func(int64, erasure.Deleter) erasure.Deleter {
			return deleterFunc(func(ctx context.Context, _, _ string) error {
				close(started)
				<-ctx.Done() // Mailchimp does not answer before the shutdown
				return ctx.Err()
			})
		}, mc: map[int64]*mailchimp.Client{1: nil}}
		w := &erasure.Service{Store: db, Clients: stuck, Owner: "w1", Lease: time.Hour}
		e, err := w.Request(context.Background(), audit.System, "c1")
		if err != nil {
			t.Fatal(err)
		}
		ctx, shutdown := context.WithCancel(context.Background())
		go func() { <-started; shutdown() }()
		if did, err := w.RunOnce(ctx); !did || err == nil {
			t.Fatalf("the worker shut down mid-delete: %v %v", did, err)
		}
		time.Sleep(2 * time.Millisecond) // past the handed-back lease's end
		got, ok, err := db.ClaimErasure(context.Background(), "w2", time.Hour)
		if err != nil || !ok || got.ID != e.ID {
			t.Fatalf("the next worker could not resume the job at once: %+v %v %v", got, ok, err)
		}
	})
}
