package mailchimp

import (
	"context"
	"errors"
	"fmt"
)

// ErrGated marks a call that its context's send gate stopped before it was
// sent (see WithSendGate). It is never retried.
var ErrGated = errors.New("mailchimp: not sent: the send gate is closed")

type gateKey struct{}

// WithSendGate returns a context under which every request of a call (each
// attempt, reads included) first asks gate, right before it is put on the
// wire, whether it may still be sent. A non-nil answer stops the call
// unsent with an error that wraps ErrGated and the answer. Package jobs
// gates a run's calls on the run's lease, so a worker whose lease may have
// lapsed (it was paused, or could not renew) sends nothing more, even
// before its context is cancelled.
func WithSendGate(ctx context.Context, gate func() error) context.Context {
	return context.WithValue(ctx, gateKey{}, gate)
}

// checkGate asks ctx's send gate, if any.
func checkGate(ctx context.Context, op string) error {
	gate, _ := ctx.Value(gateKey{}).(func() error)
	if gate == nil {
		return nil
	}
	if err := gate(); err != nil {
		return fmt.Errorf("mailchimp %s: %w: %w", op, ErrGated, err)
	}
	return nil
}
