package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/segsync/segsync/internal/segment"
)

// The address table (profile_addresses; migration 0023 on SQLite, 0022 on
// PostgreSQL): each
// profile's subscriber address under an attribute, so that the members of
// a few addresses are found without computing every profile's, and a
// first run's members are sorted in two parts (sortMembersEarly). It is
// filled in the background when an export is created or its mapping
// changes and once a run is over (StartDeferred), in id ranges of one
// short transaction each, and then brought up to date by the runs that
// read it, from profiles.updated_at: the profiles written since.

const (
	// addressBucketShift is the index's bucket: profile_id >> 18. Keep it
	// with the migrations' index expression.
	addressBucketShift = 18
	// addressHashLen is how many hex digits of the subscriber hash a row
	// keeps.
	addressHashLen = 8
	// addressSpan is DB.AddressSpan's default: how many profiles one
	// transaction of a refresh reads at most (ids in a fill, profiles
	// written since in a catch-up). On SQLite a transaction holds the one
	// writer, which a run's heartbeats and recorder wait for; on PostgreSQL
	// it does not, and a fill takes fewer, longer transactions. Steps of
	// 8,192 on SQLite made a 1M fill take 6.6–6.8 s of CPU instead of 3.8 s:
	// each commit writes the touched pages of the index again.
	addressSpan         = 1 << 16
	addressSpanPostgres = 1 << 20
)

// A catch-up reads the profiles after a mark (updated_at, id) in that
// order: catchUpEndQuery finds the last of the next span of them (after
// through, through, throughID; span), catchUpRange passes those from the
// mark to that last one (through, through, throughID, lastAt, lastAt,
// lastID). Both seek profiles_updated by their first term.
const (
	catchUpEndQuery = `SELECT updated_at, id FROM (SELECT updated_at, id FROM profiles
		WHERE updated_at >= ? AND (updated_at > ? OR id > ?) ORDER BY updated_at, id LIMIT ?) x
		ORDER BY updated_at DESC, id DESC LIMIT 1`
	catchUpRange = `updated_at >= ? AND (updated_at > ? OR id > ?) AND updated_at <= ? AND (updated_at < ? OR id <= ?)`
)

// addressMark is a profile_address_marks row. Every profile up to
// (through, throughID) in (updated_at, id) order is in the table, unless
// through is -1 (never filled); a fill is under way while fillNext <=
// fillEnd.
type addressMark struct {
	id                 int64
	through, throughID int64
	fillNext, fillEnd  int64
}

// backgroundFills are the address table fills that reads have deferred
// (wanted) and those under way in the background, one at most per
// attribute (its cancel), until the store closes.
type backgroundFills struct {
	mu      sync.Mutex
	wanted  map[string]bool
	running map[string]context.CancelFunc
	closed  bool
	wg      sync.WaitGroup
}

// fillAddressesLater has the address table of attribute attr filled (or
// brought up to date) by the next StartDeferred: a first fill costs as
// much as a few scans of every profile (3 s of CPU per 1M on SQLite), which
// no run should wait for or share the machine with.
func (db *DB) fillAddressesLater(attr string) {
	f := &db.fills
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.wanted == nil {
		f.wanted = map[string]bool{}
	}
	f.wanted[attr] = true
}

// fillAddressesNow has the address table of attribute attr filled, or
// brought up to date, in the background from now on (an export was
// created or updated): the export's first run then reads its
// first members through it (sortMembersEarly) and sends them while it
// reads the others.
func (db *DB) fillAddressesNow(attr string) {
	if !segment.ValidAttributeName(attr) {
		return
	}
	db.fillAddressesLater(attr)
	db.StartDeferred()
}

// StartDeferred starts in the background the work that reads deferred
// (package syncer calls it when a run is over): the first fill of an
// address table. A fill's steps are the ones a run would take
// (refreshAddresses), so a run, another process or a later fill goes on
// from wherever it stopped; closing the store stops it.
func (db *DB) StartDeferred() {
	f := &db.fills
	f.mu.Lock()
	defer f.mu.Unlock()
	for attr := range f.wanted {
		delete(f.wanted, attr)
		if _, ok := f.running[attr]; ok || f.closed {
			continue
		}
		if f.running == nil {
			f.running = map[string]context.CancelFunc{}
		}
		ctx, cancel := context.WithCancel(context.Background())
		f.running[attr] = cancel
		f.wg.Go(func() {
			defer cancel()
			if _, _, err := db.refreshAddresses(ctx, attr, true); err != nil && ctx.Err() == nil {
				db.log.Warn("filling the address table", "attribute", attr, "err", err)
			}
			f.mu.Lock()
			delete(f.running, attr)
			f.mu.Unlock()
		})
	}
}

// stop cancels the fills under way and waits for them.
func (f *backgroundFills) stop() {
	f.mu.Lock()
	f.closed = true
	for _, cancel := range f.running {
		cancel()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// refreshAddresses brings the address table of attribute attr up to date
// with the profiles and returns the attribute's id in it and true. Each
// step is one transaction that reads the mark and moves it on, so several
// processes may refresh at once. A table never filled is filled only when
// fill is set (background work); otherwise refreshAddresses writes nothing
// and returns false.
func (db *DB) refreshAddresses(ctx context.Context, attr string, fill bool) (int64, bool, error) {
	hash, hargs, err := segment.HashExpr(db.segmentDialect(), "attrs", attr)
	if err != nil {
		return 0, false, err
	}
	// Filled once, and up to date already: one read, which leaves the
	// writer alone.
	id, filled, fresh, err := db.addressesState(ctx, attr)
	if err != nil {
		return 0, false, err
	}
	switch {
	case filled && fresh:
		return id, true, nil
	case !filled && !fill:
		return 0, false, nil
	}
	if _, err := db.W.ExecContext(ctx, db.Q(`INSERT INTO profile_address_marks (attr) VALUES (?) ON CONFLICT (attr) DO NOTHING`), attr); err != nil {
		return 0, false, fmt.Errorf("refreshing the addresses of %q: %w", attr, err)
	}
	// A fill's id range has no rows yet (the mark moves past it in the
	// transaction that writes them), so it inserts: on PostgreSQL an
	// upsert took 6.2 s over 1M profiles, an insert 4.8 s.
	insert := `INSERT INTO profile_addresses (attr, profile_id, hash)
		SELECT ?, id, COALESCE(substr(` + hash + `, 1, ` + fmt.Sprint(addressHashLen) + `), '') FROM profiles WHERE %s`
	upsert := insert + `
		ON CONFLICT (attr, profile_id) DO UPDATE SET hash = excluded.hash WHERE profile_addresses.hash <> excluded.hash`
	span := cmp.Or(db.AddressSpan, addressSpan)
	if db.d == Postgres {
		span = cmp.Or(db.AddressSpan, addressSpanPostgres)
	}
	for {
		done := false
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if err := db.lockProfiles(ctx, tx); err != nil {
				return err
			}
			m, err := db.addressMark(ctx, tx, attr)
			if err != nil {
				return err
			}
			id = m.id
			switch {
			case m.fillNext <= m.fillEnd: // the next id range of a fill
				end := min(m.fillNext+span-1, m.fillEnd)
				args := append(append([]any{m.id}, hargs...), m.fillNext, end)
				if _, err := tx.ExecContext(ctx, db.Q(fmt.Sprintf(insert, `id >= ? AND id <= ?`)), args...); err != nil {
					return err
				}
				m.fillNext = end + 1
			case m.through < 0: // a first fill
				// The fill reads every id up to the last one now; profiles
				// written later get a later updated_at.
				// Each MAX alone, which SQLite reads off an index.
				if err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT MAX(updated_at) FROM profiles), 0),
					COALESCE((SELECT MAX(id) FROM profiles), 0)`).Scan(&m.through, &m.fillEnd); err != nil {
					return err
				}
				m.throughID, m.fillNext = math.MaxInt64, 0
			default: // the next profiles written since the mark
				var lastAt, lastID int64
				err := tx.QueryRowContext(ctx, db.Q(catchUpEndQuery), m.through, m.through, m.throughID, span).Scan(&lastAt, &lastID)
				if errors.Is(err, sql.ErrNoRows) {
					done = true
					return nil
				}
				if err != nil {
					return err
				}
				args := append(append([]any{m.id}, hargs...), m.through, m.through, m.throughID, lastAt, lastAt, lastID)
				if _, err := tx.ExecContext(ctx, db.Q(fmt.Sprintf(upsert, catchUpRange)), args...); err != nil {
					return err
				}
				m.through, m.throughID = lastAt, lastID
			}
			return db.setAddressMark(ctx, tx, m)
		})
		if err != nil {
			return 0, false, fmt.Errorf("refreshing the addresses of %q: %w", attr, err)
		}
		if done {
			return id, true, nil
		}
	}
}

// addressesState reads, without writing, whether the address table of
// attribute attr was filled once and whether it is up to date with the
// profiles, and the attribute's id in it (0: never asked for).
func (db *DB) addressesState(ctx context.Context, attr string) (id int64, filled, fresh bool, err error) {
	err = db.R.QueryRowContext(ctx, db.Q(`SELECT id, through >= 0 AND fill_next > fill_end,
		NOT EXISTS (SELECT 1 FROM profiles WHERE updated_at >= m.through AND (updated_at > m.through OR id > m.through_id))
		FROM profile_address_marks m WHERE attr = ?`), attr).Scan(&id, &filled, &fresh)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, false, false, fmt.Errorf("reading the state of the addresses of %q: %w", attr, err)
	}
	return id, filled, fresh, nil
}

func (db *DB) addressMark(ctx context.Context, tx *sql.Tx, attr string) (addressMark, error) {
	var m addressMark
	lock := ""
	if db.d == Postgres {
		lock = " FOR UPDATE"
	}
	err := tx.QueryRowContext(ctx, db.Q(`SELECT id, through, through_id, fill_next, fill_end FROM profile_address_marks WHERE attr = ?`+lock), attr).
		Scan(&m.id, &m.through, &m.throughID, &m.fillNext, &m.fillEnd)
	return m, err
}

func (db *DB) setAddressMark(ctx context.Context, tx *sql.Tx, m addressMark) error {
	_, err := tx.ExecContext(ctx, db.Q(`UPDATE profile_address_marks SET through = ?, through_id = ?, fill_next = ?, fill_end = ? WHERE id = ?`),
		m.through, m.throughID, m.fillNext, m.fillEnd, m.id)
	return err
}

// profilesOfAddresses lists the ids of the profiles that may have one of
// the subscriber hashes under attribute attr (a prefix of the hash
// matches: callers check the address again), after bringing the address
// table up to date, and true; false when the table was never filled.
func (db *DB) profilesOfAddresses(ctx context.Context, attr string, hashes []string) ([]int64, bool, error) {
	id, filled, err := db.refreshAddresses(ctx, attr, false)
	if err != nil || !filled {
		return nil, false, err
	}
	prefixes := make([]string, 0, len(hashes))
	for _, h := range hashes {
		if len(h) >= addressHashLen {
			prefixes = append(prefixes, h[:addressHashLen])
		}
	}
	var maxID int64
	if err := db.R.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM profiles`).Scan(&maxID); err != nil {
		return nil, false, fmt.Errorf("finding the profiles of %d addresses: %w", len(hashes), err)
	}
	q, args := db.addressesQuery(id, prefixes, maxID)
	rows, err := db.R.QueryContext(ctx, db.Q(q), args...)
	if err != nil {
		return nil, false, fmt.Errorf("finding the profiles of %d addresses: %w", len(hashes), err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var pid int64
		if err := rows.Scan(&pid); err != nil {
			return nil, false, fmt.Errorf("finding the profiles of %d addresses: %w", len(hashes), err)
		}
		ids = append(ids, pid)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("finding the profiles of %d addresses: %w", len(hashes), err)
	}
	return ids, true, nil
}

// addressesQuery is profilesOfAddresses' statement for attribute id and
// hash prefixes, over profile ids up to maxID.
func (db *DB) addressesQuery(id int64, prefixes []string, maxID int64) (string, []any) {
	hashCond, harg := db.seekSetSQL("hash", prefixes)
	buckets := maxID>>addressBucketShift + 1
	// One seek per bucket and address while that reads less than a scan of
	// the index would.
	if buckets*int64(len(prefixes)) > maxID/8 {
		return `SELECT profile_id FROM profile_addresses WHERE attr = ? AND ` + hashCond, []any{id, harg}
	}
	all := make([]int64, buckets)
	for i := range all {
		all[i] = int64(i)
	}
	bucketCond, barg := db.seekSetSQL(fmt.Sprintf("(profile_id >> %d)", addressBucketShift), all)
	return `SELECT profile_id FROM profile_addresses WHERE attr = ? AND ` + bucketCond + ` AND ` + hashCond, []any{id, barg, harg}
}
