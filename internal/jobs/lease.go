package jobs

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// errLeaseLost is the cause a run's context is cancelled with when its
// worker can no longer be sure it holds the run's lease.
var errLeaseLost = errors.New("the run's lease is lost")

// leaseKeeper is a worker's own view of its claim of a run. The database
// decides who holds a run, by its own clock; the worker only has to stop
// before the database could give the run to someone else. A lease renewed
// by a heartbeat sent at t lasts, by the database's clock, until at least
// t + lease (the database stamps it after it was sent), so the worker
// trusts its claim for validFor = 0.8 × lease after the sending of the last
// heartbeat that succeeded, measured on its monotonic clock: an offset of
// the process's wall clock changes nothing, and a process that was paused
// finds its claim expired the moment it wakes. Once lost, a claim stays
// lost.
type leaseKeeper struct {
	now      func() time.Time
	validFor time.Duration

	mu      sync.Mutex
	renewed time.Time // when the last successful claim or heartbeat was sent
	lost    error
}

func newLeaseKeeper(now func() time.Time, lease time.Duration, claimSent time.Time) *leaseKeeper {
	return &leaseKeeper{now: now, validFor: lease * 8 / 10, renewed: claimSent}
}

// check returns nil while the claim can be trusted, else why not. It is
// the gate of every Mailchimp request of the run.
func (k *leaseKeeper) check() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lost == nil {
		if since := k.now().Sub(k.renewed); since >= k.validFor {
			k.lost = fmt.Errorf("%w: not renewed for %v (a worker stops after %v, 0.8 × the lease)",
				errLeaseLost, since.Round(time.Millisecond), k.validFor)
		}
	}
	return k.lost
}

// renewedAt notes a heartbeat sent at sent that the database accepted.
func (k *leaseKeeper) renewedAt(sent time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lost == nil && sent.After(k.renewed) {
		k.renewed = sent
	}
}

// lose marks the claim lost (the database refused it).
func (k *leaseKeeper) lose(why error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lost == nil {
		k.lost = fmt.Errorf("%w: %w", errLeaseLost, why)
	}
}

// remaining is how long the claim can still be trusted.
func (k *leaseKeeper) remaining() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.validFor - k.now().Sub(k.renewed)
}
