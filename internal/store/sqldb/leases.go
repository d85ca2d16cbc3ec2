package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/store"
)

// nowMicros is an SQL expression for the database clock in unix
// microseconds. Lease expiry is judged by one clock, the database's, so
// processes on machines whose clocks disagree still agree on who holds a slot.
func (db *DB) nowMicros() string {
	if db.d == Postgres {
		return `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT`
	}
	return `CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)`
}

// SyncSlotLeases records the owner's demand, renews its slots and reads the
// account's holders and demands, in one transaction.
func (db *DB) SyncSlotLeases(ctx context.Context, s store.SlotSync) (store.SlotState, error) {
	now := db.nowMicros()
	ttl := s.TTL.Microseconds()
	st := store.SlotState{Holders: map[string]int{}, Wants: map[string]int{}}
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		if s.Want > 0 {
			_, err = tx.ExecContext(ctx, db.Q(`INSERT INTO limiter_demand (account, owner, want, expires_at)
				VALUES (?, ?, ?, `+now+` + ?)
				ON CONFLICT (account, owner) DO UPDATE SET want = excluded.want, expires_at = excluded.expires_at`),
				s.Account, s.Owner, s.Want, ttl)
		} else {
			_, err = tx.ExecContext(ctx, db.Q(`DELETE FROM limiter_demand WHERE account = ? AND owner = ?`), s.Account, s.Owner)
		}
		if err != nil {
			return fmt.Errorf("recording demand: %w", err)
		}
		// Demand left by processes that died (each start is a new owner)
		// would otherwise pile up.
		if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM limiter_demand WHERE account = ? AND expires_at < `+now+` - ?`),
			s.Account, time.Minute.Microseconds()); err != nil {
			return fmt.Errorf("forgetting stale demand: %w", err)
		}
		// A slot of ours stays ours even if its lease lapsed, as long as
		// nobody took it over: nobody else used it meanwhile.
		rows, err := tx.QueryContext(ctx, db.Q(`UPDATE limiter_slots SET expires_at = `+now+` + ?
			WHERE account = ? AND owner = ? RETURNING slot`), ttl, s.Account, s.Owner)
		if err != nil {
			return fmt.Errorf("renewing leases: %w", err)
		}
		for rows.Next() {
			var n int
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			st.Held = append(st.Held, n)
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("renewing leases: %w", err)
		}
		if err := scanCounts(ctx, tx, st.Holders, db.Q(`SELECT owner, COUNT(*) FROM limiter_slots
			WHERE account = ? AND owner <> '' AND expires_at >= `+now+` GROUP BY owner`), s.Account); err != nil {
			return fmt.Errorf("reading holders: %w", err)
		}
		if err := scanCounts(ctx, tx, st.Wants, db.Q(`SELECT owner, want FROM limiter_demand
			WHERE account = ? AND expires_at >= `+now), s.Account); err != nil {
			return fmt.Errorf("reading demand: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.SlotState{}, fmt.Errorf("slot leases of %s: %w", s.Account, err)
	}
	return st, nil
}

func scanCounts(ctx context.Context, tx *sql.Tx, into map[string]int, query string, args ...any) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var owner string
		var n int
		if err := rows.Scan(&owner, &n); err != nil {
			return err
		}
		into[owner] = n
	}
	return rows.Err()
}

// ClaimSlotLeases leases up to n slots below limit that are free or whose
// lease expired. Concurrent claimers never get the same slot: the final
// condition is checked again on the locked row (and on PostgreSQL rows that
// another claimer is taking are skipped rather than waited for).
func (db *DB) ClaimSlotLeases(ctx context.Context, account, owner string, limit, n int, ttl time.Duration) ([]int, error) {
	if n <= 0 || limit <= 0 {
		return nil, nil
	}
	now := db.nowMicros()
	// Slot rows are created on first use; later inserts are no-ops.
	var b strings.Builder
	args := make([]any, 0, 2*limit)
	for i := 0; i < limit; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?)")
		args = append(args, account, i)
	}
	if _, err := db.W.ExecContext(ctx, db.Q(`INSERT INTO limiter_slots (account, slot) VALUES `+b.String()+` ON CONFLICT DO NOTHING`), args...); err != nil {
		return nil, fmt.Errorf("creating the slots of %s: %w", account, err)
	}
	skip := ""
	if db.d == Postgres {
		skip = " FOR UPDATE SKIP LOCKED"
	}
	rows, err := db.W.QueryContext(ctx, db.Q(`UPDATE limiter_slots SET owner = ?, expires_at = `+now+` + ?
		WHERE account = ? AND (owner = '' OR expires_at < `+now+`) AND slot IN (
			SELECT slot FROM limiter_slots WHERE account = ? AND slot < ? AND (owner = '' OR expires_at < `+now+`)
			ORDER BY slot LIMIT ?`+skip+`)
		RETURNING slot`), owner, ttl.Microseconds(), account, account, limit, n)
	if err != nil {
		return nil, fmt.Errorf("claiming slots of %s: %w", account, err)
	}
	defer rows.Close()
	var got []int
	for rows.Next() {
		var s int
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("claiming slots of %s: %w", account, err)
		}
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claiming slots of %s: %w", account, err)
	}
	return got, nil
}

// ReleaseSlotLeases frees the owner's given slots.
func (db *DB) ReleaseSlotLeases(ctx context.Context, account, owner string, slots []int) error {
	if len(slots) == 0 {
		return nil
	}
	args := []any{account, owner}
	marks := make([]string, len(slots))
	for i, s := range slots {
		marks[i] = "?"
		args = append(args, s)
	}
	if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE limiter_slots SET owner = '', expires_at = 0
		WHERE account = ? AND owner = ? AND slot IN (`+strings.Join(marks, ", ")+`)`), args...); err != nil {
		return fmt.Errorf("releasing slots of %s: %w", account, err)
	}
	return nil
}

// DropSlotOwner frees all of the owner's slots and forgets its demand.
func (db *DB) DropSlotOwner(ctx context.Context, owner string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.Q(`UPDATE limiter_slots SET owner = '', expires_at = 0 WHERE owner = ?`), owner); err != nil {
			return fmt.Errorf("releasing the slots of %s: %w", owner, err)
		}
		if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM limiter_demand WHERE owner = ?`), owner); err != nil {
			return fmt.Errorf("forgetting the demand of %s: %w", owner, err)
		}
		return nil
	})
}
