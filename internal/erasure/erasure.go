// Package erasure carries out right-to-erasure requests (SPEC section 12).
// A request removes the person from segsync at once, in one transaction
// (profile, synced state, run rejections and samples: no later run can send
// it again), and leaves a durable job: permanently deleting the contact
// from every audience any export sent it to, across connections and
// Mailchimp accounts. Workers claim jobs with a lease and a fresh fencing
// token, resume them after a crash (the lease expires), and retry failed
// audiences with backoff until every one answered deleted or not_found.
// The audit log records the request and the audiences, never the address.
package erasure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/store"
)

// Audit actions, recorded on the profile (the customer id), with the
// erasure's id in the detail.
const (
	ActionRequest = audit.ProfileErase
	ActionDone    = audit.ProfileErased
)

// Deleter is the Mailchimp call an erasure needs; *mailchimp.Client has it.
type Deleter interface {
	DeletePermanent(ctx context.Context, listID, email string) error
}

// Clients gives the Mailchimp client of a connection.
type Clients interface {
	DeleterFor(ctx context.Context, connectionID int64) (Deleter, error)
}

// Service requests and carries out erasures. Fill the fields.
type Service struct {
	Store   store.ErasureStore
	Clients Clients
	Audit   audit.Recorder // may be nil
	Log     *slog.Logger
	// Owner names this process in leases; Lease is how long a claim holds
	// without renewal (default 2 min; a crashed worker's job is resumed
	// after it). A working worker renews it every third of the lease.
	Owner string
	Lease time.Duration
	// Backoff is the wait before retrying a job with failed audiences
	// after attempt n (default 30 s · 2^(n-1), at most 1 h).
	Backoff func(attempt int) time.Duration
	// Poll is how often Work looks for jobs (default 2 s).
	Poll time.Duration
}

// Request erases a person: removed from segsync now, from Mailchimp by the
// workers. ErrNotFound when segsync knows nothing of customerID.
func (s *Service) Request(ctx context.Context, actor audit.Actor, customerID string) (store.Erasure, error) {
	e, err := s.Store.CreateErasure(ctx, customerID, actor.Email)
	if err != nil {
		return store.Erasure{}, err
	}
	s.record(ctx, actor, ActionRequest, e)
	s.logger().Info("erasure requested", "erasure", e.ID, "audiences", len(e.Audiences))
	return e, nil
}

func (s *Service) record(ctx context.Context, actor audit.Actor, action string, e store.Erasure) {
	if s.Audit == nil {
		return
	}
	_ = s.Audit.Record(ctx, actor, action, "profile", e.CustomerID, detail(e))
}

// detail is an erasure's audit detail. The customer id is kept as the
// proof of what was erased; the address never enters the log.
func detail(e store.Erasure) map[string]any {
	auds := make([]map[string]any, len(e.Audiences))
	for i, t := range e.Audiences {
		a := map[string]any{"connection_id": t.ConnectionID, "audience_id": t.AudienceID}
		if t.Result != "" {
			a["result"] = t.Result
		}
		auds[i] = a
	}
	return map[string]any{"erasure": e.ID, "audiences": auds}
}

func (s *Service) logger() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Service) lease() time.Duration {
	if s.Lease <= 0 {
		return 2 * time.Minute
	}
	return s.Lease
}

func (s *Service) backoff(attempt int) time.Duration {
	if s.Backoff != nil {
		return s.Backoff(attempt)
	}
	d := 30 * time.Second
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// Work carries out erasures until ctx ends.
func (s *Service) Work(ctx context.Context) {
	poll := s.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		for {
			did, err := s.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				s.logger().Warn("erasure worker", "err", err)
			}
			if !did || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce claims one due erasure and carries it out; false when there was
// none.
func (s *Service) RunOnce(ctx context.Context) (bool, error) {
	e, ok, err := s.Store.ClaimErasure(ctx, s.Owner, s.lease())
	if err != nil || !ok {
		return false, err
	}
	return true, s.carryOut(ctx, e)
}

// carryOut deletes every target not yet done; results are recorded as
// they come, so a resumed job starts where the last one stopped. The claim
// is renewed while it works (one delete may take minutes of retries), so
// the lease can be short: a crashed worker's job is resumed soon after.
func (s *Service) carryOut(ctx context.Context, e store.Erasure) error {
	work, lost := context.WithCancelCause(ctx)
	renewing := make(chan struct{})
	go func() { defer close(renewing); s.keepLease(work, lost, e) }()
	err := s.deleteAll(work, e)
	lost(nil)
	<-renewing
	if cause := context.Cause(work); errors.Is(cause, store.ErrConflict) {
		return cause
	}
	if ctx.Err() != nil && err != nil {
		// Shutting down: hand the job back (its lease ends now), so the
		// next process resumes it at once instead of after the lease.
		if rerr := s.Store.RenewErasure(context.WithoutCancel(ctx), e.ID, e.Token, 0); rerr != nil {
			s.logger().Warn("handing an erasure back", "erasure", e.ID, "err", rerr)
		}
	}
	return err
}

// keepLease renews the claim every third of the lease until ctx ends, and
// cancels the work with the conflict once another worker holds the job.
func (s *Service) keepLease(ctx context.Context, lost context.CancelCauseFunc, e store.Erasure) {
	t := time.NewTicker(s.lease() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.Store.RenewErasure(ctx, e.ID, e.Token, s.lease())
		switch {
		case errors.Is(err, store.ErrConflict):
			lost(err)
			return
		case err != nil && ctx.Err() == nil:
			s.logger().Warn("renewing an erasure's lease", "erasure", e.ID, "err", err)
		}
	}
}

// deleteAll carries out the targets of a claimed erasure and ends the claim.
func (s *Service) deleteAll(ctx context.Context, e store.Erasure) error {
	failed := 0
	var lastErr string
	for i := range e.Audiences {
		t := &e.Audiences[i]
		if t.Result == store.ErasureDeleted || t.Result == store.ErasureNotFound {
			continue
		}
		result, msg := s.deleteOne(ctx, *t)
		if ctx.Err() != nil {
			return ctx.Err() // the lease runs out; another claim resumes
		}
		if err := s.Store.RecordErasureTarget(ctx, e.ID, e.Token, t.Seq, result, msg); err != nil {
			return err // fenced out: someone else holds the job now
		}
		t.Result, t.Error = result, msg
		if result == store.ErasureFailed {
			failed++
			lastErr = msg
		}
	}
	if failed > 0 {
		wait := s.backoff(e.Attempts)
		s.logger().Warn("erasure incomplete; retrying", "erasure", e.ID, "failed", failed, "in", wait)
		return s.Store.FinishErasure(ctx, e.ID, e.Token, false, lastErr, time.Now().Add(wait), nil)
	}
	done := audit.Event(audit.System, ActionDone, "profile", e.CustomerID, detail(e))
	if err := s.Store.FinishErasure(ctx, e.ID, e.Token, true, "", time.Time{}, &done); err != nil {
		return err
	}
	s.logger().Info("erasure done", "erasure", e.ID, "audiences", len(e.Audiences))
	return nil
}

// deleteOne permanently deletes one contact.
func (s *Service) deleteOne(ctx context.Context, t store.ErasureTarget) (result, msg string) {
	mc, err := s.Clients.DeleterFor(ctx, t.ConnectionID)
	if err != nil {
		return store.ErasureFailed, fmt.Sprintf("connection %d: %v", t.ConnectionID, err)
	}
	err = mc.DeletePermanent(ctx, t.AudienceID, t.Email)
	switch {
	case err == nil:
		return store.ErasureDeleted, ""
	case mailchimp.IsNotFound(err):
		return store.ErasureNotFound, ""
	default:
		var me *mailchimp.Error
		if errors.As(err, &me) {
			return store.ErasureFailed, fmt.Sprintf("Mailchimp answered %d %s", me.Status, me.Title)
		}
		return store.ErasureFailed, err.Error()
	}
}

// ConnectionClients adapts what hands out a connection's client
// (*connection.Service) to Clients.
type ConnectionClients struct {
	Of interface {
		ClientFor(ctx context.Context, connectionID int64) (*mailchimp.Client, error)
	}
}

// DeleterFor implements Clients.
func (c ConnectionClients) DeleterFor(ctx context.Context, connectionID int64) (Deleter, error) {
	mc, err := c.Of.ClientFor(ctx, connectionID)
	if err != nil {
		return nil, err
	}
	return mc, nil
}
