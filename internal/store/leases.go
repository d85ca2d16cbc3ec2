package store

import (
	"context"
	"time"
)

// LeaseStore keeps the leases of Mailchimp connection slots that every
// segsync process on one database shares (package limiter). Expiry is
// judged by the database's clock, so the processes' clocks need not agree.
type LeaseStore interface {
	// SyncSlotLeases records how many slots the owner wants for the account
	// (0 forgets its demand), renews the slots it holds and reports who
	// holds and wants what.
	SyncSlotLeases(ctx context.Context, s SlotSync) (SlotState, error)
	// ClaimSlotLeases leases up to n free or expired slots below limit and
	// returns their numbers.
	ClaimSlotLeases(ctx context.Context, account, owner string, limit, n int, ttl time.Duration) ([]int, error)
	// ReleaseSlotLeases frees the owner's given slots of the account.
	ReleaseSlotLeases(ctx context.Context, account, owner string, slots []int) error
	// DropSlotOwner frees every slot and forgets every demand of the owner.
	DropSlotOwner(ctx context.Context, owner string) error
}

// SlotSync is one owner's heartbeat for one account.
type SlotSync struct {
	Account string
	Owner   string
	Want    int
	TTL     time.Duration
}

// SlotState is an account's slots as of a heartbeat.
type SlotState struct {
	Held    []int          // the owner's slots, renewed
	Holders map[string]int // live slots per owner (the owner included)
	Wants   map[string]int // live demand per owner (the owner included)
}
