package mailchimp

import (
	"context"
	"fmt"
	"sync"
)

// MaxConnsPerAccount is Mailchimp's limit of simultaneous connections per
// user; exceeding it earns 429s and, when repeated, a disabled key.
const MaxConnsPerAccount = 10

// Limiter bounds how many requests are in flight per Mailchimp account.
// Acquire blocks until a slot is free or ctx is done; the returned release
// gives the slot back and may be called more than once. Implementations must
// be safe for concurrent use. The account key is Client.Account.
type Limiter interface {
	Acquire(ctx context.Context, account string) (release func(), err error)
}

// LocalLimiter is a Limiter shared by every caller in one process: a
// counting semaphore per account. Waiters are served in arrival order.
type LocalLimiter struct {
	max int

	mu    sync.Mutex
	slots map[string]chan struct{}
}

// NewLocalLimiter returns a limiter allowing max requests in flight per
// account; max is clamped to 1..MaxConnsPerAccount, and 0 means the maximum.
func NewLocalLimiter(max int) *LocalLimiter {
	if max <= 0 || max > MaxConnsPerAccount {
		max = MaxConnsPerAccount
	}
	return &LocalLimiter{max: max, slots: map[string]chan struct{}{}}
}

// Max is the number of slots per account.
func (l *LocalLimiter) Max() int { return l.max }

// Acquire takes a slot of the account, waiting for one if all are taken.
func (l *LocalLimiter) Acquire(ctx context.Context, account string) (func(), error) {
	l.mu.Lock()
	sem, ok := l.slots[account]
	if !ok {
		sem = make(chan struct{}, l.max)
		l.slots[account] = sem
	}
	l.mu.Unlock()

	// Prefer a cancelled context over a free slot, so a stopped run does
	// not start one more request.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("waiting for a connection slot: %w", err)
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a connection slot: %w", ctx.Err())
	}
	var once sync.Once
	return func() { once.Do(func() { <-sem }) }, nil
}

// InUse reports how many slots of the account are taken (for metrics and
// tests).
func (l *LocalLimiter) InUse(account string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.slots[account])
}

// defaultLimiter is the one process-wide limiter used by clients whose
// Config has no Limiter, so that two clients of the same account never
// exceed Mailchimp's limit together.
var defaultLimiter = sync.OnceValue(func() *LocalLimiter { return NewLocalLimiter(MaxConnsPerAccount) })
