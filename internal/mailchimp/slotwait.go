package mailchimp

import "context"

type slotWaitKey struct{}

// WithSlotWait returns a context under which every attempt of a call calls
// begin when it starts waiting for one of the account's connection slots
// (the Limiter) and the function begin returned once it has one (or gave
// up). Package syncer measures a run's idle time with it: the time its
// calls spent waiting for connections other runs or processes held.
func WithSlotWait(ctx context.Context, begin func() (end func())) context.Context {
	return context.WithValue(ctx, slotWaitKey{}, begin)
}

// slotWait starts ctx's slot wait observation, if any, and returns its end.
func slotWait(ctx context.Context) (end func()) {
	begin, _ := ctx.Value(slotWaitKey{}).(func() func())
	if begin == nil {
		return func() {}
	}
	return begin()
}
