package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
)

// layerPage is how many profiles one step of a layer change handles.
const layerPage = 500

// layer is one source's attributes of a profile.
type layer struct {
	source   int64
	priority int
	attrs    []byte
}

// byPriority orders layers as SPEC section 11 says: the lower priority
// number first, ties the older source (the smaller id).
func byPriority(a, b layer) int {
	return cmp.Or(cmp.Compare(a.priority, b.priority), cmp.Compare(a.source, b.source))
}

// attributeSources names the source of each merged attribute.
func attributeSources(ls []layer, names map[int64]string) (map[string]string, error) {
	slices.SortFunc(ls, byPriority)
	objs := make([][]byte, len(ls))
	for i, l := range ls {
		objs[i] = l.attrs
	}
	out := map[string]string{}
	var mm []attrjson.Member
	for i := len(objs) - 1; i >= 0; i-- { // lower priority first, overwritten by higher
		var err error
		if mm, err = attrjson.Split(mm[:0], objs[i]); err != nil {
			return nil, err
		}
		for _, m := range mm {
			out[string(m.Name)] = names[ls[i].source]
		}
	}
	return out, nil
}

// layerChange is a new value of one profile's layer of the merger's source:
// attrs nil removes the layer.
type layerChange struct {
	id    string
	attrs []byte
	// fresh: the source's layer has no row for id (so far as the caller
	// knows; false is always safe).
	fresh bool
	// stored, when storedRead, is the profile as stored (nil: none), read
	// by the caller in this transaction.
	stored     []byte
	storedRead bool
}

// layerResult counts what a batch of layer changes did.
type layerResult struct {
	created, deleted, updated int64 // profiles
}

// merger applies layer changes of one source inside a transaction and
// re-merges the affected profiles.
type merger struct {
	db       *DB
	ctx      context.Context
	tx       *sql.Tx
	source   int64
	priority map[int64]int
	// others: some other source has a layer. When none has, no profile
	// has a layer to re-read besides the merger's source's.
	others bool
	// inProfiles: the merger's source is uploads and its layer is not
	// stored (see uploadsInProfiles).
	inProfiles bool
	cat        *catalogDelta
	now        int64
	stmts      map[string]*sql.Stmt // prepared once per transaction
}

func (db *DB) newMerger(ctx context.Context, tx *sql.Tx, source int64) (*merger, error) {
	m := &merger{db: db, ctx: ctx, tx: tx, source: source, priority: map[int64]int{}, cat: newCatalogDelta(),
		now: time.Now().UnixMicro(), stmts: map[string]*sql.Stmt{}}
	rows, err := tx.QueryContext(ctx, `SELECT id, priority FROM sources`)
	if err != nil {
		return nil, fmt.Errorf("reading source priorities: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var p int
		if err := rows.Scan(&id, &p); err != nil {
			return nil, err
		}
		m.priority[id] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading source priorities: %w", err)
	}
	inProfiles, err := db.uploadsInProfiles(ctx, tx)
	if err != nil {
		return nil, err
	}
	switch {
	case source == store.UploadsSourceID:
		m.inProfiles = inProfiles
	case inProfiles: // another source joins: uploads needs a layer of its own now
		if err := db.storeUploadsLayer(ctx, tx); err != nil {
			return nil, err
		}
	}
	// Two range probes of the layers' primary key, not a scan of this
	// source's layer (PostgreSQL: every layer writer holds profileLockKey,
	// so this stays true until the transaction ends).
	if err := tx.QueryRowContext(ctx, db.Q(`SELECT EXISTS (SELECT 1 FROM profile_layers WHERE source_id < ?)
		OR EXISTS (SELECT 1 FROM profile_layers WHERE source_id > ?)`), source, source).Scan(&m.others); err != nil {
		return nil, fmt.Errorf("looking for other sources' layers: %w", err)
	}
	return m, nil
}

// reabsorbUploadsLayer lets the uploads layer live in the profiles again
// once no other source has a layer (the last one was deleted): each
// profile is then its uploads layer.
func (db *DB) reabsorbUploadsLayer(ctx context.Context, tx *sql.Tx) error {
	var others bool
	if err := tx.QueryRowContext(ctx, db.Q(`SELECT EXISTS (SELECT 1 FROM profile_layers WHERE source_id > ?)`), store.UploadsSourceID).Scan(&others); err != nil {
		return fmt.Errorf("looking for other sources' layers: %w", err)
	}
	if others {
		return nil
	}
	if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM profile_layers WHERE source_id = ?`), store.UploadsSourceID); err != nil {
		return fmt.Errorf("dropping the stored uploads layer: %w", err)
	}
	if _, err := tx.ExecContext(ctx, db.Q(`UPDATE sources SET layer_in_profiles = ? WHERE id = ?`), true, store.UploadsSourceID); err != nil {
		return fmt.Errorf("dropping the stored uploads layer: %w", err)
	}
	return nil
}

// uploadsInProfiles reports whether the layer of the source uploads lives
// in the profiles themselves. While no other source has a layer, each
// profile is its uploads layer: a separate
// copy would double every import's writes. The first other source to
// write a layer stores the uploads layer first (storeUploadsLayer); from
// then on it is kept like any other.
func (db *DB) uploadsInProfiles(ctx context.Context, tx *sql.Tx) (bool, error) {
	var in bool
	if err := tx.QueryRowContext(ctx, db.Q(`SELECT layer_in_profiles FROM sources WHERE id = ?`), store.UploadsSourceID).Scan(&in); err != nil {
		return false, fmt.Errorf("reading where the uploads layer is: %w", err)
	}
	return in, nil
}

// storeUploadsLayer writes the uploads layer of every profile (its
// attributes), in customer id order, page by page.
func (db *DB) storeUploadsLayer(ctx context.Context, tx *sql.Tx) error {
	read, err := tx.PrepareContext(ctx, db.Q(`SELECT customer_id, `+db.attrsCol()+` FROM profiles WHERE customer_id > ? ORDER BY customer_id LIMIT ?`))
	if err != nil {
		return fmt.Errorf("storing the uploads layer: %w", err)
	}
	defer read.Close()
	var canon attrjson.Merger
	after := ""
	for {
		rows, err := read.QueryContext(ctx, after, layerPage)
		if err != nil {
			return fmt.Errorf("storing the uploads layer: %w", err)
		}
		var args []any
		for rows.Next() {
			var id string
			var attrs []byte
			if err := rows.Scan(&id, &attrs); err != nil {
				rows.Close()
				return fmt.Errorf("storing the uploads layer: %w", err)
			}
			// Its attributes, canonical (PostgreSQL prints jsonb its own
			// way).
			c, _, err := canon.Merge(nil, attrs, nil)
			var l []byte
			if err == nil {
				l, err = attrjson.MergeLayers([][]byte{c})
			}
			if err != nil {
				rows.Close()
				return fmt.Errorf("storing the uploads layer of %q: %w", id, err)
			}
			args = append(args, store.UploadsSourceID, id, string(l))
			after = id
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("storing the uploads layer: %w", err)
		}
		n := len(args) / 3
		for s := 0; s < n; s += profileWriteChunk {
			e := min(s+profileWriteChunk, n)
			if _, err := tx.ExecContext(ctx, db.Q(`INSERT INTO profile_layers (source_id, customer_id, attrs) VALUES `+placeholders(e-s, 3)), args[3*s:3*e]...); err != nil {
				return fmt.Errorf("storing the uploads layer: %w", err)
			}
		}
		if n < layerPage {
			break
		}
	}
	if _, err := tx.ExecContext(ctx, db.Q(`UPDATE sources SET layer_in_profiles = ? WHERE id = ?`), false, store.UploadsSourceID); err != nil {
		return fmt.Errorf("storing the uploads layer: %w", err)
	}
	return nil
}

// stmt returns query prepared in the merger's transaction, once: pages of
// the same size reuse it instead of parsing hundreds of placeholders again.
func (m *merger) stmt(query string) (*sql.Stmt, error) {
	if s, ok := m.stmts[query]; ok {
		return s, nil
	}
	s, err := m.tx.PrepareContext(m.ctx, query)
	if err != nil {
		return nil, err
	}
	m.stmts[query] = s
	return s, nil
}

func (m *merger) query(query string, args ...any) (*sql.Rows, error) {
	s, err := m.stmt(query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(m.ctx, args...)
}

func (m *merger) exec(query string, args ...any) error {
	s, err := m.stmt(query)
	if err != nil {
		return err
	}
	_, err = s.ExecContext(m.ctx, args...)
	return err
}

// apply changes the source's layer of the given profiles (at most a few
// thousand, distinct ids) and writes the re-merged profiles: a profile that
// no layer holds any more is deleted. A page is read, merged and written;
// the merge of the next page (Go, on another core) runs while the database
// writes this one, when the two pages share no profile.
func (m *merger) apply(changes []layerChange) (layerResult, error) {
	var res layerResult
	var pages [][]layerChange
	for start := 0; start < len(changes); start += layerPage {
		pages = append(pages, changes[start:min(start+layerPage, len(changes))])
	}
	var cur *mergedPage
	for i, page := range pages {
		if cur == nil {
			in, err := m.read(page)
			if err != nil {
				return res, err
			}
			if cur, err = m.merge(page, in); err != nil {
				return res, err
			}
		}
		var next *mergedPage
		var nextErr error
		var wg sync.WaitGroup
		if i+1 < len(pages) && disjoint(page, pages[i+1]) {
			in, err := m.read(pages[i+1]) // before this page's writes: it shares no profile with it
			if err != nil {
				return res, err
			}
			wg.Go(func() { next, nextErr = m.merge(pages[i+1], in) })
		}
		err := m.write(cur)
		wg.Wait()
		if err != nil {
			return res, err
		}
		if nextErr != nil {
			return res, nextErr
		}
		res.created += cur.res.created
		res.deleted += cur.res.deleted
		res.updated += cur.res.updated
		cur = next
	}
	return res, nil
}

// disjoint reports whether two pages of changes share no profile.
func disjoint(a, b []layerChange) bool {
	ids := make(map[string]struct{}, len(a))
	for _, c := range a {
		ids[c.id] = struct{}{}
	}
	for _, c := range b {
		if _, ok := ids[c.id]; ok {
			return false
		}
	}
	return true
}

// pageState is what the database holds for a page of changes: the other
// sources' layers and the stored profiles.
type pageState struct {
	others map[string][]layer
	stored map[string][]byte
}

// read reads the state of a page's profiles.
func (m *merger) read(changes []layerChange) (pageState, error) {
	db := m.db
	st := pageState{others: map[string][]layer{}, stored: make(map[string][]byte, len(changes))}
	args := make([]any, 0, len(changes))
	fresh, read := true, true
	for _, c := range changes {
		args = append(args, c.id)
		fresh = fresh && c.fresh
		read = read && c.storedRead
		if c.storedRead && c.stored != nil {
			st.stored[c.id] = c.stored
		}
	}
	// Every profile has a layer (the merger deletes one that has none):
	// with no other source's layers, a profile new to this source's layer
	// is new.
	if !m.others && (fresh || read) {
		return st, nil
	}
	in := placeholders(len(changes), 1)
	if m.others {
		// Probes of the layers' key, one per other source and profile
		// (migration 0014: there is no index on customer_id alone).
		rows, err := m.query(db.Q(`SELECT customer_id, source_id, attrs FROM profile_layers
			WHERE source_id IN (SELECT id FROM sources WHERE id <> ?) AND customer_id IN (`+in+`)`),
			append([]any{m.source}, args...)...)
		if err != nil {
			return st, fmt.Errorf("reading profile layers: %w", err)
		}
		for rows.Next() {
			var id string
			var l layer
			if err := rows.Scan(&id, &l.source, &l.attrs); err != nil {
				rows.Close()
				return st, fmt.Errorf("reading profile layers: %w", err)
			}
			l.priority = m.priority[l.source]
			st.others[id] = append(st.others[id], l)
		}
		if err := rows.Close(); err != nil {
			return st, err
		}
	}
	rows, err := m.query(db.Q(`SELECT customer_id, `+db.attrsCol()+` FROM profiles WHERE customer_id IN (`+in+`)`), args...)
	if err != nil {
		return st, fmt.Errorf("reading profiles: %w", err)
	}
	for rows.Next() {
		var id string
		var a []byte
		if err := rows.Scan(&id, &a); err != nil {
			rows.Close()
			return st, fmt.Errorf("reading profiles: %w", err)
		}
		st.stored[id] = a
	}
	return st, rows.Close()
}

// mergedPage is a page of changes merged, ready to be written.
type mergedPage struct {
	res                   layerResult
	writes, layerWrites   []any // profiles and layers, three values a row
	deletes, layerDeletes []any // customer ids
}

// merge merges a page's changes with the state read for them (no database
// access: it may run beside a write). Only merges update the catalogue,
// one page after another.
func (m *merger) merge(changes []layerChange, st pageState) (*mergedPage, error) {
	out := &mergedPage{}
	for _, c := range changes {
		ls := st.others[c.id]
		switch {
		case c.attrs == nil:
			out.layerDeletes = append(out.layerDeletes, c.id)
		case m.inProfiles:
			ls = append(ls, layer{source: m.source, priority: m.priority[m.source], attrs: c.attrs})
		default:
			ls = append(ls, layer{source: m.source, priority: m.priority[m.source], attrs: c.attrs})
			out.layerWrites = append(out.layerWrites, m.source, c.id, string(c.attrs))
		}
		old, found := st.stored[c.id]
		if len(ls) == 0 {
			if found {
				if err := m.cat.forget(old); err != nil {
					return nil, fmt.Errorf("profile %q: %w", c.id, err)
				}
				out.deletes = append(out.deletes, c.id)
				out.res.deleted++
			}
			continue
		}
		slices.SortFunc(ls, byPriority)
		objs := make([][]byte, len(ls))
		for i, l := range ls {
			objs[i] = l.attrs
		}
		merged, err := attrjson.MergeLayers(objs)
		if err != nil {
			return nil, fmt.Errorf("profile %q: %w", c.id, err)
		}
		if found && string(merged) == string(old) {
			continue
		}
		if found {
			if err := m.cat.forget(old); err != nil {
				return nil, fmt.Errorf("profile %q: %w", c.id, err)
			}
			out.res.updated++
		} else {
			out.res.created++
		}
		if err := attrjson.Types(merged, func(name []byte, typ string) { m.cat.add(name, typ, 1) }); err != nil {
			return nil, err
		}
		if out.writes, err = appendProfileWrite(out.writes, c.id, merged, m.now); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// write writes a merged page: profiles before layers.
func (m *merger) write(p *mergedPage) error {
	db := m.db
	if nw := len(p.writes) / profileWriteCols; nw > 0 {
		for s := 0; s < nw; s += profileWriteChunk {
			e := min(s+profileWriteChunk, nw)
			if err := m.exec(db.writeProfilesQuery(e-s), p.writes[profileWriteCols*s:profileWriteCols*e]...); err != nil {
				return fmt.Errorf("writing %d profiles: %w", e-s, err)
			}
		}
	}
	if len(p.deletes) > 0 {
		if err := m.exec(db.Q(`DELETE FROM profiles WHERE customer_id IN (`+placeholders(len(p.deletes), 1)+`)`), p.deletes...); err != nil {
			return fmt.Errorf("deleting %d profiles: %w", len(p.deletes), err)
		}
	}
	if nl := len(p.layerWrites) / 3; nl > 0 {
		for s := 0; s < nl; s += profileWriteChunk {
			e := min(s+profileWriteChunk, nl)
			q := db.Q(`INSERT INTO profile_layers (source_id, customer_id, attrs) VALUES ` + placeholders(e-s, 3) +
				` ON CONFLICT (source_id, customer_id) DO UPDATE SET attrs = excluded.attrs`)
			if err := m.exec(q, p.layerWrites[3*s:3*e]...); err != nil {
				return fmt.Errorf("writing %d profile layers: %w", e-s, err)
			}
		}
	}
	if len(p.layerDeletes) > 0 {
		q := db.Q(`DELETE FROM profile_layers WHERE source_id = ? AND customer_id IN (` + placeholders(len(p.layerDeletes), 1) + `)`)
		if err := m.exec(q, append([]any{m.source}, p.layerDeletes...)...); err != nil {
			return fmt.Errorf("removing %d profile layers: %w", len(p.layerDeletes), err)
		}
	}
	return nil
}

// deleteLayers deletes every layer of the given customer ids, with their
// profiles: the layers have no foreign key to profiles (migration 0014).
func (db *DB) deleteLayers(ctx context.Context, tx *sql.Tx, ids []any) error {
	q := db.Q(`DELETE FROM profile_layers WHERE source_id IN (SELECT id FROM sources) AND customer_id IN (` + placeholders(len(ids), 1) + `)`)
	if _, err := tx.ExecContext(ctx, q, ids...); err != nil {
		return fmt.Errorf("deleting the layers of %d profiles: %w", len(ids), err)
	}
	return nil
}

// finish writes the attribute catalogue's changes.
func (m *merger) finish() error { return m.cat.apply(m.ctx, m.db, m.tx) }
