package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/jsonenc"
	"github.com/segsync/segsync/internal/store"
)

// Create intents are kept by batch: a row of create_intents holds the
// intents noted together as a JSON array of [email, customer_id,
// fields_hash] (batches noted before 2026-12 also hold the hash first: it
// is the address's, emailaddr.Hash, so it is no longer written). One row per batch costs one insert and one delete for a
// few thousand creates, where a row per contact cost an insert, a read and
// a delete in an index for each.

// AddIntents notes create intents as one batch and returns its id.
func (db *DB) AddIntents(ctx context.Context, exportID int64, intents []store.Intent) (int64, error) {
	return db.addIntents(ctx, nil, exportID, intents)
}

func (db *DB) addIntents(ctx context.Context, f *store.RunLease, exportID int64, intents []store.Intent) (int64, error) {
	if len(intents) == 0 {
		return 0, nil
	}
	text := encodeIntents(intents)
	// Parsed once per process: a first export of 1M contacts notes about
	// two thousand batches.
	q := db.Q(`INSERT INTO create_intents (export_id, intents) VALUES (?, ?) RETURNING id`)
	if err := db.prepareCached(ctx, q); err != nil {
		return 0, fmt.Errorf("noting %d create intents of export %d: %w", len(intents), exportID, err)
	}
	var id int64
	err := db.fencedTx(ctx, f, func(tx *sql.Tx) error {
		st, err := db.txStmt(ctx, tx, q)
		if err != nil {
			return err
		}
		defer st.Close()
		return st.QueryRowContext(ctx, exportID, text).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("noting %d create intents of export %d: %w", len(intents), exportID, err)
	}
	return id, nil
}

// LeftIntents returns the intents earlier runs left, by hash, and drops
// those whose outcome was recorded since.
func (db *DB) LeftIntents(ctx context.Context, exportID int64) (map[string]string, error) {
	return db.leftIntents(ctx, nil, exportID)
}

// leftIntents reads the export's batches of intents in the order noted
// (a later intent of a hash replaces an earlier one). An intent is settled
// when its contact's synced row is in the audience, or carries the
// intent's fields as rejected: its create's outcome was recorded. A batch
// whose intents are all settled is deleted, one with some settled is
// rewritten without them. Both only if the batch is as read: an erasure
// on PostgreSQL may have rewritten it meanwhile, and a rewrite from what
// was read would bring the erased intent back (the next run tidies it).
func (db *DB) leftIntents(ctx context.Context, f *store.RunLease, exportID int64) (map[string]string, error) {
	var left map[string]string
	err := db.fencedTx(ctx, f, func(tx *sql.Tx) error {
		left = nil
		batches, err := db.readIntentBatches(ctx, tx, false, `SELECT id, intents FROM create_intents WHERE export_id = ? ORDER BY id`, exportID)
		if err != nil || len(batches) == 0 {
			return err
		}
		settled, err := db.settledIntents(ctx, tx, exportID, batches)
		if err != nil {
			return err
		}
		for _, b := range batches {
			keep := slices.DeleteFunc(slices.Clone(b.intents), func(in store.Intent) bool { return settled[in] })
			if err := db.rewriteIntents(ctx, tx, b, keep); err != nil {
				return err
			}
			for _, in := range keep {
				if left == nil {
					left = map[string]string{}
				}
				left[in.Hash] = in.FieldsHash
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the create intents left for export %d: %w", exportID, err)
	}
	return left, nil
}

// intentBatch is a row of create_intents as read.
type intentBatch struct {
	id      int64
	text    string
	intents []store.Intent
	// export's connection and audience (read by erasures only)
	conn sql.NullInt64
	aud  string
}

// readIntentBatches reads batches with query, which selects id and intents
// and, withExport, the export's connection and audience.
func (db *DB) readIntentBatches(ctx context.Context, tx *sql.Tx, withExport bool, query string, args ...any) ([]intentBatch, error) {
	rows, err := tx.QueryContext(ctx, db.Q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("reading create intents: %w", err)
	}
	defer rows.Close()
	var batches []intentBatch
	for rows.Next() {
		var b intentBatch
		dest := []any{&b.id, &b.text}
		if withExport {
			dest = append(dest, &b.conn, &b.aud)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("reading create intents: %w", err)
		}
		if b.intents, err = decodeIntents(b.text); err != nil {
			return nil, fmt.Errorf("reading create intents batch %d: %w", b.id, err)
		}
		batches = append(batches, b)
	}
	return batches, rows.Err()
}

// settledIntents reports which intents of the batches are settled (see
// leftIntents).
func (db *DB) settledIntents(ctx context.Context, tx *sql.Tx, exportID int64, batches []intentBatch) (map[store.Intent]bool, error) {
	byHash := map[string][]store.Intent{}
	for _, b := range batches {
		for _, in := range b.intents {
			byHash[in.Hash] = append(byHash[in.Hash], in)
		}
	}
	cond, arg := db.seekSetSQL("hash", slices.Collect(maps.Keys(byHash)))
	rows, err := tx.QueryContext(ctx, db.Q(`SELECT hash, in_audience, rejected_hash FROM synced WHERE export_id = ? AND `+cond), exportID, arg)
	if err != nil {
		return nil, fmt.Errorf("reading the contacts of %d create intents: %w", len(byHash), err)
	}
	defer rows.Close()
	settled := map[store.Intent]bool{}
	for rows.Next() {
		var h, rejected string
		var in bool
		if err := rows.Scan(&h, &in, &rejected); err != nil {
			return nil, fmt.Errorf("reading the contacts of %d create intents: %w", len(byHash), err)
		}
		for _, it := range byHash[h] {
			if in || rejected == it.FieldsHash {
				settled[it] = true
			}
		}
	}
	return settled, rows.Err()
}

// rewriteIntents keeps only keep of batch b: it deletes the row when keep
// is empty and rewrites it when some intents went, in both cases only if
// the row is still as read.
func (db *DB) rewriteIntents(ctx context.Context, tx *sql.Tx, b intentBatch, keep []store.Intent) error {
	if len(keep) == len(b.intents) {
		return nil
	}
	if len(keep) == 0 {
		if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM create_intents WHERE id = ? AND intents = ?`), b.id, b.text); err != nil {
			return fmt.Errorf("dropping create intents batch %d: %w", b.id, err)
		}
		return nil
	}
	if _, err := tx.ExecContext(ctx, db.Q(`UPDATE create_intents SET intents = ? WHERE id = ? AND intents = ?`), encodeIntents(keep), b.id, b.text); err != nil {
		return fmt.Errorf("rewriting create intents batch %d: %w", b.id, err)
	}
	return nil
}

// dropIntents deletes batches of create intents whose creates' outcomes
// are all recorded.
func (db *DB) dropIntents(ctx context.Context, tx *sql.Tx, exportID int64, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{exportID}
	for _, id := range ids {
		args = append(args, id)
	}
	if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM create_intents WHERE export_id = ? AND id IN (`+placeholders(len(ids), 1)+`)`), args...); err != nil {
		return fmt.Errorf("dropping %d batches of create intents: %w", len(ids), err)
	}
	return nil
}

// eraseIntents removes a person's create intents from every export and
// returns them with their export's connection and audience: their creates
// were sent without an answer recorded, so the contacts may exist.
func (db *DB) eraseIntents(ctx context.Context, tx *sql.Tx, customerID string) ([]intentBatch, error) {
	q := `SELECT i.id, i.intents, e.connection_id, e.audience_id FROM create_intents i JOIN exports e ON e.id = i.export_id ORDER BY i.id`
	if db.d == Postgres {
		// Erasures and the tidying of left intents rewrite batches:
		// the second to lock a batch reads it as the first left it.
		q += ` FOR UPDATE OF i`
	}
	batches, err := db.readIntentBatches(ctx, tx, true, q)
	if err != nil {
		return nil, err
	}
	var found []intentBatch
	for _, b := range batches {
		keep := slices.DeleteFunc(slices.Clone(b.intents), func(in store.Intent) bool { return in.CustomerID == customerID })
		if len(keep) == len(b.intents) {
			continue
		}
		if err := db.rewriteIntents(ctx, tx, b, keep); err != nil {
			return nil, err
		}
		b.intents = slices.DeleteFunc(b.intents, func(in store.Intent) bool { return in.CustomerID != customerID })
		found = append(found, b)
	}
	return found, nil
}

// encodeIntents writes intents as json.Marshal writes them as [][3]string
// (email, customer id, fields hash), without its reflection: a first
// export of 1M contacts notes a million. The hash is left out: it is the
// address's (store.Intent), and a third of the bytes every batch wrote to
// the database twice (its journal, then its file) and deleted again.
func encodeIntents(intents []store.Intent) string {
	b := make([]byte, 0, 2+len(intents)*96) // an address, a customer id, a hash
	b = append(b, '[')
	for i, in := range intents {
		if i > 0 {
			b = append(b, ',')
		}
		row := [3]string{in.Email, in.CustomerID, in.FieldsHash}
		b = jsonenc.Strings(b, row[:])
	}
	return string(append(b, ']'))
}

// decodeIntents reads encodeIntents' text, and the rows of batches noted
// before it left the hash out ([hash, email, customer id, fields hash]).
func decodeIntents(text string) ([]store.Intent, error) {
	var rows [][]string
	if err := json.Unmarshal([]byte(text), &rows); err != nil {
		return nil, fmt.Errorf("decoding create intents: %w", err)
	}
	intents := make([]store.Intent, len(rows))
	for i, r := range rows {
		switch len(r) {
		case 3:
			intents[i] = store.Intent{Hash: emailaddr.Hash(r[0]), Email: r[0], CustomerID: r[1], FieldsHash: r[2]}
		case 4:
			intents[i] = store.Intent{Hash: r[0], Email: r[1], CustomerID: r[2], FieldsHash: r[3]}
		default:
			return nil, fmt.Errorf("decoding create intents: a row of %d values", len(r))
		}
	}
	return intents, nil
}
