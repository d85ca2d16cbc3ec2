// Package limiter bounds the requests in flight per Mailchimp account across
// every segsync process sharing one database (mailchimp.Limiter).
//
// Each account has Max slots, kept as lease rows in the database
// (store.LeaseStore). A process leases slots in blocks and hands them to its
// own requests locally, so the hot path (one Acquire per Mailchimp call)
// takes no database round trip while the process keeps its slots. A
// background loop renews the leases every Tick; a process that dies stops
// renewing, and its slots come free when their lease (TTL) runs out. Slots
// left idle for IdleHold are given back.
//
// Fairness: every live process publishes how many slots it wants per
// account (in use plus waiting), and all of them compute the same max-min
// fair allocation from those wants. A process holding more than its share
// gives the excess back as soon as another process is below its own share;
// while nobody else is short, a process may use every free slot. Within a
// process, waiters are served in arrival order.
//
// Why leases rather than PostgreSQL advisory locks: a lease's end is known
// (a process stops using its slots when it cannot renew them in time, where
// a lost session would silently drop its advisory locks while requests go
// on), it works through connection poolers that do not keep sessions, and it
// needs no dedicated connection per process.
package limiter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/store"
)

// Store is the part of the store the limiter uses; *sqldb.DB implements it.
type Store interface {
	SyncSlotLeases(ctx context.Context, s store.SlotSync) (store.SlotState, error)
	ClaimSlotLeases(ctx context.Context, account, owner string, limit, n int, ttl time.Duration) ([]int, error)
	ReleaseSlotLeases(ctx context.Context, account, owner string, slots []int) error
	DropSlotOwner(ctx context.Context, owner string) error
}

// Config tunes a Shared limiter; zero values take the defaults.
type Config struct {
	// Max is the number of slots per account, shared by all processes
	// (1..mailchimp.MaxConnsPerAccount; default the maximum). Give every
	// process the same value.
	Max int
	// Owner names this process in the lease table; it must be unique
	// among live processes (default host/pid/random).
	Owner string
	// TTL is how long a lease lasts without renewal (default 10 s): the
	// time a dead process's slots stay blocked.
	TTL time.Duration
	// Tick is how often leases are renewed and shares recomputed
	// (default 1 s; at most TTL/3).
	Tick time.Duration
	// Poll is how often a process short of slots looks for free ones
	// (default 100 ms, with jitter).
	Poll time.Duration
	// IdleHold is how long an unused slot is kept before it is given back
	// (default 2 s).
	IdleHold time.Duration
	Log      *slog.Logger
}

// ErrClosed is returned by Acquire after Close.
var ErrClosed = errors.New("limiter: closed")

// Shared is a mailchimp.Limiter whose slots are leases in the database.
type Shared struct {
	st   Store
	cfg  Config
	log  *slog.Logger
	wake chan struct{}
	stop context.CancelFunc
	done chan struct{}

	mu       sync.Mutex
	closed   bool
	accounts map[string]*account
}

var _ mailchimp.Limiter = (*Shared)(nil)

// account is this process's view of one account's slots.
type account struct {
	name       string
	held       map[int]*slot // leased by us
	idle       []*slot       // held and not in use, least recently used first
	waiters    []chan *slot  // arrival order
	busy       int
	validUntil time.Time // our leases are certainly ours until then
	giveBack   int       // busy slots to release as they come back
	release    []int     // slots to release in the database
	due        time.Time // next sync; zero: nothing to do
	failures   int
}

type slot struct {
	n        int
	busy     bool
	lost     bool // our lease was taken over: drop it when it comes back
	lastUsed time.Time
}

// New starts a shared limiter over st. Close it to give its slots back.
func New(st Store, cfg Config) *Shared {
	if cfg.Max <= 0 || cfg.Max > mailchimp.MaxConnsPerAccount {
		cfg.Max = mailchimp.MaxConnsPerAccount
	}
	if cfg.Owner == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Tick > cfg.TTL/3 {
		cfg.Tick = cfg.TTL / 3
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.IdleHold <= 0 {
		cfg.IdleHold = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	l := &Shared{
		st: st, cfg: cfg, log: cfg.Log.With("limiter", cfg.Owner),
		wake: make(chan struct{}, 1), stop: stop, done: make(chan struct{}),
		accounts: map[string]*account{},
	}
	go l.loop(ctx)
	return l
}

// Owner is the name of this process in the lease table.
func (l *Shared) Owner() string { return l.cfg.Owner }

// Max is the number of slots per account.
func (l *Shared) Max() int { return l.cfg.Max }

// Acquire takes a slot of the account, waiting until this process holds a
// free one, ctx ends or the limiter is closed.
func (l *Shared) Acquire(ctx context.Context, name string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("waiting for a connection slot: %w", err)
	}
	now := time.Now()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	a := l.accounts[name]
	if a == nil {
		a = &account{name: name, held: map[int]*slot{}}
		l.accounts[name] = a
	}
	if len(a.waiters) == 0 && now.Before(a.validUntil) && len(a.idle) > 0 {
		s := a.idle[len(a.idle)-1]
		a.idle = a.idle[:len(a.idle)-1]
		a.take(s)
		l.mu.Unlock()
		return l.releaser(a, s), nil
	}
	ch := make(chan *slot, 1)
	a.waiters = append(a.waiters, ch)
	l.syncSoon(a, now)
	l.mu.Unlock()

	select {
	case s := <-ch:
		if s == nil {
			return nil, ErrClosed
		}
		return l.releaser(a, s), nil
	case <-ctx.Done():
		l.mu.Lock()
		queued := false
		for i, w := range a.waiters {
			if w == ch {
				a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
				queued = true
				break
			}
		}
		l.mu.Unlock()
		if !queued { // granted meanwhile: give it back
			if s := <-ch; s != nil {
				l.releaser(a, s)()
			}
		}
		return nil, fmt.Errorf("waiting for a connection slot: %w", ctx.Err())
	}
}

func (a *account) take(s *slot) {
	s.busy = true
	a.busy++
}

func (l *Shared) releaser(a *account, s *slot) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			s.busy = false
			a.busy--
			s.lastUsed = time.Now()
			l.putBack(a, s, s.lastUsed)
		})
	}
}

// putBack returns a slot that is not in use: to the database when it was
// lost or is owed to another process, else to the next waiter or the idle
// list. l.mu is held.
func (l *Shared) putBack(a *account, s *slot, now time.Time) {
	switch {
	case s.lost:
		delete(a.held, s.n)
	case a.giveBack > 0:
		a.giveBack--
		delete(a.held, s.n)
		a.release = append(a.release, s.n)
		l.syncSoon(a, now)
	case len(a.waiters) > 0 && now.Before(a.validUntil):
		w := a.waiters[0]
		a.waiters = a.waiters[1:]
		a.take(s)
		w <- s
	default:
		a.idle = append(a.idle, s)
	}
}

// syncSoon asks the loop to sync the account now. l.mu is held.
func (l *Shared) syncSoon(a *account, now time.Time) {
	if a.due.IsZero() || a.due.After(now) {
		a.due = now
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// InUse reports how many of the account's slots this process's requests
// hold, and how many slots it leases.
func (l *Shared) InUse(name string) (busy, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.accounts[name]; a != nil {
		return a.busy, len(a.held)
	}
	return 0, 0
}

// Close stops the loop, fails waiting Acquires and gives every slot of this
// process back. Requests still holding a slot should have ended before.
func (l *Shared) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for _, a := range l.accounts {
		for _, w := range a.waiters {
			w <- nil
		}
		a.waiters = nil
	}
	l.mu.Unlock()
	l.stop()
	<-l.done
	if err := l.st.DropSlotOwner(ctx, l.cfg.Owner); err != nil {
		return fmt.Errorf("limiter: giving the slots back: %w", err)
	}
	return nil
}

// loop syncs the accounts that are due, until Close.
func (l *Shared) loop(ctx context.Context) {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var due []*account
		next := now.Add(time.Hour)
		l.mu.Lock()
		for name, a := range l.accounts {
			switch {
			case a.due.IsZero():
				if len(a.held) == 0 && a.busy == 0 && len(a.waiters) == 0 {
					delete(l.accounts, name)
				}
			case !a.due.After(now):
				due = append(due, a)
			case a.due.Before(next):
				next = a.due
			}
		}
		l.mu.Unlock()
		for _, a := range due {
			if ctx.Err() != nil {
				return
			}
			l.sync(ctx, a)
			l.mu.Lock()
			if !a.due.IsZero() && a.due.Before(next) {
				next = a.due
			}
			l.mu.Unlock()
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		case <-timer.C:
		}
	}
}

// sync renews the account's leases, publishes its demand and moves slots
// towards this process's fair share.
func (l *Shared) sync(ctx context.Context, a *account) {
	l.mu.Lock()
	want := min(a.busy+len(a.waiters), l.cfg.Max)
	release := a.release
	a.release = nil
	l.mu.Unlock()

	if len(release) > 0 {
		if err := l.st.ReleaseSlotLeases(ctx, a.name, l.cfg.Owner, release); err != nil {
			// Released locally already; the renewal below finds them
			// still ours and releases them again.
			l.log.Warn("releasing connection slots", "account", a.name, "err", err)
		}
	}
	start := time.Now()
	st, err := l.st.SyncSlotLeases(ctx, store.SlotSync{Account: a.name, Owner: l.cfg.Owner, Want: want, TTL: l.cfg.TTL})
	if err != nil {
		l.retryLater(a, err)
		return
	}

	l.mu.Lock()
	a.failures = 0
	// Leases are ours until start+TTL by the database's clock; keep a
	// margin for clock rate differences.
	a.validUntil = start.Add(l.cfg.TTL - l.cfg.TTL/10)
	mine := map[int]bool{}
	for _, n := range st.Held {
		mine[n] = true
		if a.held[n] == nil {
			a.release = append(a.release, n) // a release that did not reach the database
		}
	}
	for n, s := range a.held {
		if !mine[n] {
			l.log.Warn("connection slot lease lost", "account", a.name, "slot", n)
			a.drop(s)
		}
	}
	alloc := Allocate(l.cfg.Max, st.Wants)
	others := false // another process is below its share
	for o, w := range alloc {
		if o != l.cfg.Owner && st.Holders[o] < w {
			others = true
		}
	}
	share := alloc[l.cfg.Owner]
	a.giveBack = 0
	now := time.Now()
	if excess := len(a.held) - share; excess > 0 {
		// Idle slots go first, least recently used first; when another
		// process is short, the rest follow as they come back.
		keep := a.idle[:0]
		for _, s := range a.idle {
			if excess > 0 && (others || now.Sub(s.lastUsed) >= l.cfg.IdleHold) {
				excess--
				delete(a.held, s.n)
				a.release = append(a.release, s.n)
				continue
			}
			keep = append(keep, s)
		}
		a.idle = keep
		if others {
			a.giveBack = excess
		}
	}
	target := want
	if others {
		target = min(want, share)
	}
	claim := target - len(a.held)
	release = a.release
	a.release = nil
	l.mu.Unlock()

	if len(release) > 0 {
		if err := l.st.ReleaseSlotLeases(ctx, a.name, l.cfg.Owner, release); err != nil {
			l.log.Warn("releasing connection slots", "account", a.name, "err", err)
		}
	}
	var got []int
	if claim > 0 {
		got, err = l.st.ClaimSlotLeases(ctx, a.name, l.cfg.Owner, l.cfg.Max, claim, l.cfg.TTL)
		if err != nil {
			l.retryLater(a, err)
			return
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	now = time.Now()
	for _, n := range got {
		s := &slot{n: n, lastUsed: now}
		a.held[n] = s
		if l.closed {
			a.idle = append(a.idle, s)
			continue
		}
		l.putBack(a, s, now)
	}
	// Waiters may also be served from slots that were idle while our
	// leases could not be vouched for.
	for len(a.waiters) > 0 && len(a.idle) > 0 && now.Before(a.validUntil) {
		s := a.idle[len(a.idle)-1]
		a.idle = a.idle[:len(a.idle)-1]
		w := a.waiters[0]
		a.waiters = a.waiters[1:]
		a.take(s)
		w <- s
	}
	switch {
	case len(a.waiters) > 0:
		a.due = now.Add(l.jitter(l.cfg.Poll))
	case len(a.held) > 0 || want > 0 || a.busy > 0:
		a.due = now.Add(l.cfg.Tick)
	default:
		a.due = time.Time{}
	}
}

// drop forgets a slot whose lease another process took over. l.mu is held.
func (a *account) drop(s *slot) {
	if s.busy {
		s.lost = true // forgotten when it comes back
		return
	}
	delete(a.held, s.n)
	for i, t := range a.idle {
		if t == s {
			a.idle = append(a.idle[:i], a.idle[i+1:]...)
			break
		}
	}
}

// retryLater logs a failed sync and tries again with backoff (up to Tick).
func (l *Shared) retryLater(a *account, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a.failures++
	if a.failures == 1 || a.failures%50 == 0 {
		l.log.Warn("syncing connection slot leases", "account", a.name, "failures", a.failures, "err", err)
	}
	d := l.cfg.Poll << min(a.failures, 5)
	a.due = time.Now().Add(l.jitter(min(d, l.cfg.Tick)))
}

// jitter spreads d over [d/2, 3d/2) so processes do not poll in step.
func (l *Shared) jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(mrand.Int64N(int64(d)+1))
}

// Allocate divides max slots among owners by their wants, max-min fair:
// nobody gets more than it wants, and the rest is split as evenly as
// possible. Remainders go to the owners with the smallest wants, then by
// name, so every process computes the same allocation.
func Allocate(max int, wants map[string]int) map[string]int {
	type demand struct {
		owner string
		want  int
	}
	ds := make([]demand, 0, len(wants))
	for o, w := range wants {
		if w > 0 {
			ds = append(ds, demand{o, w})
		}
	}
	sort.Slice(ds, func(i, j int) bool {
		if ds[i].want != ds[j].want {
			return ds[i].want < ds[j].want
		}
		return ds[i].owner < ds[j].owner
	})
	out := make(map[string]int, len(ds))
	left := max
	for i, d := range ds {
		n := len(ds) - i
		share := min(d.want, (left+n-1)/n)
		out[d.owner] = share
		left -= share
	}
	return out
}
