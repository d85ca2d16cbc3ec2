package mailchimp

import "context"

type answeredKey struct{}

// WithAnswered returns a context under which a call runs done as soon as
// its successful answer has been read from the connection, before it is
// decoded: the connection is free again then, and package syncer hands its
// slot on to the next call instead of holding it while a large answer (a
// batch of 500 members) is decoded. An answer that is retried does not
// run done. done may run more than once if ctx serves several calls.
func WithAnswered(ctx context.Context, done func()) context.Context {
	return context.WithValue(ctx, answeredKey{}, done)
}

// answered runs ctx's WithAnswered function, if any.
func answered(ctx context.Context) {
	if done, _ := ctx.Value(answeredKey{}).(func()); done != nil {
		done()
	}
}
