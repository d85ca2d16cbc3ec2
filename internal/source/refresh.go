package source

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/segsync/segsync/internal/store"
)

// Refresher runs the system refresh: pulls of every source scheduled
// "refresh", then, once they all ended (failed ones included), runs of every
// export scheduled "refresh". The progression lives in the database
// (refreshes, refresh_pulls, refresh_runs) and is moved by Advance, which
// the scheduler tick and every finished pull call; a restart loses nothing.
type Refresher struct {
	Store  store.Store
	Puller *Puller
	Log    *slog.Logger
	// Exports lists the ids of the exports a refresh runs (schedule
	// "refresh", attached to a connection).
	Exports func(ctx context.Context) ([]int64, error)
	// WakeRuns, when set, makes the run workers look for work.
	WakeRuns func()
}

// Start records a refresh and queues its pulls. scheduledFor is the cron due
// time (nil for a manual refresh): every process may call Start for it,
// only one refresh is created.
func (r *Refresher) Start(ctx context.Context, trigger, by string, scheduledFor *time.Time) (store.Refresh, bool, error) {
	srcs, err := r.Store.ListSources(ctx)
	if err != nil {
		return store.Refresh{}, false, err
	}
	var ids []int64
	for _, s := range srcs {
		if s.Kind != store.SourceKindPush && s.Schedule == ScheduleRefresh {
			ids = append(ids, s.ID)
		}
	}
	ref, created, err := r.Store.CreateRefresh(ctx, trigger, by, scheduledFor, ids)
	if err != nil {
		return ref, false, err
	}
	if r.Puller != nil {
		r.Puller.Wake()
	}
	// A refresh without sources goes straight to its exports.
	if err := r.Advance(ctx); err != nil {
		return ref, created, err
	}
	ref, err = r.Store.GetRefresh(ctx, ref.ID)
	return ref, created, err
}

// Advance moves every refresh whose pulls ended to its exports, and every
// refresh whose runs ended to done.
func (r *Refresher) Advance(ctx context.Context) error {
	ids, err := r.Exports(ctx)
	if err != nil {
		return fmt.Errorf("listing the refresh's exports: %w", err)
	}
	if err := r.Store.AdvanceRefreshes(ctx, ids); err != nil {
		return err
	}
	if r.WakeRuns != nil {
		r.WakeRuns()
	}
	return nil
}

// Tick queues the pulls of sources whose cron schedule came due (the first
// time a schedule is seen it is only noted), exactly once across processes
// (compare-and-set on the source's last scheduled time), and advances the
// refreshes.
func (r *Refresher) Tick(ctx context.Context, now time.Time) error {
	srcs, err := r.Store.ListSources(ctx)
	if err != nil {
		return err
	}
	now = now.UTC()
	for _, s := range srcs {
		if s.Kind == store.SourceKindPush || s.Schedule == ScheduleRefresh || s.Schedule == ScheduleOff {
			continue
		}
		sched, err := cron.ParseStandard(s.Schedule)
		if err != nil {
			continue
		}
		last := s.LastScheduledAt
		if last.IsZero() {
			last = s.CreatedAt
		}
		if sched.Next(last.UTC()).After(now) {
			continue
		}
		won, err := r.Store.AdvanceSourceSchedule(ctx, s.ID, s.LastScheduledAt, now)
		if err != nil {
			return err
		}
		if won && r.Puller != nil {
			if _, _, err := r.Puller.Enqueue(ctx, s.ID, store.TriggerSchedule, false, ""); err != nil {
				return fmt.Errorf("queueing a pull of source %d: %w", s.ID, err)
			}
		}
	}
	return r.Advance(ctx)
}

// StartScheduled starts the cron refresh due at due (jobs.Refresher).
func (r *Refresher) StartScheduled(ctx context.Context, due time.Time) error {
	ref, created, err := r.Start(ctx, store.TriggerSchedule, "", &due)
	if err == nil && created && r.Log != nil {
		r.Log.Info("scheduled refresh started", "refresh", ref.ID, "due", due, "pulls", len(ref.Pulls))
	}
	return err
}
