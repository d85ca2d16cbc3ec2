package sqldb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
)

// Several sources, one profile (SPEC section 11). Each source's attributes
// of a profile are kept in source_rows; profiles.attrs, which segment rules
// and the engine read, is their merge: per attribute, the source with the
// lowest priority number wins, ties go to the older source (lower id).
// Attributes named mailchimp.* are written by the consent flow, never by a
// source: the merge keeps them from the stored profile as they are, and they
// do not keep a profile alive. A profile no source holds is deleted. Every
// write to source_rows goes through applyLayer, so profiles.attrs is always
// the merge of its rows, and a profile is rewritten (new updated_at) only
// when the merge changed.

// layerOp changes one source's row of one profile.
type layerOp struct {
	id     string
	attrs  []byte // the new row, or the patch when patch is set
	patch  bool   // attrs is an attrjson patch for the stored row (imports)
	remove bool   // the source no longer holds the profile
	// remerge keeps the row and merges the profile again (a priority
	// changed).
	remerge bool
}

// layerCounts tell what applyLayer did to profiles and source rows.
type layerCounts struct {
	inserted, updated, unchanged, deleted int64
	rowsNew, rowsChanged, rowsRemoved     int64
}

type srcRow struct {
	src   int64
	attrs []byte
}

// layerState is what applyLayer needs across chunks of one transaction.
type layerState struct {
	now    int64
	rank   map[int64][2]int64 // source id -> (priority, id)
	cat    *catalogDelta
	counts layerCounts
	m, mo  attrjson.Merger
	mm     []mergeMember
}

type mergeMember struct {
	name, value []byte
	rank        [2]int64
}

func (db *DB) newLayerState(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, now int64) (*layerState, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, priority FROM sources`)
	if err != nil {
		return nil, fmt.Errorf("reading source priorities: %w", err)
	}
	defer rows.Close()
	st := &layerState{now: now, rank: map[int64][2]int64{}, cat: newCatalogDelta()}
	for rows.Next() {
		var id, prio int64
		if err := rows.Scan(&id, &prio); err != nil {
			return nil, fmt.Errorf("reading source priorities: %w", err)
		}
		st.rank[id] = [2]int64{prio, id}
	}
	return st, rows.Err()
}

func (db *DB) lockProfiles(ctx context.Context, tx *sql.Tx) error {
	if db.d == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, profileLockKey); err != nil {
			return fmt.Errorf("locking profiles: %w", err)
		}
	}
	return nil
}

func (db *DB) uploadsSourceID(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, db.Q(`SELECT id FROM sources WHERE name = ?`), store.UploadsSource).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("finding the uploads source: %w", err)
	}
	return id, nil
}

// applyLayer applies ops (distinct ids) of source src in tx.
func (db *DB) applyLayer(ctx context.Context, tx *sql.Tx, src int64, ops []layerOp, st *layerState) error {
	for start := 0; start < len(ops); start += profileLookupChunk {
		if err := db.applyLayerChunk(ctx, tx, src, ops[start:min(start+profileLookupChunk, len(ops))], st); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) applyLayerChunk(ctx context.Context, tx *sql.Tx, src int64, ops []layerOp, st *layerState) error {
	args := make([]any, len(ops))
	for i, op := range ops {
		args[i] = op.id
	}
	in := `(` + placeholders(len(ops), 1) + `)`
	held := make(map[string][]srcRow, len(ops))
	if err := scanEach(ctx, tx, db.Q(`SELECT customer_id, source_id, attrs FROM source_rows WHERE customer_id IN `+in), args, func(r *sql.Rows) error {
		var id string
		var sr srcRow
		if err := r.Scan(&id, &sr.src, &sr.attrs); err != nil {
			return err
		}
		held[id] = append(held[id], sr)
		return nil
	}); err != nil {
		return fmt.Errorf("reading source rows: %w", err)
	}
	stored := make(map[string][]byte, len(ops))
	if err := scanEach(ctx, tx, db.Q(`SELECT customer_id, `+db.attrsCol()+` FROM profiles WHERE customer_id IN `+in), args, func(r *sql.Rows) error {
		var id string
		var a []byte
		if err := r.Scan(&id, &a); err != nil {
			return err
		}
		stored[id] = a
		return nil
	}); err != nil {
		return fmt.Errorf("reading stored profiles: %w", err)
	}

	var rowPut, rowDel, profPut, profDel []any
	for _, op := range ops {
		rows := held[op.id]
		i := slices.IndexFunc(rows, func(r srcRow) bool { return r.src == src })
		var newRow []byte
		switch {
		case op.remerge:
		case op.remove:
			if i < 0 {
				continue
			}
			rows = slices.Delete(rows, i, i+1)
			rowDel = append(rowDel, op.id)
			st.counts.rowsRemoved++
		case op.patch:
			var old []byte
			if i >= 0 {
				old = rows[i].attrs
			}
			merged, changed, err := st.m.Merge(old, op.attrs, nil)
			if err != nil {
				return fmt.Errorf("profile %q: %w", op.id, err)
			}
			if i >= 0 && !changed {
				// The source's row is as it was: so is the profile.
				st.counts.unchanged++
				continue
			}
			newRow = bytes.Clone(merged)
		default:
			newRow = op.attrs
			if i >= 0 && bytes.Equal(rows[i].attrs, newRow) {
				st.counts.unchanged++
				continue
			}
		}
		if newRow != nil {
			if i >= 0 {
				rows[i].attrs = newRow
				st.counts.rowsChanged++
			} else {
				rows = append(rows, srcRow{src: src, attrs: newRow})
				st.counts.rowsNew++
			}
			rowPut = append(rowPut, src, op.id, string(newRow))
		}
		old, exists := stored[op.id]
		if len(rows) == 0 {
			if exists {
				profDel = append(profDel, op.id)
				st.counts.deleted++
				if err := st.cat.forget(old); err != nil {
					return fmt.Errorf("profile %q: %w", op.id, err)
				}
			}
			continue
		}
		merged, changed, err := st.merge(rows, old, exists)
		if err != nil {
			return fmt.Errorf("profile %q: %w", op.id, err)
		}
		switch {
		case !exists:
			st.counts.inserted++
		case changed:
			st.counts.updated++
		default:
			st.counts.unchanged++
			continue
		}
		profPut = append(profPut, op.id, string(merged), st.now)
	}
	if err := db.execChunks(ctx, tx, rowPut, 3, func(n int) string {
		return `INSERT INTO source_rows (source_id, customer_id, attrs) VALUES ` + placeholders(n, 3) +
			` ON CONFLICT (source_id, customer_id) DO UPDATE SET attrs = excluded.attrs`
	}); err != nil {
		return fmt.Errorf("writing source rows: %w", err)
	}
	if len(rowDel) > 0 {
		q := db.Q(`DELETE FROM source_rows WHERE source_id = ? AND customer_id IN (` + placeholders(len(rowDel), 1) + `)`)
		if _, err := tx.ExecContext(ctx, q, append([]any{src}, rowDel...)...); err != nil {
			return fmt.Errorf("removing source rows: %w", err)
		}
	}
	if err := db.execChunks(ctx, tx, profPut, 3, func(n int) string {
		return `INSERT INTO profiles (customer_id, attrs, updated_at) VALUES ` + placeholders(n, 3) +
			` ON CONFLICT (customer_id) DO UPDATE SET attrs = excluded.attrs, updated_at = excluded.updated_at`
	}); err != nil {
		return fmt.Errorf("writing profiles: %w", err)
	}
	if len(profDel) > 0 {
		if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM profiles WHERE customer_id IN (`+placeholders(len(profDel), 1)+`)`), profDel...); err != nil {
			return fmt.Errorf("deleting profiles: %w", err)
		}
	}
	return nil
}

// execChunks runs a multi-row statement over args, width per row, in
// chunks of profileWriteChunk rows.
func (db *DB) execChunks(ctx context.Context, tx *sql.Tx, args []any, width int, query func(rows int) string) error {
	per := profileWriteChunk * width
	for start := 0; start < len(args); start += per {
		chunk := args[start:min(start+per, len(args))]
		if _, err := tx.ExecContext(ctx, db.Q(query(len(chunk)/width)), chunk...); err != nil {
			return err
		}
	}
	return nil
}

func scanEach(ctx context.Context, tx *sql.Tx, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		if err := fn(rows); err != nil {
			rows.Close()
			return err
		}
	}
	return errors.Join(rows.Err(), rows.Close())
}

func isReserved(name []byte) bool { return bytes.HasPrefix(name, []byte(store.ReservedAttrPrefix)) }

// merge computes a profile's attributes from the rows that hold it and the
// reserved attributes of its stored form, and whether they differ from
// stored. The result is canonical and valid until the next call; on change
// the catalogue delta is updated.
func (st *layerState) merge(rows []srcRow, stored []byte, exists bool) ([]byte, bool, error) {
	var oldCanon []byte
	if exists {
		c, err := st.mo.Canonical(stored)
		if err != nil {
			return nil, false, fmt.Errorf("stored attributes: %w", err)
		}
		oldCanon = c
	}
	var merged []byte
	if len(rows) == 1 && !bytes.Contains(oldCanon, []byte(`"`+store.ReservedAttrPrefix)) && !bytes.Contains(rows[0].attrs, []byte(`"`+store.ReservedAttrPrefix)) {
		merged = rows[0].attrs
	} else {
		st.mm = st.mm[:0]
		var members []attrjson.Member
		for _, r := range rows {
			var err error
			members, err = attrjson.Split(members[:0], r.attrs)
			if err != nil {
				return nil, false, fmt.Errorf("source %d attributes: %w", r.src, err)
			}
			rk, ok := st.rank[r.src]
			if !ok {
				rk = [2]int64{1 << 62, r.src}
			}
			for _, x := range members {
				if !isReserved(x.Name) {
					st.mm = append(st.mm, mergeMember{x.Name, x.Value, rk})
				}
			}
		}
		if exists {
			members, _ = attrjson.Split(members[:0], oldCanon)
			for _, x := range members {
				if isReserved(x.Name) {
					st.mm = append(st.mm, mergeMember{x.Name, x.Value, [2]int64{-1 << 62, 0}})
				}
			}
		}
		slices.SortStableFunc(st.mm, func(a, b mergeMember) int {
			if c := bytes.Compare(a.name, b.name); c != 0 {
				return c
			}
			if a.rank[0] != b.rank[0] {
				return cmpInt(a.rank[0], b.rank[0])
			}
			return cmpInt(a.rank[1], b.rank[1])
		})
		buf := []byte{'{'}
		for i, x := range st.mm {
			if i > 0 && bytes.Equal(st.mm[i-1].name, x.name) {
				continue
			}
			if len(buf) > 1 {
				buf = append(buf, ',')
			}
			buf = append(buf, '"')
			buf = append(buf, x.name...)
			buf = append(buf, '"', ':')
			buf = append(buf, x.value...)
		}
		merged = append(buf, '}')
	}
	canon, err := st.m.Canonical(merged)
	if err != nil {
		return nil, false, fmt.Errorf("merged attributes: %w", err)
	}
	if exists && bytes.Equal(canon, oldCanon) {
		return canon, false, nil
	}
	if err := diffTypes(oldCanon, canon, st.cat.change); err != nil {
		return nil, false, err
	}
	return canon, true, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// diffTypes reports the type changes between two canonical objects.
func diffTypes(old, nw []byte, fn func(attrjson.Change)) error {
	var a, b []attrjson.Member
	var err error
	if len(old) > 0 {
		if a, err = attrjson.Split(nil, old); err != nil {
			return err
		}
	}
	if b, err = attrjson.Split(nil, nw); err != nil {
		return err
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		c := 0
		switch {
		case i == len(a):
			c = 1
		case j == len(b):
			c = -1
		default:
			c = bytes.Compare(a[i].Name, b[j].Name)
		}
		switch {
		case c < 0:
			fn(attrjson.Change{Name: a[i].Name, Old: attrjson.TypeOf(a[i].Value)})
			i++
		case c > 0:
			fn(attrjson.Change{Name: b[j].Name, New: attrjson.TypeOf(b[j].Value)})
			j++
		default:
			if ot, nt := attrjson.TypeOf(a[i].Value), attrjson.TypeOf(b[j].Value); ot != nt {
				fn(attrjson.Change{Name: b[j].Name, Old: ot, New: nt})
			}
			i++
			j++
		}
	}
	return nil
}

// profileSources computes which source each attribute of a profile came
// from, by the same rule as the merge.
func (db *DB) ProfileSources(ctx context.Context, customerID string) (map[string]string, error) {
	rows, err := db.R.QueryContext(ctx, db.Q(`SELECT s.name, s.priority, s.id, r.attrs FROM source_rows r
		JOIN sources s ON s.id = r.source_id WHERE r.customer_id = ? ORDER BY s.priority, s.id`), customerID)
	if err != nil {
		return nil, fmt.Errorf("reading the sources of profile %q: %w", customerID, err)
	}
	defer rows.Close()
	out := map[string]string{}
	var members []attrjson.Member
	for rows.Next() {
		var name string
		var prio, id int64
		var attrs []byte
		if err := rows.Scan(&name, &prio, &id, &attrs); err != nil {
			return nil, fmt.Errorf("reading the sources of profile %q: %w", customerID, err)
		}
		if members, err = attrjson.Split(members[:0], attrs); err != nil {
			return nil, fmt.Errorf("profile %q, source %s: %w", customerID, name, err)
		}
		for _, m := range members {
			k := string(m.Name)
			if _, ok := out[k]; !ok && !strings.HasPrefix(k, store.ReservedAttrPrefix) {
				out[k] = name
			}
		}
	}
	return out, rows.Err()
}
