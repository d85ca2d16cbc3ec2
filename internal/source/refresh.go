package source

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/schedule"
	"github.com/segsync/segsync/internal/store"
)

// RunQueuer queues the exports whose schedule is "refresh" (*jobs.Runner).
type RunQueuer interface {
	Refresh(ctx context.Context, trigger, by string) ([]store.Run, error)
}

// refreshSchedule names the system refresh's cron in the scheduler state.
const refreshSchedule = "system-refresh"

// Refresh statuses once it ended.
const (
	RefreshSucceeded          = store.RunSucceeded
	RefreshPartiallySucceeded = store.RunPartiallySucceeded
)

// RefreshView is a refresh with its pulls and (once the pulls ended) runs.
type RefreshView struct {
	store.Refresh
	Pulls []store.Pull `json:"pulls"`
	Runs  []store.Run  `json:"runs"`
}

// SetRunQueuer gives the service the runner that queues exports.
func (s *Service) SetRunQueuer(q RunQueuer) { s.runs = q }

// StartRefresh starts a system refresh: a pull of every source whose
// schedule is "refresh"; the exports run once all those pulls ended.
func (s *Service) StartRefresh(ctx context.Context, actor audit.Actor, trigger string) (RefreshView, error) {
	if s.runs == nil {
		return RefreshView{}, fmt.Errorf("this process runs no exports")
	}
	srcs, err := s.store.ListSources(ctx)
	if err != nil {
		return RefreshView{}, err
	}
	var pulled []int64
	for _, src := range srcs {
		if src.Kind != "upload" && src.Schedule == schedule.Refresh {
			pulled = append(pulled, src.ID)
		}
	}
	f, err := s.store.CreateRefresh(ctx, trigger, actor.Email, pulled)
	if err != nil {
		return RefreshView{}, err
	}
	s.wake()
	if err := s.Advance(ctx); err != nil { // no pulls: the runs start now
		return RefreshView{}, err
	}
	return s.GetRefresh(ctx, f.ID)
}

// GetRefresh returns a refresh with its pulls and runs.
func (s *Service) GetRefresh(ctx context.Context, id int64) (RefreshView, error) {
	f, err := s.store.GetRefresh(ctx, id)
	if err != nil {
		return RefreshView{}, err
	}
	v := RefreshView{Refresh: f, Runs: []store.Run{}}
	if v.Pulls, err = s.store.RefreshPulls(ctx, id); err != nil {
		return v, err
	}
	for _, rid := range f.RunIDs {
		run, err := s.store.GetRun(ctx, rid)
		if err != nil {
			continue // the export and its runs were deleted since
		}
		v.Runs = append(v.Runs, run)
	}
	return v, nil
}

func ended(status string) bool { return status != store.RunQueued && status != store.RunRunning }

// Advance moves every refresh on: once its pulls ended, it queues the
// refresh-scheduled exports (a failed pull does not stop them: they run on
// the data as it was, and the refresh says which pull failed); once those
// runs ended, it ends. It is derived from the database alone, so any
// process may drive it and a restart loses nothing.
func (s *Service) Advance(ctx context.Context) error {
	pulling, err := s.store.ListRefreshes(ctx, store.RefreshPulling)
	if err != nil {
		return err
	}
	for _, f := range pulling {
		pulls, err := s.store.RefreshPulls(ctx, f.ID)
		if err != nil {
			return err
		}
		var failed []string
		done := true
		for _, p := range pulls {
			done = done && ended(p.Status)
			if p.Status == store.RunFailed || p.Status == store.RunCancelled {
				name := fmt.Sprint("source ", p.SourceID)
				if src, err := s.store.GetSource(ctx, p.SourceID); err == nil {
					name = src.Name
				}
				failed = append(failed, fmt.Sprintf("pull %d of %q %s: %s", p.ID, name, p.Status, p.Error))
			}
		}
		if !done {
			continue
		}
		runs, err := s.runs.Refresh(ctx, store.TriggerRefresh, f.RequestedBy)
		if err != nil {
			return fmt.Errorf("refresh %d: queueing the exports: %w", f.ID, err)
		}
		ids := make([]int64, len(runs))
		for i, r := range runs {
			ids[i] = r.ID
		}
		msg := ""
		if len(failed) > 0 {
			msg = strings.Join(failed, "; ") + " (the exports ran on the data as it was)"
		}
		if _, err := s.store.SetRefreshState(ctx, f.ID, store.RefreshPulling, store.RefreshRunning, ids, msg); err != nil {
			return err
		}
	}
	running, err := s.store.ListRefreshes(ctx, store.RefreshRunning)
	if err != nil {
		return err
	}
	for _, f := range running {
		status := RefreshSucceeded
		if f.Error != "" {
			status = RefreshPartiallySucceeded
		}
		done := true
		for _, rid := range f.RunIDs {
			run, err := s.store.GetRun(ctx, rid)
			if err != nil {
				continue
			}
			done = done && ended(run.Status)
			if run.Status != store.RunSucceeded {
				status = RefreshPartiallySucceeded
			}
		}
		if done {
			if _, err := s.store.SetRefreshState(ctx, f.ID, store.RefreshRunning, status, f.RunIDs, f.Error); err != nil {
				return err
			}
		}
	}
	return nil
}

// Tick fires the schedules that came due: the system refresh's cron
// (exactly once across processes) and each cron-scheduled source; then it
// moves the refreshes on.
func (w *Worker) Tick(ctx context.Context, now time.Time) error {
	w.init()
	now = now.UTC()
	if w.RefreshSchedule != "" && w.Service.runs != nil {
		sched, err := schedule.ParseCron(w.RefreshSchedule)
		if err != nil {
			return fmt.Errorf("the refresh schedule: %w", err)
		}
		last, err := w.Store.NamedScheduleLast(ctx, refreshSchedule)
		if err != nil {
			return err
		}
		switch {
		case last.IsZero(): // first start: note the time, fire from then on
			if _, err := w.Store.AdvanceNamedSchedule(ctx, refreshSchedule, time.Time{}, now); err != nil {
				return err
			}
		case !sched.Next(last).After(now):
			won, err := w.Store.AdvanceNamedSchedule(ctx, refreshSchedule, last, now)
			if err != nil {
				return err
			}
			if won {
				if _, err := w.Service.StartRefresh(ctx, audit.System, store.TriggerSchedule); err != nil {
					return fmt.Errorf("starting the scheduled refresh: %w", err)
				}
			}
		}
	}
	srcs, err := w.Store.ListSources(ctx)
	if err != nil {
		return err
	}
	for _, src := range srcs {
		if src.Kind == "upload" {
			continue
		}
		sc, err := schedule.Parse(src.Schedule)
		if err != nil || sc.Kind != schedule.KindCron {
			continue
		}
		last := src.LastScheduledAt
		if last.IsZero() {
			last = src.CreatedAt
		}
		if sc.Cron.Next(last).After(now) {
			continue
		}
		won, err := w.Store.AdvanceSourceSchedule(ctx, src.ID, src.LastScheduledAt, now)
		if err != nil {
			return err
		}
		if won {
			if _, _, err := w.Store.EnqueuePull(ctx, src.ID, nil, store.TriggerSchedule, false, ""); err != nil {
				return err
			}
			w.Wake()
		}
	}
	return w.Service.Advance(ctx)
}
