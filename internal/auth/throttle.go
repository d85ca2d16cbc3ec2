package auth

import (
	"sync"
	"time"
)

// Throttle limits failed sign-ins per key (an email address, a client
// address): after Max failures within Window, further attempts on that key
// are refused until the oldest failure leaves the window. It lives in memory,
// so several processes each enforce it on their own.
type Throttle struct {
	Max    int
	Window time.Duration

	mu       sync.Mutex
	failures map[string][]time.Time
	now      func() time.Time
}

// maxThrottleKeys bounds the memory an attacker can make the throttle use.
const maxThrottleKeys = 100_000

// NewThrottle allows max failures per key within window.
func NewThrottle(max int, window time.Duration) *Throttle {
	return &Throttle{Max: max, Window: window, failures: map[string][]time.Time{}, now: time.Now}
}

// Allow reports whether an attempt on every key may go ahead, and if not,
// how long to wait.
func (t *Throttle) Allow(keys ...string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var wait time.Duration
	for _, k := range keys {
		fs := t.prune(k, now)
		if len(fs) >= t.Max {
			if w := fs[0].Add(t.Window).Sub(now); w > wait {
				wait = w
			}
		}
	}
	return wait == 0, wait
}

// Fail records a failed attempt on every key.
func (t *Throttle) Fail(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.failures) >= maxThrottleKeys {
		for k := range t.failures {
			if len(t.prune(k, now)) == 0 {
				delete(t.failures, k)
			}
		}
	}
	for _, k := range keys {
		fs := append(t.prune(k, now), now)
		if len(fs) > t.Max {
			fs = fs[len(fs)-t.Max:]
		}
		t.failures[k] = fs
	}
}

// Reset forgets the failures of key (after a successful sign-in).
func (t *Throttle) Reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.failures, key)
}

func (t *Throttle) prune(k string, now time.Time) []time.Time {
	fs := t.failures[k]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= t.Window {
		i++
	}
	if i == len(fs) {
		delete(t.failures, k)
		return nil
	}
	fs = fs[i:]
	t.failures[k] = fs
	return fs
}
