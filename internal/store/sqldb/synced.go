package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
)

// ExportTags returns the bit of each named tag, assigning free bits to new names.
func (db *DB) ExportTags(ctx context.Context, exportID int64, names []string) (map[string]int, error) {
	return db.exportTags(ctx, nil, exportID, names)
}

func (db *DB) exportTags(ctx context.Context, f *store.RunLease, exportID int64, names []string) (map[string]int, error) {
	out := make(map[string]int, len(names))
	err := db.fencedTx(ctx, f, func(tx *sql.Tx) error {
		used := map[int]bool{}
		rows, err := tx.QueryContext(ctx, db.Q(`SELECT bit, name FROM export_tags WHERE export_id = ?`), exportID)
		if err != nil {
			return err
		}
		byName := map[string]int{}
		for rows.Next() {
			var bit int
			var name string
			if err := rows.Scan(&bit, &name); err != nil {
				rows.Close()
				return err
			}
			used[bit] = true
			byName[name] = bit
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		next := 0
		for _, n := range names {
			if bit, ok := byName[n]; ok {
				out[n] = bit
				continue
			}
			for next < 64 && used[next] {
				next++
			}
			if next >= 64 {
				return fmt.Errorf("more than 64 managed tags: %w", store.ErrInvalid)
			}
			if _, err := tx.ExecContext(ctx, db.Q(`INSERT INTO export_tags (export_id, bit, name) VALUES (?, ?, ?)`), exportID, next, n); err != nil {
				return err
			}
			used[next], byName[n], out[n] = true, next, next
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("assigning tags of export %d: %w", exportID, err)
	}
	return out, nil
}

// AllExportTags lists the export's tag bits.
func (db *DB) AllExportTags(ctx context.Context, exportID int64) (map[int]string, error) {
	rows, err := db.R.QueryContext(ctx, db.Q(`SELECT bit, name FROM export_tags WHERE export_id = ?`), exportID)
	if err != nil {
		return nil, fmt.Errorf("reading tags of export %d: %w", exportID, err)
	}
	defer rows.Close()
	out := map[int]string{}
	for rows.Next() {
		var bit int
		var name string
		if err := rows.Scan(&bit, &name); err != nil {
			return nil, err
		}
		out[bit] = name
	}
	return out, rows.Err()
}

// ReleaseUnusedTags frees tag bits that no synced contact of the export carries.
func (db *DB) ReleaseUnusedTags(ctx context.Context, exportID int64) error {
	return db.releaseUnusedTags(ctx, nil, exportID)
}

func (db *DB) releaseUnusedTags(ctx context.Context, f *store.RunLease, exportID int64) error {
	tags, err := db.AllExportTags(ctx, exportID)
	if err != nil {
		return err
	}
	bits := make([]int, 0, len(tags))
	for b := range tags {
		bits = append(bits, b)
	}
	sort.Ints(bits)
	// A bit is in use when one contact carries it: a look per bit, which
	// stops at the first such contact (at once for the tags of the
	// export's segments); one pass OR-ing every row's tags read the whole
	// export on every run (2.2 s over 1M).
	var used uint64
	for _, b := range bits {
		var one int
		err := db.R.QueryRowContext(ctx, db.Q(`SELECT 1 FROM synced WHERE export_id = ? AND (tags & CAST(? AS BIGINT)) <> 0 LIMIT 1`),
			exportID, int64(1)<<b).Scan(&one)
		switch {
		case err == nil:
			used |= 1 << b
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("reading tag use of export %d: %w", exportID, err)
		}
	}
	return db.fencedTx(ctx, f, func(tx *sql.Tx) error {
		for _, b := range bits {
			if used&(1<<b) != 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM export_tags WHERE export_id = ? AND bit = ?`), exportID, b); err != nil {
				return fmt.Errorf("releasing tag bit %d of export %d: %w", b, exportID, err)
			}
		}
		return nil
	})
}

const syncedColumns = `hash, email, customer_id, in_audience, in_export, fields_hash, tags, created_by_us,
	archived_by_us, status, rejected_hash`

// StreamSynced streams the export's synced rows in hash order.
func (db *DB) StreamSynced(ctx context.Context, exportID int64, fn func(store.Synced) error) error {
	return db.streamSynced(ctx, exportID, "", nil, fn)
}

// streamSynced is StreamSynced over the rows that also meet cond (SQL
// starting with " AND ", with its arguments).
func (db *DB) streamSynced(ctx context.Context, exportID int64, cond string, args []any, fn func(store.Synced) error) error {
	rows, err := db.R.QueryContext(ctx, db.Q(`SELECT `+syncedColumns+` FROM synced WHERE export_id = ?`+cond+` ORDER BY hash`), append([]any{exportID}, args...)...)
	if err != nil {
		return fmt.Errorf("reading synced state of export %d: %w", exportID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s store.Synced
		var tags int64
		if err := rows.Scan(&s.Hash, &s.Email, &s.CustomerID, &s.InAudience, &s.InExport, &s.FieldsHash, &tags,
			&s.CreatedByUs, &s.ArchivedByUs, &s.Status, &s.RejectedHash); err != nil {
			return fmt.Errorf("reading synced state of export %d: %w", exportID, err)
		}
		s.Tags = uint64(tags)
		if err := fn(s); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading synced state of export %d: %w", exportID, err)
	}
	return nil
}

// ApplySynced writes acknowledged changes in one transaction. Rows are
// upserted in multi-row statements (the last Set of a contact wins), then
// the tag bits are applied in order; since a Set never changes the tags of
// an existing row, this equals applying the changes one by one.
func (db *DB) ApplySynced(ctx context.Context, exportID int64, changes []store.SyncedChange) error {
	return db.applySynced(ctx, nil, exportID, changes, nil)
}

// ApplySyncedRun is ApplySynced that also saves the counts of run runID, in
// the same transaction, while the claim with the given token holds the
// run's lease (by the database's clock): a run resumed after a crash starts
// from counts that match the recorded state exactly. When the claim no
// longer holds, nothing is written and the error is store.ErrLeaseLost.
func (db *DB) ApplySyncedRun(ctx context.Context, exportID int64, changes []store.SyncedChange, runID int64, token string, c store.RunCounts) error {
	l := store.RunLease{RunID: runID, Token: token}
	if token == "" {
		return leaseLost(l)
	}
	return db.applySynced(ctx, nil, exportID, changes, func(tx *sql.Tx) error {
		args := append([]any{marshalCounts(c)}, fenceArgs(l)...)
		res, err := tx.ExecContext(ctx, db.Q(`UPDATE runs SET counts = ? WHERE `+db.fenceWhere()), args...)
		if err != nil {
			return fmt.Errorf("saving the counts of run %d: %w", runID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return leaseLost(l)
		}
		return nil
	})
}

// applySynced writes changes and, when also is set, calls it in the same
// transaction; with a lease f, the transaction is fenced by it.
//
// Rows of changes marked New are inserted without a read of the row first
// (a first export's creates: half a million index seeks that found
// nothing, per million contacts). Should one exist after all, the insert
// fails on the key, the transaction rolls back, and the batch is written
// again reading every row.
func (db *DB) applySynced(ctx context.Context, f *store.RunLease, exportID int64, changes []store.SyncedChange, also func(*sql.Tx) error) error {
	err := db.applySyncedOnce(ctx, f, exportID, changes, also, true)
	if uniqueViolation(err) {
		err = db.applySyncedOnce(ctx, f, exportID, changes, also, false)
	}
	return err
}

// applySyncedOnce is applySynced, trusting New or not.
func (db *DB) applySyncedOnce(ctx context.Context, f *store.RunLease, exportID int64, changes []store.SyncedChange, also func(*sql.Tx) error, trustNew bool) error {
	if len(changes) == 0 && also == nil {
		return nil
	}
	var drops []int64 // batches of create intents
	uses := make(map[string]hashUse, len(changes))
	for i, c := range changes {
		if c.DropIntents != 0 {
			drops = append(drops, c.DropIntents)
			continue
		}
		u := uses[c.Hash]
		u.n++
		if c.Set != nil || c.Delete {
			u.last = i + 1
		}
		uses[c.Hash] = u
	}
	sets := make([]store.SyncedChange, 0, len(uses))
	var deletes []any
	for i, c := range changes {
		if c.DropIntents != 0 || uses[c.Hash].last != i+1 {
			continue
		}
		if c.Set != nil {
			sets = append(sets, c)
		} else {
			deletes = append(deletes, c.Hash)
		}
	}
	// The statements of full chunks, prepared on the writer before the
	// transaction takes it.
	var hot []string
	if len(sets) >= syncedUpsertRows {
		for _, k := range []upsertKind{insertNew, upsertAll, upsertKeepKey} {
			hot = append(hot, db.syncedUpsertQuery(syncedUpsertRows, k))
		}
	}
	if len(sets) >= syncedReadRows {
		hot = append(hot, db.Q(syncedCustomersQuery(syncedReadRows)))
	}
	if len(changes) >= syncedTagRows {
		hot = append(hot, db.syncedTagQuery(syncedTagRows))
	}
	for _, q := range hot {
		if err := db.prepareCached(ctx, q); err != nil {
			return fmt.Errorf("recording synced state of export %d: %w", exportID, err)
		}
	}
	err := db.fencedTx(ctx, f, func(tx *sql.Tx) error {
		for len(deletes) > 0 {
			n := min(len(deletes), 500)
			args := append([]any{exportID}, deletes[:n]...)
			if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM synced WHERE export_id = ? AND hash IN (`+
				strings.TrimSuffix(strings.Repeat("?,", n), ",")+`)`), args...); err != nil {
				return fmt.Errorf("deleting %d contacts: %w", n, err)
			}
			deletes = deletes[n:]
		}
		if err := db.dropIntents(ctx, tx, exportID, drops); err != nil {
			return err
		}
		fresh, moved, same, err := db.splitByCustomer(ctx, tx, exportID, sets, trustNew)
		if err != nil {
			return err
		}
		pending := 0
		if len(fresh) > 0 {
			if pending, err = db.flowPending(ctx, tx, exportID); err != nil {
				return err
			}
		}
		tagged := foldNewTags(fresh, changes, uses)
		for kind, group := range [...][]store.SyncedChange{insertNew: fresh, upsertAll: moved, upsertKeepKey: same} {
			if err := db.upsertSynced(ctx, tx, exportID, group, upsertKind(kind), pending == flowOwed); err != nil {
				return err
			}
		}
		if err := db.applySyncedTags(ctx, tx, exportID, tagged); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording synced state of export %d: %w", exportID, err)
	}
	db.noteSyncedRows(ctx, exportID, len(sets))
	return nil
}

// byHashChunks calls fn for every syncedReadRows changes with their number
// and the arguments export id, hash, hash, … (the same slice each time).
func byHashChunks(exportID int64, changes []store.SyncedChange, fn func(n int, args []any) error) error {
	args := make([]any, 0, syncedReadRows+1)
	for rest := changes; len(rest) > 0; {
		n := min(len(rest), syncedReadRows)
		args = append(args[:0], exportID)
		for _, c := range rest[:n] {
			args = append(args, c.Hash)
		}
		if err := fn(n, args); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// hashUse is what a batch of changes does to one contact: n changes, the
// last Set or Delete at index last-1 (0: none).
type hashUse struct{ last, n int }

// foldNewTags drops from changes the tag changes that the insert of a new
// row writes already: a contact's first recorded change is usually its
// create with the tags that followed it (heldRow), which was an insert and
// an update of the same row. Inserts write a row's tags with its change's
// own tag change applied (upsertSynced); fresh are the rows inserted (they
// do not exist, splitByCustomer), uses the contacts' changes in the batch. A
// change is dropped only when it is its contact's one change in the batch:
// otherwise the tag changes are applied in their order after the insert,
// this one again among them, which leaves the same tags. It returns the
// changes whose tags are still to apply, and leaves changes itself as it
// was (it may be retried).
func foldNewTags(fresh, changes []store.SyncedChange, uses map[string]hashUse) []store.SyncedChange {
	var folded []bool // by index in changes
	for _, c := range fresh {
		if c.AddTags == 0 && c.RemoveTags == 0 {
			continue
		}
		if u := uses[c.Hash]; u.n == 1 {
			if folded == nil {
				folded = make([]bool, len(changes))
			}
			folded[u.last-1] = true
		}
	}
	if folded == nil {
		return changes
	}
	rest := make([]store.SyncedChange, 0, len(changes))
	for i, c := range changes {
		if !folded[i] {
			rest = append(rest, c)
		}
	}
	return rest
}

// applySyncedTags applies the tag changes of a batch with the effect of
// applying them one by one, in one UPDATE … WHERE hash IN (…) per distinct
// change and up to syncedTagRows contacts (a tag call acknowledges 500
// contacts with the same change; one statement per contact made the
// recorder the largest CPU cost of a full export). Changes of different
// contacts commute, so round k holds the k-th change of every contact,
// which keeps each contact's own order.
func (db *DB) applySyncedTags(ctx context.Context, tx *sql.Tx, exportID int64, changes []store.SyncedChange) error {
	type tagChange struct{ add, remove uint64 }
	type round struct {
		order  []tagChange
		hashes map[tagChange][]string
	}
	var rounds []round
	seen := map[string]int{}
	for _, c := range changes {
		if c.AddTags == 0 && c.RemoveTags == 0 {
			continue
		}
		k := seen[c.Hash]
		seen[c.Hash] = k + 1
		if k == len(rounds) {
			rounds = append(rounds, round{hashes: map[tagChange][]string{}})
		}
		tc := tagChange{c.AddTags, c.RemoveTags}
		if _, ok := rounds[k].hashes[tc]; !ok {
			rounds[k].order = append(rounds[k].order, tc)
		}
		rounds[k].hashes[tc] = append(rounds[k].hashes[tc], c.Hash)
	}
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, syncedTagRows+3)
	for _, r := range rounds {
		for _, tc := range r.order {
			hashes := r.hashes[tc]
			for len(hashes) > 0 {
				n := min(len(hashes), syncedTagRows)
				args = append(args[:0], int64(tc.add), int64(tc.remove), exportID)
				for _, h := range hashes[:n] {
					args = append(args, h)
				}
				var err error
				if n == syncedTagRows {
					if full == nil {
						if full, err = db.txStmt(ctx, tx, db.syncedTagQuery(n)); err != nil {
							return err
						}
					}
					_, err = full.ExecContext(ctx, args...)
				} else {
					_, err = tx.ExecContext(ctx, db.syncedTagQuery(n), args...)
				}
				if err != nil {
					return fmt.Errorf("tags of %d contacts: %w", n, err)
				}
				hashes = hashes[n:]
			}
		}
	}
	return nil
}

// How many contacts one statement writes (upserts, tag changes) or reads.
const (
	syncedUpsertRows = 200
	syncedTagRows    = 500
	syncedReadRows   = 500
)

// syncedTagQuery applies one tag change to n contacts, without a statement
// journal (orFail: the NOT NULL of tags would otherwise make it abortable).
func (db *DB) syncedTagQuery(n int) string {
	return db.Q(`UPDATE ` + db.orFail() + `synced SET tags = (tags | CAST(? AS BIGINT)) & ~CAST(? AS BIGINT) WHERE export_id = ? AND hash IN (` + placeholders(n, 1) + `)`)
}

// syncedCustomersQuery reads the key of synced_customer of n contacts.
func syncedCustomersQuery(n int) string {
	return `SELECT hash, customer_id, in_audience, status FROM synced WHERE export_id = ? AND hash IN (` + placeholders(n, 1) + `)`
}

// upsertKind is how a statement of upsertSynced writes its rows.
type upsertKind int

const (
	// insertNew inserts rows known not to exist (splitByCustomer): a plain
	// INSERT, which on SQLite needs no statement journal (see
	// buildUpsertQuery).
	insertNew upsertKind = iota
	// upsertAll inserts a row or updates all its columns but the tags.
	upsertAll
	// upsertKeepKey is upsertAll where an existing row keeps its
	// customer_id, in_audience and status.
	upsertKeepKey
)

// syncedUpsertQuery is the statement of kind k for n rows (all columns but
// the tags of existing rows; profile_status only on insert, see
// upsertSynced). With upsertKeepKey, an existing row keeps its customer_id,
// in_audience and status, the columns of synced_customer besides the
// export: an UPDATE naming a column rewrites its index entries even when
// the value stays, and synced_customer's entries lie at random (customer
// order), which cost a page write per acknowledgement.
//
// The rows share their columns but hash, email, customer_id, fields_hash
// and tags (syncedShared): those are parameters 1-8, bound once, and row i
// has parameters 9+5i to 13+5i. On SQLite the row's own are plain '?'
// (numbered after the largest before them): the driver asks SQLite for
// every parameter's name, which it finds by a scan of the named ones, so a
// name for each of a thousand parameters made binding quadratic. The query
// is written for the database and not passed through Q.
func (db *DB) syncedUpsertQuery(n int, k upsertKind) string {
	// A full statement's text (a thousand parameters) is built once:
	// writing it for every statement cost more than binding them. The
	// shorter last statements of batches are parsed anew anyway.
	if n != syncedUpsertRows {
		return db.buildUpsertQuery(n, k)
	}
	if q, ok := db.upserts.Load(k); ok {
		return q.(string)
	}
	q := db.buildUpsertQuery(n, k)
	db.upserts.Store(k, q)
	return q
}

// orFail is the conflict clause of a multi-row write of the synced state
// that must keep no statement journal: "OR FAIL " on SQLite, "" elsewhere.
//
// On SQLite, a statement that writes several rows and may stop half way
// with ABORT (a NOT NULL or UNIQUE constraint, an immediate foreign key, a
// function in an index, or any DO UPDATE, which checks NOT NULL with ABORT
// whatever the column says) keeps a statement journal: a copy of every
// page it changes, so that it can undo its own rows alone. A first export's
// inserts spent about 1 s of CPU of a 1M run copying pages into it, and
// the tag change 0.3 s of the recorder's 0.9 s in a run over 1M after 1 %
// changed (8 KiB pages). OR FAIL stops without undoing the rows before the
// failure, which the transaction's rollback on any error undoes anyway.
// With the foreign key deferred and the index free of functions (migration
// 0024), such a statement keeps none (TestSyncedWritesNeedNoStatementJournal).
func (db *DB) orFail() string {
	if db.d == SQLite {
		return "OR FAIL "
	}
	return ""
}

// buildUpsertQuery writes syncedUpsertQuery's text: insertNew's statement
// keeps no statement journal (orFail), the others' DO UPDATE does.
func (db *DB) buildUpsertQuery(n int, k upsertKind) string {
	var q strings.Builder
	q.WriteString(`INSERT `)
	if k == insertNew {
		q.WriteString(db.orFail())
	}
	q.WriteString(`INTO synced (export_id, in_audience, in_export, created_by_us, archived_by_us, status, rejected_hash,
		profile_status, hash, email, customer_id, fields_hash, tags) VALUES `)
	param := syncedSharedParams
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteByte('(')
		for j := 1; j <= syncedSharedParams; j++ {
			q.WriteString(db.param(j))
			q.WriteString(", ")
		}
		for j := range syncedRowParams {
			if j > 0 {
				q.WriteString(", ")
			}
			param++
			if db.d == Postgres {
				q.WriteString(db.param(param))
			} else {
				q.WriteByte('?')
			}
		}
		q.WriteByte(')')
	}
	if k == insertNew {
		return q.String()
	}
	q.WriteString(` ON CONFLICT (export_id, hash) DO UPDATE SET email = excluded.email,`)
	if k == upsertAll {
		q.WriteString(` customer_id = excluded.customer_id, in_audience = excluded.in_audience, status = excluded.status,`)
	}
	q.WriteString(` in_export = excluded.in_export, fields_hash = excluded.fields_hash,
		created_by_us = excluded.created_by_us, archived_by_us = excluded.archived_by_us,
		rejected_hash = excluded.rejected_hash`)
	return q.String()
}

// param is the placeholder of parameter i (from 1) in a query not passed
// through Q.
func (db *DB) param(i int) string {
	if db.d == Postgres {
		return "$" + strconv.Itoa(i)
	}
	return "?" + strconv.Itoa(i)
}

// How many parameters an upsert's rows share, and how many each row has.
const (
	syncedSharedParams = 8
	syncedRowParams    = 5
)

// syncedShared is what the rows of one upsert statement have in common
// (syncedUpsertQuery): in a first run, nearly every row has the same.
type syncedShared struct {
	inAudience, inExport, createdByUs, archivedByUs bool
	status, rejectedHash, shown                     string
}

// args appends the upsert's parameters 1-8 to dst.
func (k syncedShared) args(dst []any, exportID int64) []any {
	return append(dst, exportID, k.inAudience, k.inExport, k.createdByUs, k.archivedByUs, k.status, k.rejectedHash, k.shown)
}

// syncedBuckets is the condition on a synced row (alias a, with its dot)
// that lets a lookup by customer_id seek the index synced_customer on
// SQLite, where the first hex digit of the hash comes before the customer
// (migration 0024, whose expression syncedBucket writes): it names every
// bucket, so every row meets it. PostgreSQL's index leads with the customer.
func (db *DB) syncedBuckets(a string) string {
	if db.d == Postgres {
		return "TRUE"
	}
	return syncedBucket(a) + " IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)"
}

// syncedBucket is the bucket of a synced row (alias a, with its dot) in
// synced_customer: the value of its hash's first hex digit, 0-15 (15 also
// for anything after 'e'). It compares instead of calling a function: a
// function in an index's expression lets every statement that writes
// several rows stop half way, which costs them a statement journal (see
// buildUpsertQuery).
func syncedBucket(a string) string {
	var b strings.Builder
	b.WriteString("CASE")
	for i, d := range "123456789abcdef" {
		fmt.Fprintf(&b, " WHEN %shash < '%c' THEN %d", a, d, i)
	}
	b.WriteString(" ELSE 15 END")
	return b.String()
}

// syncedKey is a row's part of the key of synced_customer.
type syncedKey struct {
	customer   string
	inAudience bool
	status     string
}

// splitByCustomer sorts sets by the statement that writes them: the rows
// that do not exist (fresh), those that exist with another customer_id,
// in_audience or status (moved), and those that exist with the same ones
// (same; see upsertKind). With trustNew, the rows of changes marked New
// are taken not to exist without a look.
func (db *DB) splitByCustomer(ctx context.Context, tx *sql.Tx, exportID int64, sets []store.SyncedChange, trustNew bool) (fresh, moved, same []store.SyncedChange, err error) {
	read := sets
	if trustNew {
		read = nil
		for _, c := range sets {
			if !c.New {
				read = append(read, c)
			}
		}
	}
	// have starts small: in a first run almost no row exists yet.
	have := map[string]syncedKey{}
	err = byHashChunks(exportID, read, func(n int, args []any) error {
		st, err := db.txStmt(ctx, tx, db.Q(syncedCustomersQuery(n)))
		if err != nil {
			return fmt.Errorf("reading customers of %d contacts: %w", n, err)
		}
		defer st.Close()
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("reading customers of %d contacts: %w", n, err)
		}
		defer rows.Close()
		for rows.Next() {
			var h string
			var k syncedKey
			if err := rows.Scan(&h, &k.customer, &k.inAudience, &k.status); err != nil {
				return err
			}
			have[h] = k
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading customers of %d contacts: %w", n, err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if len(have) == 0 {
		return sets, nil, nil, nil
	}
	fresh = make([]store.SyncedChange, 0, len(sets))
	for _, c := range sets {
		switch k, ok := have[c.Hash]; {
		case !ok:
			fresh = append(fresh, c)
		case k == (syncedKey{c.Set.CustomerID, c.Set.InAudience, c.Set.Status}):
			same = append(same, c)
		default:
			moved = append(moved, c)
		}
	}
	return fresh, moved, same, nil
}

// upsertSynced inserts or updates rows (all but their tags), in statements
// of up to syncedUpsertRows rows that share their other columns (binding
// those once per statement instead of once per row halved the driver's
// binding work), as statements of kind k (syncedUpsertQuery). With flowOwed (the export's
// flow-back owes its profiles a full pass not begun yet), a new
// row in the audience is inserted with profile_status noted already: the
// pass writes it whatever that column says, and the row never enters
// synced_flow_due only to be rewritten after the pass. An existing row
// keeps its profile_status.
func (db *DB) upsertSynced(ctx context.Context, tx *sql.Tx, exportID int64, sets []store.SyncedChange, k upsertKind, flowOwed bool) error {
	// The groups in order of first appearance, and each row's group.
	var shared []syncedShared
	group := make([]int, len(sets))
	index := map[syncedShared]int{}
	for i, c := range sets {
		s := c.Set
		k := syncedShared{inAudience: s.InAudience, inExport: s.InExport, createdByUs: s.CreatedByUs, archivedByUs: s.ArchivedByUs,
			status: s.Status, rejectedHash: s.RejectedHash}
		if flowOwed && s.InAudience && s.CustomerID != "" && s.Status != "" {
			k.shown = s.Status
		}
		if i > 0 && k == shared[group[i-1]] { // rows come in runs of one group
			group[i] = group[i-1]
			continue
		}
		g, ok := index[k]
		if !ok {
			g = len(shared)
			index[k] = g
			shared = append(shared, k)
		}
		group[i] = g
	}
	args := make([]any, 0, syncedSharedParams+syncedRowParams*min(len(sets), syncedUpsertRows))
	for g, sh := range shared {
		args = sh.args(args[:0], exportID)
		for i, c := range sets {
			if group[i] != g {
				continue
			}
			// The tags go into inserts only (foldNewTags).
			tags := (c.Set.Tags | c.AddTags) &^ c.RemoveTags
			args = append(args, c.Hash, c.Set.Email, c.Set.CustomerID, c.Set.FieldsHash, int64(tags))
			if len(args) == syncedSharedParams+syncedRowParams*syncedUpsertRows {
				if err := db.execUpsert(ctx, tx, args, k); err != nil {
					return err
				}
				args = sh.args(args[:0], exportID)
			}
		}
		if len(args) > syncedSharedParams {
			if err := db.execUpsert(ctx, tx, args, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// execUpsert runs the upsert of the rows in args (syncedShared.args, then
// each row's own).
func (db *DB) execUpsert(ctx context.Context, tx *sql.Tx, args []any, k upsertKind) error {
	n := (len(args) - syncedSharedParams) / syncedRowParams
	// Full-size statements (most of a large run) are parsed once per
	// process instead of once per call (2.6 s of CPU in a 1M first run).
	st, err := db.txStmt(ctx, tx, db.syncedUpsertQuery(n, k))
	if err != nil {
		return fmt.Errorf("upserting %d contacts: %w", n, err)
	}
	defer st.Close()
	if _, err := st.ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("upserting %d contacts: %w", n, err)
	}
	return nil
}

// UpdateSyncedStatuses sets the last known status of contacts the export has.
func (db *DB) UpdateSyncedStatuses(ctx context.Context, exportID int64, statuses map[string]string) error {
	return db.updateSyncedStatuses(ctx, nil, exportID, statuses)
}

func (db *DB) updateSyncedStatuses(ctx context.Context, f *store.RunLease, exportID int64, statuses map[string]string) error {
	if len(statuses) == 0 {
		return nil
	}
	hashes := make([]string, 0, len(statuses))
	for h := range statuses {
		hashes = append(hashes, h)
	}
	sort.Strings(hashes)
	err := db.fencedTx(ctx, f, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, db.Q(`UPDATE synced SET status = ? WHERE export_id = ? AND hash = ? AND in_audience`))
		if err != nil {
			return err
		}
		defer st.Close()
		for _, h := range hashes {
			if _, err := st.ExecContext(ctx, statuses[h], exportID, h); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("updating statuses of export %d: %w", exportID, err)
	}
	return nil
}

// SyncedOtherStatus reports whether the export has a contact in the audience
// whose status is not status. It stops at the first one; a GROUP BY of the
// statuses made SQLite sort every row in its in-memory temp store (≈500 MB
// for 10M contacts). For "subscribed" (what runs ask) the partial index
// synced_other_status (migration 0016) holds just those contacts: without
// it, an audience where everyone is subscribed was read whole (2.2 s of a
// run over 1M after 1% changed).
func (db *DB) SyncedOtherStatus(ctx context.Context, exportID int64, status string) (bool, error) {
	q, args := `SELECT 1 FROM synced WHERE export_id = ? AND in_audience AND status <> ? LIMIT 1`, []any{exportID, status}
	if status == "subscribed" {
		q, args = `SELECT 1 FROM synced WHERE export_id = ? AND in_audience AND status <> 'subscribed' LIMIT 1`, []any{exportID}
	}
	var found int
	err := db.R.QueryRowContext(ctx, db.Q(q), args...).Scan(&found)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading statuses of export %d: %w", exportID, err)
	}
	return true, nil
}

// RecordArchived notes contacts archived in the audience.
func (db *DB) RecordArchived(ctx context.Context, exportID int64, emails map[string]string) error {
	return db.recordArchived(ctx, nil, exportID, emails)
}

func (db *DB) recordArchived(ctx context.Context, f *store.RunLease, exportID int64, emails map[string]string) error {
	if len(emails) == 0 {
		return nil
	}
	hashes := make([]string, 0, len(emails))
	for h := range emails {
		hashes = append(hashes, h)
	}
	sort.Strings(hashes)
	err := db.fencedTx(ctx, f, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, db.Q(`INSERT INTO synced (export_id, hash, email, customer_id, in_audience, status)
			VALUES (?, ?, ?, '', ?, 'archived') ON CONFLICT (export_id, hash) DO UPDATE SET status = 'archived'`))
		if err != nil {
			return err
		}
		defer st.Close()
		for _, h := range hashes {
			if _, err := st.ExecContext(ctx, exportID, h, emails[h], true); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording archived contacts of export %d: %w", exportID, err)
	}
	return nil
}

// SyncedAddressChanges lists the customers (customer_id → true) that have a
// contact of the export in the audience under another address than their
// profile's current one (attribute emailAttr): the candidates of address
// changes. It streams the export's rows; memory grows only with the
// candidates.
func (db *DB) SyncedAddressChanges(ctx context.Context, exportID int64, emailAttr string) (map[string]bool, error) {
	rows, err := db.R.QueryContext(ctx, db.Q(`SELECT s.customer_id, s.email, p.`+db.attrsCol()+`
		FROM synced s JOIN profiles p ON p.customer_id = s.customer_id
		WHERE s.export_id = ? AND s.in_audience AND s.customer_id <> ''`), exportID)
	if err != nil {
		return nil, fmt.Errorf("reading address changes of export %d: %w", exportID, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	var scratch []attrjson.Member
	for rows.Next() {
		var id, email string
		var attrs []byte
		if err := rows.Scan(&id, &email, &attrs); err != nil {
			return nil, fmt.Errorf("reading address changes of export %d: %w", exportID, err)
		}
		scratch, err = attrjson.Split(scratch[:0], attrs)
		if err != nil {
			continue // not an object: no address to compare
		}
		current := ""
		for _, m := range scratch {
			if string(m.Name) == emailAttr {
				var v string
				if json.Unmarshal(m.Value, &v) == nil {
					current = strings.ToLower(strings.TrimSpace(v))
				}
				break
			}
		}
		if current != email {
			out[id] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading address changes of export %d: %w", exportID, err)
	}
	return out, nil
}

// SyncedByHash reads one synced row of the export; ok is false when there
// is none.
func (db *DB) SyncedByHash(ctx context.Context, exportID int64, hash string) (s store.Synced, ok bool, err error) {
	var tags int64
	err = db.R.QueryRowContext(ctx, db.Q(`SELECT `+syncedColumns+` FROM synced WHERE export_id = ? AND hash = ?`), exportID, hash).Scan(
		&s.Hash, &s.Email, &s.CustomerID, &s.InAudience, &s.InExport, &s.FieldsHash, &tags,
		&s.CreatedByUs, &s.ArchivedByUs, &s.Status, &s.RejectedHash)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Synced{}, false, nil
	}
	if err != nil {
		return store.Synced{}, false, fmt.Errorf("reading a synced contact of export %d: %w", exportID, err)
	}
	s.Tags = uint64(tags)
	return s, true, nil
}
