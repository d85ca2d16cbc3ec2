// Package jobs runs exports as durable jobs. The runs table is the queue:
// a run is queued, claimed with a lease that its worker renews by heartbeat,
// and finished; a run whose lease expired (its process died) is claimed
// again and resumed, which for the engine means re-planning from the desired
// and the synced state. Single flight per export is enforced by unique
// indexes on the runs table, so it holds across processes sharing one
// PostgreSQL database. The scheduler queues exports by their cron schedule
// or with the system refresh. docs/engine.md says why this is not River.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/schedule"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/syncer"
)

// Store is the part of the store the runner uses.
type Store interface {
	GetExport(ctx context.Context, id int64) (store.Export, error)
	ListExports(ctx context.Context) ([]store.Export, error)
	LastScheduled(ctx context.Context, exportID int64) (time.Time, error)
	SetLastScheduled(ctx context.Context, exportID int64, t time.Time) error
	AdvanceSchedule(ctx context.Context, exportID int64, prev, next time.Time) (bool, error)
	EnqueueRun(ctx context.Context, exportID int64, trigger string, dryRun bool, requestedBy string) (store.Run, bool, error)
	GetRun(ctx context.Context, id int64) (store.Run, error)
	ClaimRun(ctx context.Context, owner string, lease time.Duration) (store.Run, bool, error)
	HeartbeatRun(ctx context.Context, l store.RunLease, lease time.Duration, p store.Progress, c store.RunCounts, t store.RunTimings) (bool, error)
	ReleaseRun(ctx context.Context, l store.RunLease, p store.Progress, c store.RunCounts, t store.RunTimings) error
	FinishRun(ctx context.Context, l store.RunLease, status string, p store.Progress, c store.RunCounts, t store.RunTimings, sample store.RunSample, errMsg string) error
	CancelRun(ctx context.Context, id int64) (store.Run, error)
	RequestFullResync(ctx context.Context, exportID int64) error
}

// Clients gives the Mailchimp client of a connection; *connection.Service
// implements it.
type Clients interface {
	ClientFor(ctx context.Context, connectionID int64) (*mailchimp.Client, error)
}

// refusalRecorder is implemented by Clients that can mark a connection
// whose credential Mailchimp refused (*connection.Service).
type refusalRecorder interface {
	RecordRefusal(ctx context.Context, connectionID int64, msg string) error
}

// Runner executes queued runs and queues scheduled ones.
type Runner struct {
	Store   Store
	Engine  *syncer.Engine
	Clients Clients
	Log     *slog.Logger
	// Workers is how many runs this process executes at once (default 2).
	Workers int
	// Lease is how long a claimed run stays ours without a heartbeat
	// (default 20 s); a dead process's runs are resumed after it.
	Lease time.Duration
	// Poll is how often idle workers look for work (default 1 s).
	Poll time.Duration
	// RefreshSchedule is the system refresh's cron expression (UTC).
	RefreshSchedule string
	// SchedulerTick is how often schedules are evaluated (default 20 s).
	SchedulerTick time.Duration
	// ExternalRefresh says that the system refresh is driven elsewhere
	// (package source: it pulls the sources, then calls Refresh), so the
	// scheduler leaves the refresh-scheduled exports alone.
	ExternalRefresh bool
	// Clock is the process's clock (default time.Now). Who holds a run is
	// decided by the database's clock alone; the worker uses this one only
	// to measure how long ago its last heartbeat was sent (leaseKeeper),
	// so tests can set it ahead or behind to show that changes nothing.
	Clock func() time.Time
	// Webhooks, when set, makes sure before each run (dry runs aside) that
	// the export's webhook is still registered (*hooks.Registrar); a
	// failure is logged there and does not stop the run.
	Webhooks interface {
		Ensure(ctx context.Context, e store.Export) error
	}

	owner string
	wake  chan struct{}
	once  sync.Once
}

func (r *Runner) init() {
	r.once.Do(func() {
		var b [4]byte
		_, _ = rand.Read(b[:])
		host, _ := os.Hostname()
		r.owner = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
		r.wake = make(chan struct{}, 1)
		if r.Workers <= 0 {
			r.Workers = 2
		}
		if r.Lease <= 0 {
			r.Lease = 20 * time.Second
		}
		if r.Poll <= 0 {
			r.Poll = time.Second
		}
		if r.SchedulerTick <= 0 {
			r.SchedulerTick = 20 * time.Second
		}
		if r.RefreshSchedule == "" {
			r.RefreshSchedule = "0 2 * * *"
		}
		if r.Log == nil {
			r.Log = slog.New(slog.DiscardHandler)
		}
		if r.Clock == nil {
			r.Clock = time.Now
		}
	})
}

// Enqueue queues a run of an export (single flight: an already queued run
// of the same kind is returned instead, with created false).
// RequestFullResync makes the export's next run plan every profile, not
// only those changed since its last complete run (a "Full re-sync").
func (r *Runner) RequestFullResync(ctx context.Context, exportID int64) error {
	return r.Store.RequestFullResync(ctx, exportID)
}

func (r *Runner) Enqueue(ctx context.Context, exportID int64, trigger string, dryRun bool, by string) (store.Run, bool, error) {
	r.init()
	run, created, err := r.Store.EnqueueRun(ctx, exportID, trigger, dryRun, by)
	if err != nil {
		return run, false, err
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return run, created, nil
}

// Refresh queues every attached export whose schedule is "refresh".
func (r *Runner) Refresh(ctx context.Context, trigger, by string) ([]store.Run, error) {
	exps, err := r.Store.ListExports(ctx)
	if err != nil {
		return nil, err
	}
	var runs []store.Run
	for _, e := range exps {
		if e.Schedule != schedule.Refresh || e.ConnectionID == nil {
			continue
		}
		run, _, err := r.Enqueue(ctx, e.ID, trigger, false, by)
		if err != nil {
			return runs, fmt.Errorf("queueing export %d: %w", e.ID, err)
		}
		runs = append(runs, run)
	}
	return runs, nil
}

// Cancel cancels a queued run, or asks a running one to stop (it stops
// within a heartbeat).
func (r *Runner) Cancel(ctx context.Context, runID int64) (store.Run, error) {
	return r.Store.CancelRun(ctx, runID)
}

// Run executes runs and schedules until ctx ends. Runs in progress are
// left with an expired lease, so whichever process starts next resumes them.
func (r *Runner) Run(ctx context.Context) error {
	r.init()
	r.Log.Info("run workers started", "owner", r.owner, "workers", r.Workers)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.scheduler(ctx)
	}()
	slots := make(chan struct{}, r.Workers)
	tick := time.NewTicker(r.Poll)
	defer tick.Stop()
	for {
		// Claim as many runs as there are free slots.
		for {
			select {
			case slots <- struct{}{}:
			default:
				goto wait
			}
			claimSent := r.Clock()
			run, ok, err := r.Store.ClaimRun(ctx, r.owner, r.Lease)
			if err != nil || !ok {
				<-slots
				if err != nil && ctx.Err() == nil {
					r.Log.Error("claiming a run", "err", err)
				}
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				r.execute(ctx, run, claimSent)
				select { // a slot is free: look for more work now
				case r.wake <- struct{}{}:
				default:
				}
			}()
		}
	wait:
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
		case <-r.wake:
		}
	}
}

var errCancelRequested = errors.New("cancelled on request")

// execute runs one claimed run to its end, or until its claim is lost.
// Every write is fenced by the claim (store.RunLease) in the database; on
// top of that the worker stops itself (cancels its calls and writes
// nothing more) once it could not renew the lease for 0.8 × the lease.
func (r *Runner) execute(parent context.Context, run store.Run, claimSent time.Time) {
	log := r.Log.With("run", run.ID, "export", run.ExportID)
	lease := store.RunLease{RunID: run.ID, Token: run.LeaseToken}
	keeper := newLeaseKeeper(r.Clock, r.Lease, claimSent)
	abandon := func(why error) {
		log.Warn("run abandoned: lease lost; it sends and records nothing more", "why", why.Error())
	}
	finish := func(status string, res syncer.Result, msg string) {
		if err := keeper.check(); err != nil {
			abandon(err)
			return
		}
		err := r.Store.FinishRun(context.WithoutCancel(parent), lease, status, res.Progress, res.Counts, res.Timings, res.Sample, msg)
		if errors.Is(err, store.ErrLeaseLost) {
			abandon(err)
			return
		}
		if err != nil {
			log.Error("finishing run", "err", err)
			return
		}
		log.Info("run finished", "status", status, "error", msg, "done", res.Progress.Done, "total", res.Progress.Total)
	}
	if run.Attempts > 1 {
		log.Info("resuming run", "attempt", run.Attempts)
	} else {
		log.Info("run started", "trigger", run.Trigger, "dry_run", run.DryRun)
	}
	// Shutting down before the run started: hand it back, never fail it.
	handBack := func() {
		if err := r.Store.ReleaseRun(context.WithoutCancel(parent), lease, run.Progress, run.Counts, run.Timings); err != nil {
			log.Warn("handing the run back", "err", err)
		}
		log.Info("run interrupted by shutdown before it started; it resumes on the next start")
	}
	exp, err := r.Store.GetExport(parent, run.ExportID)
	if err != nil && parent.Err() != nil {
		handBack()
		return
	}
	if err != nil {
		finish(store.RunFailed, syncer.Result{}, "reading the export: "+err.Error())
		return
	}
	if exp.ConnectionID == nil {
		finish(store.RunFailed, syncer.Result{}, "the export is detached from its connection; give it a connection to run it")
		return
	}
	mc, err := r.Clients.ClientFor(parent, *exp.ConnectionID)
	if err != nil && parent.Err() != nil {
		handBack()
		return
	}
	if err != nil {
		finish(store.RunFailed, syncer.Result{}, "opening the connection: "+err.Error())
		return
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	tracker := syncer.NewTracker(run.Progress, run.Counts, run.Timings)
	if run.CancelRequested {
		cancel(errCancelRequested)
	}
	lost := func(err error) { // whichever goroutine notices first
		log.Warn("lease lost: stopping the run at once", "why", err.Error())
		cancel(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the watchdog: stops the run when the claim can no longer be trusted
		defer wg.Done()
		for {
			t := time.NewTimer(max(keeper.remaining(), time.Millisecond))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if err := keeper.check(); err != nil {
				lost(err)
				return
			}
		}
	}()
	go func() { // the heartbeat
		defer wg.Done()
		t := time.NewTicker(r.heartbeat())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := keeper.check(); err != nil { // before the watchdog noticed
				lost(err)
				return
			}
			// Through the tracker: never counts older than the recorder
			// saved with its acknowledgements. A database that does not
			// answer is given up on when the claim could no longer be
			// trusted anyway.
			sent := r.Clock()
			hctx, hcancel := context.WithTimeout(ctx, max(keeper.remaining(), time.Millisecond))
			var cancelReq bool
			err := tracker.Save(func(p store.Progress, c store.RunCounts, t store.RunTimings) (err error) {
				cancelReq, err = r.Store.HeartbeatRun(hctx, lease, r.Lease, p, c, t)
				return err
			})
			hcancel()
			switch {
			case errors.Is(err, store.ErrLeaseLost):
				keeper.lose(err)
				lost(keeper.check())
				return
			case err != nil:
				log.Warn("heartbeat failed; the run stops unless the lease is renewed in time",
					"err", err, "time_left", keeper.remaining().Round(time.Millisecond))
			default:
				keeper.renewedAt(sent)
				if cancelReq {
					cancel(errCancelRequested)
					return
				}
			}
		}
	}()
	// Every Mailchimp request of the run asks the keeper right before it
	// leaves: a worker that woke from a pause sends nothing, even before the
	// watchdog has cancelled the run.
	gated := mailchimp.WithSendGate(ctx, keeper.check)
	if r.Webhooks != nil && !run.DryRun {
		_ = r.Webhooks.Ensure(gated, exp)
	}
	res, err := r.Engine.Execute(gated, exp, mc, syncer.Options{RunID: run.ID, LeaseToken: run.LeaseToken, DryRun: run.DryRun, Tracker: tracker})
	cause := context.Cause(ctx)
	cancel(nil)
	wg.Wait()
	if errors.Is(err, store.ErrLeaseLost) {
		keeper.lose(err)
	}
	if lost := keeper.check(); lost != nil || errors.Is(cause, errLeaseLost) {
		if lost == nil {
			lost = cause
		}
		abandon(lost)
		return
	}
	switch {
	case err == nil: // complete, even if a cancel or shutdown came at its very end
		finish(res.Status, res, "")
	case errors.Is(cause, errCancelRequested):
		finish(store.RunCancelled, res, "cancelled on request")
	case parent.Err() != nil:
		// Shutting down: give the lease back at once so the next process
		// resumes the run without waiting for it to expire.
		p, c := tracker.Snapshot()
		if err := r.Store.ReleaseRun(context.WithoutCancel(parent), lease, p, c, tracker.Timings()); err != nil {
			log.Warn("handing the run back", "err", err)
		}
		log.Info("run interrupted by shutdown; it resumes on the next start")
	default:
		if errors.Is(err, syncer.ErrAuth) {
			// The connection shows the refusal, not only this run.
			if rec, ok := r.Clients.(refusalRecorder); ok {
				if rerr := rec.RecordRefusal(context.WithoutCancel(parent), *exp.ConnectionID, err.Error()); rerr != nil {
					log.Warn("recording the credential refusal on the connection", "err", rerr)
				}
			}
		}
		finish(store.RunFailed, res, err.Error())
	}
}

// heartbeat is how often a running run saves its progress, renews its lease
// and looks for a cancel request: every second (more often for short leases).
func (r *Runner) heartbeat() time.Duration {
	return max(min(r.Lease/4, time.Second), 50*time.Millisecond)
}

// scheduler queues exports whose schedule came due.
func (r *Runner) scheduler(ctx context.Context) {
	t := time.NewTicker(r.SchedulerTick)
	defer t.Stop()
	for {
		if err := r.Tick(ctx, time.Now()); err != nil && ctx.Err() == nil {
			r.Log.Error("scheduler", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick queues every export whose schedule had a due time after its last
// scheduled run and at or before now. A schedule first seen is only noted.
func (r *Runner) Tick(ctx context.Context, now time.Time) error {
	r.init()
	refresh, err := schedule.ParseCron(r.RefreshSchedule)
	if err != nil {
		return fmt.Errorf("SEGSYNC_REFRESH_SCHEDULE: %w", err)
	}
	exps, err := r.Store.ListExports(ctx)
	if err != nil {
		return err
	}
	now = now.UTC()
	for _, e := range exps {
		if e.ConnectionID == nil {
			continue
		}
		sc, err := schedule.Parse(e.Schedule)
		if err != nil {
			r.Log.Warn("export has an invalid schedule", "export", e.ID, "schedule", e.Schedule, "err", err)
			continue
		}
		if sc.Kind == schedule.Off || (sc.Kind == schedule.Refresh && r.ExternalRefresh) {
			continue
		}
		sched, trigger := refresh, store.TriggerRefresh
		if sc.Kind == schedule.KindCron {
			sched, trigger = sc.Cron, store.TriggerSchedule
		}
		prev, err := r.Store.LastScheduled(ctx, e.ID)
		if err != nil {
			return err
		}
		last := prev
		if last.IsZero() {
			last = e.CreatedAt
		}
		if next := sched.Next(last); next.After(now) {
			continue
		}
		// Every process evaluates the schedules; the one that advances
		// the export's schedule first queues the run, so it fires once.
		won, err := r.Store.AdvanceSchedule(ctx, e.ID, prev, now)
		if err != nil {
			return err
		}
		if !won {
			r.Log.Debug("schedule already fired in another process", "export", e.ID)
			continue
		}
		if _, _, err := r.Enqueue(ctx, e.ID, trigger, false, ""); err != nil {
			return fmt.Errorf("queueing export %d: %w", e.ID, err)
		}
	}
	r.Log.Debug("schedules checked", "exports", len(exps))
	return nil
}
