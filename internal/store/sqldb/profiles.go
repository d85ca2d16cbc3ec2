package sqldb

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
)

const (
	// profileLookupChunk is how many customer ids one IN (...) list holds.
	profileLookupChunk = 500
	// profileWriteChunk is how many rows one multi-row INSERT writes.
	profileWriteChunk = 256
	// profileDeleteBatch is how many profiles DeleteProfilesExcept examines
	// and deletes per transaction.
	profileDeleteBatch = 2000
	// profileLockKey serialises profile writes on PostgreSQL, so concurrent
	// imports merge into each other's results instead of overwriting them
	// (SQLite has a single writer anyway).
	profileLockKey = 7411003
)

// lockProfiles takes, on PostgreSQL, the lock every writer of profiles
// holds until its transaction ends (profileLockKey).
func (db *DB) lockProfiles(ctx context.Context, tx *sql.Tx) error {
	if db.d != Postgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, profileLockKey); err != nil {
		return fmt.Errorf("locking profiles: %w", err)
	}
	return nil
}

// shownAttrsCol is, in a SELECT from profiles, the attrs column as text with
// the profile's Mailchimp statuses (profile_statuses) merged in as the
// reserved attributes mailchimp.<audience>.status and .status_changed_at:
// a profile as it is shown (SPEC 12). profile_statuses names its column
// customer, so customer_id below is the profile's.
func (db *DB) shownAttrsCol() string {
	// The names are attrjson.StatusAttr and StatusChangedAttr of the row's
	// audience.
	statuses := `SELECT '` + attrjson.ReservedPrefix + `' || audience_id || '.status' AS k, %[1]s(status) AS v FROM profile_statuses WHERE customer = customer_id
		UNION ALL SELECT '` + attrjson.ReservedPrefix + `' || audience_id || '.status_changed_at', %[1]s(changed_at) FROM profile_statuses WHERE customer = customer_id`
	if db.d == Postgres {
		return `(attrs || COALESCE((SELECT jsonb_object_agg(k, v) FROM (` + fmt.Sprintf(statuses, "to_jsonb") + `) st), '{}'::jsonb))::text`
	}
	return `CASE WHEN EXISTS (SELECT 1 FROM profile_statuses WHERE customer = customer_id)
		THEN json_patch(attrs, (SELECT json_group_object(k, v) FROM (` + fmt.Sprintf(statuses, "") + `))) ELSE attrs END`
}

// attrsCol is the attrs column as text in a SELECT or RETURNING list.
func (db *DB) attrsCol() string {
	if db.d == Postgres {
		return "attrs::text"
	}
	return "attrs"
}

// UpsertProfiles implements store.ProfileStore: pushed imports are the
// source "uploads". It reads the batch's uploads layer, merges the patches
// into it in Go (see attrjson.Merger), and hands the changed layers to the
// merger, which re-merges those profiles with their other sources' layers
// and writes only what changed, all in one transaction.
func (db *DB) UpsertProfiles(ctx context.Context, patches []store.ProfilePatch) (store.UpsertCounts, error) {
	var counts store.UpsertCounts
	if len(patches) == 0 {
		return counts, nil
	}
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		counts = store.UpsertCounts{}
		if err := db.lockProfiles(ctx, tx); err != nil {
			return err
		}
		inProfiles, err := db.uploadsInProfiles(ctx, tx)
		if err != nil {
			return err
		}
		existing, err := db.lookupProfileAttrs(ctx, tx, patches, inProfiles)
		if err != nil {
			return err
		}
		var m attrjson.Merger
		changes := make([]layerChange, 0, len(patches))
		var patch []byte
		for _, p := range patches {
			old := existing[p.CustomerID]
			// Text is stored NFC-normalised (segment rules rely on it); the
			// import's readers already are, a caller of the store may not be.
			if norm.NFC.IsNormalString(p.Attrs) {
				patch = append(patch[:0], p.Attrs...)
			} else {
				patch = norm.NFC.AppendString(patch[:0], p.Attrs)
			}
			merged, changed, err := m.Merge(old, patch, nil)
			if err != nil {
				return fmt.Errorf("profile %q: %w", p.CustomerID, err)
			}
			if old != nil && !changed {
				counts.Unchanged++
				continue
			}
			changes = append(changes, layerChange{id: p.CustomerID, attrs: append([]byte(nil), merged...), fresh: old == nil,
				stored: old, storedRead: inProfiles})
		}
		if len(changes) == 0 {
			return nil
		}
		mg, err := db.newMerger(ctx, tx, store.UploadsSourceID)
		if err != nil {
			return err
		}
		res, err := mg.apply(changes)
		if err != nil {
			return err
		}
		counts.Inserted = int(res.created)
		counts.Updated = len(changes) - int(res.created)
		return mg.finish()
	})
	if err != nil {
		return store.UpsertCounts{}, fmt.Errorf("upserting %d profiles: %w", len(patches), err)
	}
	return counts, nil
}

// lookupProfileAttrs returns the uploads layer of those patches' profiles
// that have one: the stored profile itself when the layer lives in it
// (uploadsInProfiles).
func (db *DB) lookupProfileAttrs(ctx context.Context, tx *sql.Tx, patches []store.ProfilePatch, inProfiles bool) (map[string][]byte, error) {
	existing := make(map[string][]byte, len(patches)/4)
	args := make([]any, 0, profileLookupChunk)
	query := func(n int) string {
		if inProfiles {
			return db.Q(`SELECT customer_id, ` + db.attrsCol() + ` FROM profiles WHERE customer_id IN (` + placeholders(n, 1) + `)`)
		}
		return db.Q(`SELECT customer_id, attrs FROM profile_layers WHERE source_id = 1 AND customer_id IN (` + placeholders(n, 1) + `)`)
	}
	var full *sql.Stmt // the statement for a full chunk, prepared once
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	for start := 0; start < len(patches); start += profileLookupChunk {
		chunk := patches[start:min(start+profileLookupChunk, len(patches))]
		args = args[:0]
		for _, p := range chunk {
			args = append(args, p.CustomerID)
		}
		var rows *sql.Rows
		var err error
		if len(chunk) == profileLookupChunk {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, query(len(chunk))); err != nil {
					return nil, fmt.Errorf("preparing the profile lookup: %w", err)
				}
			}
			rows, err = full.QueryContext(ctx, args...)
		} else {
			rows, err = tx.QueryContext(ctx, query(len(chunk)), args...)
		}
		if err != nil {
			return nil, fmt.Errorf("reading stored profiles: %w", err)
		}
		for rows.Next() {
			var id string
			var attrs []byte
			if err := rows.Scan(&id, &attrs); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading stored profiles: %w", err)
			}
			existing[id] = attrs
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("reading stored profiles: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("reading stored profiles: %w", err)
		}
	}
	return existing, nil
}

// placeholders returns n comma-separated '?' when width is 1, otherwise n
// rows "(?,…)" of width placeholders each.
func placeholders(n, width int) string {
	var b strings.Builder
	b.Grow(n * (2*width + 3))
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		if width == 1 {
			b.WriteByte('?')
			continue
		}
		b.WriteByte('(')
		for j := 0; j < width; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
	}
	return b.String()
}

// profileWriteCols is how many arguments writeProfilesQuery takes per row
// (appendProfileWrite appends them).
const profileWriteCols = 4

// writeProfilesQuery inserts or replaces rows profiles, each given by
// appendProfileWrite: it is the one statement that writes profiles.attrs.
func (db *DB) writeProfilesQuery(rows int) string {
	return db.Q(`INSERT INTO profiles (customer_id, attrs, attrs_fold, updated_at) VALUES ` + placeholders(rows, profileWriteCols) +
		` ON CONFLICT (customer_id) DO UPDATE SET attrs = excluded.attrs, attrs_fold = excluded.attrs_fold, updated_at = excluded.updated_at`)
}

// appendProfileWrite appends the arguments of writeProfilesQuery for one
// profile: its canonical attributes and their folded shadow
// (attrjson.FoldShadow, NULL for ASCII-only attributes), computed here so
// that no write of attrs leaves a stale shadow behind.
func appendProfileWrite(args []any, id string, attrs []byte, updated int64) ([]any, error) {
	shadow, err := attrjson.FoldShadow(attrs)
	if err != nil {
		return args, fmt.Errorf("profile %q: %w", id, err)
	}
	var fold any // NULL
	if shadow != nil {
		fold = string(shadow)
	}
	return append(args, id, string(attrs), fold, updated), nil
}

// catalogDelta accumulates changes to the attribute catalogue.
type catalogDelta struct {
	idx    map[string]int
	names  []string
	counts [][len(catalogTypes)]int64
}

var catalogTypes = [...]string{attrjson.TypeString, attrjson.TypeNumber, attrjson.TypeBoolean, attrjson.TypeDate}

func newCatalogDelta() *catalogDelta { return &catalogDelta{idx: map[string]int{}} }

func (c *catalogDelta) add(name []byte, typ string, d int64) {
	t := -1
	for i, ct := range catalogTypes {
		if ct == typ {
			t = i
		}
	}
	if t < 0 {
		return
	}
	i, ok := c.idx[string(name)]
	if !ok {
		s := string(name)
		i = len(c.names)
		c.idx[s] = i
		c.names = append(c.names, s)
		c.counts = append(c.counts, [len(catalogTypes)]int64{})
	}
	c.counts[i][t] += d
}

func (c *catalogDelta) change(ch attrjson.Change) {
	if ch.Old != "" {
		c.add(ch.Name, ch.Old, -1)
	}
	if ch.New != "" {
		c.add(ch.Name, ch.New, 1)
	}
}

// apply writes the accumulated changes and drops entries that reach zero.
func (c *catalogDelta) apply(ctx context.Context, db *DB, tx *sql.Tx) error {
	var args []any
	negative := false
	for i, name := range c.names {
		for t, d := range c.counts[i] {
			if d != 0 {
				args = append(args, name, catalogTypes[t], d)
				negative = negative || d < 0
			}
		}
	}
	for start := 0; start < len(args); start += 3 * profileWriteChunk {
		chunk := args[start:min(start+3*profileWriteChunk, len(args))]
		q := db.Q(`INSERT INTO profile_attributes (name, type, profile_count) VALUES ` + placeholders(len(chunk)/3, 3) +
			` ON CONFLICT (name, type) DO UPDATE SET profile_count = profile_attributes.profile_count + excluded.profile_count`)
		if _, err := tx.ExecContext(ctx, q, chunk...); err != nil {
			return fmt.Errorf("updating the attribute catalogue: %w", err)
		}
	}
	if negative {
		if _, err := tx.ExecContext(ctx, `DELETE FROM profile_attributes WHERE profile_count <= 0`); err != nil {
			return fmt.Errorf("updating the attribute catalogue: %w", err)
		}
	}
	return nil
}

// forget counts a deleted profile's attributes out of the catalogue.
func (c *catalogDelta) forget(attrs []byte) error {
	return attrjson.Types(attrs, func(name []byte, typ string) { c.add(name, typ, -1) })
}

// DeleteProfilesExcept implements store.ProfileStore. It walks the profiles
// in customer_id order a page at a time (no long-lived read), deleting each
// page's rejects in one transaction.
func (db *DB) DeleteProfilesExcept(ctx context.Context, keep func(customerID string) bool) (int64, error) {
	var deleted int64
	after, first := "", true
	for {
		var rows *sql.Rows
		var err error
		if first {
			rows, err = db.R.QueryContext(ctx, db.Q(`SELECT customer_id FROM profiles ORDER BY customer_id LIMIT ?`), profileDeleteBatch)
		} else {
			rows, err = db.R.QueryContext(ctx, db.Q(`SELECT customer_id FROM profiles WHERE customer_id > ? ORDER BY customer_id LIMIT ?`), after, profileDeleteBatch)
		}
		if err != nil {
			return deleted, fmt.Errorf("listing profiles to delete: %w", err)
		}
		first = false
		var drop []any
		n := 0
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return deleted, fmt.Errorf("listing profiles to delete: %w", err)
			}
			n++
			after = id
			if !keep(id) {
				drop = append(drop, id)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return deleted, fmt.Errorf("listing profiles to delete: %w", err)
		}
		if len(drop) > 0 {
			d, err := db.deleteProfiles(ctx, drop)
			deleted += d
			if err != nil {
				return deleted, err
			}
		}
		if n < profileDeleteBatch {
			return deleted, nil
		}
	}
}

// deleteProfiles deletes the given customer ids in one transaction.
func (db *DB) deleteProfiles(ctx context.Context, ids []any) (int64, error) {
	var deleted int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		deleted = 0
		if err := db.lockProfiles(ctx, tx); err != nil {
			return err
		}
		cat := newCatalogDelta()
		for start := 0; start < len(ids); start += profileLookupChunk {
			chunk := ids[start:min(start+profileLookupChunk, len(ids))]
			rows, err := tx.QueryContext(ctx, db.Q(`DELETE FROM profiles WHERE customer_id IN (`+placeholders(len(chunk), 1)+`) RETURNING `+db.attrsCol()), chunk...)
			if err != nil {
				return fmt.Errorf("deleting profiles: %w", err)
			}
			for rows.Next() {
				var attrs []byte
				if err := rows.Scan(&attrs); err != nil {
					rows.Close()
					return fmt.Errorf("deleting profiles: %w", err)
				}
				deleted++
				if err := cat.forget(attrs); err != nil {
					rows.Close()
					return fmt.Errorf("deleting profiles: %w", err)
				}
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return fmt.Errorf("deleting profiles: %w", err)
			}
			if err := db.deleteLayers(ctx, tx, chunk); err != nil {
				return err
			}
		}
		return cat.apply(ctx, db, tx)
	})
	if err != nil {
		return 0, err
	}
	return deleted, nil
}

// GetProfile implements store.ProfileStore.
func (db *DB) GetProfile(ctx context.Context, customerID string) (store.Profile, error) {
	var attrs []byte
	var updated int64
	err := db.R.QueryRowContext(ctx, db.Q(`SELECT `+db.shownAttrsCol()+`, updated_at FROM profiles WHERE customer_id = ?`), customerID).Scan(&attrs, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Profile{}, fmt.Errorf("profile %q: %w", customerID, store.ErrNotFound)
	}
	if err != nil {
		return store.Profile{}, fmt.Errorf("reading profile %q: %w", customerID, err)
	}
	var m attrjson.Merger
	return newProfile(&m, customerID, attrs, updated)
}

func newProfile(m *attrjson.Merger, id string, attrs []byte, updated int64) (store.Profile, error) {
	c, err := m.Canonical(attrs)
	if err != nil {
		return store.Profile{}, fmt.Errorf("profile %q: %w", id, err)
	}
	return store.Profile{CustomerID: id, Attrs: append([]byte(nil), c...), UpdatedAt: time.UnixMicro(updated).UTC()}, nil
}

// MaxProfilePage is the largest page ListProfiles returns.
const MaxProfilePage = 1000

// ListProfiles implements store.ProfileStore: pages in customer_id order;
// the cursor is the last id of the previous page, base64url-encoded.
func (db *DB) ListProfiles(ctx context.Context, limit int, cursor string) (store.ProfilePage, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxProfilePage)
	var rows *sql.Rows
	var err error
	cols := `SELECT customer_id, ` + db.shownAttrsCol() + `, updated_at FROM profiles`
	if cursor == "" {
		rows, err = db.R.QueryContext(ctx, db.Q(cols+` ORDER BY customer_id LIMIT ?`), limit+1)
	} else {
		after, derr := base64.RawURLEncoding.DecodeString(cursor)
		if derr != nil || len(after) == 0 {
			return store.ProfilePage{}, fmt.Errorf("profile cursor %q: %w", cursor, store.ErrInvalid)
		}
		rows, err = db.R.QueryContext(ctx, db.Q(cols+` WHERE customer_id > ? ORDER BY customer_id LIMIT ?`), string(after), limit+1)
	}
	if err != nil {
		return store.ProfilePage{}, fmt.Errorf("listing profiles: %w", err)
	}
	defer rows.Close()
	page := store.ProfilePage{Profiles: []store.Profile{}}
	var m attrjson.Merger
	for rows.Next() {
		var id string
		var attrs []byte
		var updated int64
		if err := rows.Scan(&id, &attrs, &updated); err != nil {
			return store.ProfilePage{}, fmt.Errorf("listing profiles: %w", err)
		}
		if len(page.Profiles) == limit {
			page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(page.Profiles[limit-1].CustomerID))
			break
		}
		p, err := newProfile(&m, id, attrs, updated)
		if err != nil {
			return store.ProfilePage{}, err
		}
		page.Profiles = append(page.Profiles, p)
	}
	if err := rows.Err(); err != nil {
		return store.ProfilePage{}, fmt.Errorf("listing profiles: %w", err)
	}
	return page, nil
}

// DeleteProfile implements store.ProfileStore.
func (db *DB) DeleteProfile(ctx context.Context, customerID string) error {
	n, err := db.deleteProfiles(ctx, []any{customerID})
	if err != nil {
		return fmt.Errorf("deleting profile %q: %w", customerID, err)
	}
	if n == 0 {
		return fmt.Errorf("profile %q: %w", customerID, store.ErrNotFound)
	}
	return nil
}

// CountProfiles implements store.ProfileStore.
func (db *DB) CountProfiles(ctx context.Context) (int64, error) {
	var n int64
	if err := db.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM profiles`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting profiles: %w", err)
	}
	return n, nil
}

// ProfileAttributes implements store.ProfileStore from the catalogue table.
func (db *DB) ProfileAttributes(ctx context.Context) ([]store.AttributeInfo, error) {
	rows, err := db.R.QueryContext(ctx, `SELECT name, type, profile_count FROM profile_attributes WHERE profile_count > 0 ORDER BY name, type`)
	if err != nil {
		return nil, fmt.Errorf("listing attributes: %w", err)
	}
	defer rows.Close()
	out := []store.AttributeInfo{}
	for rows.Next() {
		var name, typ string
		var n int64
		if err := rows.Scan(&name, &typ, &n); err != nil {
			return nil, fmt.Errorf("listing attributes: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Name != name {
			out = append(out, store.AttributeInfo{Name: name, Type: typ, Count: n})
			continue
		}
		a := &out[len(out)-1]
		if a.Types == nil {
			a.Types = map[string]int64{a.Type: a.Count}
		}
		a.Types[typ] = n
		if n > a.Types[a.Type] {
			a.Type = typ
		}
		a.Count += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing attributes: %w", err)
	}
	return out, nil
}
