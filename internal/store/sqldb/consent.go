package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
)

// flowStatus is, per synced row, the status the profile should show: the
// contact's status, or "deleted" once it left the audience (after it had
// been shown). Rows whose status is unknown or in flight are left out.
const flowStatus = `CASE WHEN in_audience THEN status ELSE 'deleted' END`

const flowWhere = `export_id = ? AND customer_id <> '' AND status <> 'creating'
	AND ((in_audience AND status <> '') OR (NOT in_audience AND profile_status <> ''))
	AND ` + flowStatus + ` <> profile_status`

// flowAllWhere is flowWhere for a flow-back that owes the profiles a full
// pass (exports.flow_pending): every contact in the audience, whatever its
// profile_status says (it may have been noted on insert, see upsertSynced).
const flowAllWhere = `export_id = ? AND customer_id <> '' AND status <> 'creating'
	AND ((in_audience AND status <> '') OR (NOT in_audience AND profile_status NOT IN ('', 'deleted')))`

// flowRange is how many profile ids FlowStatuses rewrites per transaction,
// and flowNoteRows how many contacts' profile_status it notes per
// transaction: short transactions, so that runs recording acknowledgements
// and the run's own lease heartbeats wait little for SQLite's single
// writer (one statement over a million contacts held it long enough for a
// run to lose its lease).
const (
	flowRange    = 20_000
	flowNoteRows = 50_000
)

// FlowStatuses writes Mailchimp's word back on the profiles (SPEC 12): for
// every contact of the export whose status differs from what its profile
// last showed (synced.profile_status), the reserved attributes
// mailchimp.<audience>.status and .status_changed_at (= at) are set, and
// then profile_status notes it. A few changes (a usual run: fewer than one
// profile in 20) are written contact by contact in short transactions
// (flowByContacts); many (a first run) by one ordered pass over the
// profiles (flowByProfiles): walking a million contacts in hash order
// rewrote profile pages at random (74 s and GBs of WAL on SQLite). A run
// without status changes costs a look into the partial index synced_flow_due.
// profiles.updated_at is left alone: the attributes are not sent to
// Mailchimp, and updated_at decides which profile's fields win for a
// shared address and what counts as new data.
//
// While the export owes its profiles a full pass (exports.flow_pending,
// from its first status refresh), every contact in the audience is due
// whatever its profile_status says, and the debt is settled once all are
// written.
func (db *DB) FlowStatuses(ctx context.Context, exportID int64, audienceID string, at time.Time) (int64, error) {
	n, _, err := db.flowStatuses(ctx, nil, exportID, audienceID, at, false)
	return n, err
}

// FlowOwed does the full pass an export's flow-back owes its profiles, if it
// owes one (owed false: nothing was done), while the export's run may still
// be recording: a first run writes the statuses of its contacts once the
// last of them is recorded, beside its last tag calls. It notes nothing in
// profile_status (the run's FlowStatuses afterwards writes and notes what
// is due then), and contacts recorded from its start on are not noted on
// insert.
func (db *DB) FlowOwed(ctx context.Context, exportID int64, audienceID string, at time.Time) (n int64, owed bool, err error) {
	return db.flowStatuses(ctx, nil, exportID, audienceID, at, true)
}

// Owed full passes (exports.flow_pending).
const (
	flowOwed    = 1 // contacts are noted on insert
	flowOngoing = 2 // the pass has begun: they are not
)

// flowStatuses is FlowStatuses, or with owedOnly FlowOwed; with a claim f,
// settling the owed pass is fenced by it (an abandoned attempt's pass
// cannot settle what a run taking over relies on).
func (db *DB) flowStatuses(ctx context.Context, f *store.RunLease, exportID int64, audienceID string, at time.Time, owedOnly bool) (total int64, owed bool, err error) {
	statusAttr, atAttr := attrjson.StatusAttr(audienceID), attrjson.StatusChangedAttr(audienceID)
	if !attrjson.ValidReserved(statusAttr) {
		return 0, false, fmt.Errorf("audience id %q cannot name an attribute", audienceID)
	}
	when := at.UTC().Format("2006-01-02T15:04:05Z")
	pending, err := db.flowPending(ctx, db.R, exportID)
	if err != nil {
		return 0, false, err
	}
	if owed = pending != 0; !owed && owedOnly {
		return 0, false, nil
	}
	where := flowWhere
	if owed {
		// From here on, contacts recorded are due as usual: once the pass
		// has gone by their profiles, only FlowStatuses can see them.
		if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE exports SET flow_pending = ? WHERE id = ? AND flow_pending = ?`), flowOngoing, exportID, flowOwed); err != nil {
			return 0, owed, fmt.Errorf("starting the status flow-back of export %d: %w", exportID, err)
		}
		where = flowAllWhere
	}
	var due, profiles int64
	if err := db.R.QueryRowContext(ctx, db.Q(`SELECT COUNT(*) FROM synced WHERE `+where), exportID).Scan(&due); err != nil {
		return 0, owed, fmt.Errorf("reading statuses of export %d: %w", exportID, err)
	}
	if due > 0 {
		// Counted only as far as the choice needs (a full count read the
		// whole customer_id index on every run).
		if err := db.R.QueryRowContext(ctx, db.Q(`SELECT COUNT(*) FROM (SELECT 1 FROM profiles LIMIT ?) p`), due*20+1).Scan(&profiles); err != nil {
			return 0, owed, fmt.Errorf("reading profiles: %w", err)
		}
		if due*20 < profiles {
			total, err = db.flowByContacts(ctx, exportID, where, statusAttr, atAttr, when)
		} else {
			total, err = db.flowByProfiles(ctx, exportID, statusAttr, atAttr, when, !owedOnly)
		}
		if err != nil {
			return total, owed, err
		}
	}
	if owed {
		err := db.fencedTx(ctx, f, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, db.Q(`UPDATE exports SET flow_pending = 0 WHERE id = ?`), exportID)
			return err
		})
		if err != nil {
			return total, owed, fmt.Errorf("settling the full status flow-back of export %d: %w", exportID, err)
		}
	}
	return total, owed, nil
}

// flowPending reads exports.flow_pending: 0, flowOwed or flowOngoing. In a
// transaction on PostgreSQL the row is locked for share until the commit,
// so a pass that begins waits for the recording that read flowOwed.
func (db *DB) flowPending(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, exportID int64) (int, error) {
	lock := ""
	if _, inTx := q.(*sql.Tx); inTx && db.d == Postgres {
		lock = " FOR SHARE"
	}
	var pending int
	if err := q.QueryRowContext(ctx, db.Q(`SELECT flow_pending FROM exports WHERE id = ?`+lock), exportID).Scan(&pending); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("reading the status flow-back of export %d: %w", exportID, err)
	}
	return pending, nil
}

// flowByProfiles rewrites the profiles in their storage order, flowRange ids
// per transaction, each looking up its contact through synced_customer:
// for many changes (a first run), where walking the contacts would rewrite
// profile pages at random. Every profile whose contact's status it does not
// show is written, whatever synced.profile_status says; with note, the
// contacts due are then noted (noteFlowed).
func (db *DB) flowByProfiles(ctx context.Context, exportID int64, statusAttr, atAttr, when string, note bool) (int64, error) {
	var maxID int64
	if err := db.R.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM profiles`).Scan(&maxID); err != nil {
		return 0, fmt.Errorf("reading profiles: %w", err)
	}
	// The status the profile should show: its contact's (of several of one
	// customer in the export, rare left-over addresses, the one in the
	// audience), NULL while unknown or in flight. The index synced_customer
	// covers it, so no synced row is read. A profile is written when it
	// shows another status, and "deleted" only over a status it showed.
	status := `(SELECT CASE WHEN x.in_audience THEN NULLIF(NULLIF(x.status, ''), 'creating') ELSE 'deleted' END
		FROM synced x WHERE x.export_id = ? AND x.customer_id = profiles.customer_id ORDER BY x.in_audience DESC LIMIT 1)`
	// Two statements per range: the profiles that show a status already,
	// then those without the attribute yet (in this order: the first
	// statement must not see what the second wrote), whose number goes to
	// the attribute catalogue. A separate count of the new ones looked
	// every contact up once more. Each statement names the lookup twice
	// (SET and WHERE): the database runs it twice per profile.
	var setQ, hasNot, has, shownDiffers string
	var statusKey, atKey any = statusAttr, atAttr
	if db.d == Postgres {
		setQ = `UPDATE profiles SET attrs = attrs || jsonb_build_object(CAST(? AS text), ` + status + `, CAST(? AS text), CAST(? AS text))
			WHERE id > ? AND id <= ? AND `
		hasNot, has = `attrs -> CAST(? AS text) IS NULL AND `, `attrs -> CAST(? AS text) IS NOT NULL AND `
		shownDiffers = `COALESCE(` + status + `, attrs ->> CAST(? AS text)) IS DISTINCT FROM (attrs ->> CAST(? AS text))`
	} else {
		statusKey, atKey = `$."`+statusAttr+`"`, `$."`+atAttr+`"`
		setQ = `UPDATE profiles SET attrs = json_set(attrs, ?, ` + status + `, ?, ?) WHERE id > ? AND id <= ? AND `
		hasNot, has = `json_type(attrs, ?) IS NULL AND `, `json_type(attrs, ?) IS NOT NULL AND `
		shownDiffers = `COALESCE(` + status + `, json_extract(attrs, ?)) IS NOT json_extract(attrs, ?)`
	}
	newStatus := `COALESCE(` + status + `, 'deleted') <> 'deleted'`
	// A statement with its arguments after the range's bounds; new: its
	// profiles had no status attribute.
	type flowStmt struct {
		q    string
		args []any
		new  bool
	}
	// No profile shows a status of the audience yet (the audience's first
	// run): the first statement would find nothing in any range, and the
	// second need not look into every profile's attributes for one (a JSON
	// parse per profile, a sixth of the pass); json_set would replace one
	// anyway.
	var shown int64
	if err := db.R.QueryRowContext(ctx, db.Q(`SELECT COALESCE(SUM(profile_count), 0) FROM profile_attributes WHERE name = ?`), statusAttr).Scan(&shown); err != nil {
		return 0, fmt.Errorf("reading the attribute catalogue: %w", err)
	}
	stmts := []flowStmt{{q: db.Q(setQ + newStatus), args: []any{exportID}, new: true}}
	if shown > 0 {
		stmts = []flowStmt{
			{q: db.Q(setQ + has + shownDiffers), args: []any{statusKey, exportID, statusKey, statusKey}},
			{q: db.Q(setQ + hasNot + newStatus), args: []any{statusKey, exportID}, new: true},
		}
	}
	var total int64
	for lo := int64(0); lo < maxID; lo += flowRange {
		hi := lo + flowRange
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if db.d == Postgres {
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, profileLockKey); err != nil {
					return err
				}
			}
			var added int64
			for _, st := range stmts {
				res, err := tx.ExecContext(ctx, st.q, append([]any{statusKey, exportID, atKey, when, lo, hi}, st.args...)...)
				if err != nil {
					return fmt.Errorf("writing statuses on profiles: %w", err)
				}
				n, _ := res.RowsAffected()
				if total += n; st.new {
					added = n
				}
			}
			return db.countStatusAttrs(ctx, tx, statusAttr, atAttr, added)
		})
		if err != nil {
			return total, fmt.Errorf("writing statuses of export %d on profiles: %w", exportID, err)
		}
	}
	// Webhooks write both the profile and profile_status themselves, and
	// nothing else changes this export's statuses while its run is here
	// (unless the run is still recording: then nothing is noted).
	if note {
		if err := db.noteFlowed(ctx, exportID); err != nil {
			return total, err
		}
	}
	return total, nil
}

// noteFlowed sets profile_status of the export's contacts whose profiles
// flowByProfiles rewrote, in hash order (the table's own order: a
// sequential rewrite), flowNoteRows contacts per transaction.
func (db *DB) noteFlowed(ctx context.Context, exportID int64) error {
	after := ""
	for {
		var upto string
		err := db.R.QueryRowContext(ctx, db.Q(`SELECT hash FROM synced WHERE export_id = ? AND hash > ? ORDER BY hash LIMIT 1 OFFSET ?`),
			exportID, after, flowNoteRows-1).Scan(&upto)
		last := errors.Is(err, sql.ErrNoRows)
		if err != nil && !last {
			return fmt.Errorf("noting the statuses written for export %d: %w", exportID, err)
		}
		q, args := `UPDATE synced SET profile_status = `+flowStatus+` WHERE `+flowWhere+` AND hash > ?`, []any{exportID, after}
		if !last {
			q, args = q+` AND hash <= ?`, append(args, upto)
		}
		if _, err := db.W.ExecContext(ctx, db.Q(q), args...); err != nil {
			return fmt.Errorf("noting the statuses written for export %d: %w", exportID, err)
		}
		if last {
			return nil
		}
		after = upto
	}
}

// flowChunk is how many contacts flowByContacts writes per transaction.
const flowChunk = 2000

// flowByContacts walks the contacts whose status is due (where: flowWhere
// or flowAllWhere) in hash order, flowChunk per transaction, with one
// UPDATE … WHERE customer_id IN (…) per status and 500 profiles. A profile
// that shows the status already is left as it is (its status_changed_at
// stays).
func (db *DB) flowByContacts(ctx context.Context, exportID int64, where, statusAttr, atAttr, when string) (int64, error) {
	var total int64
	after := ""
	for {
		rows, err := db.R.QueryContext(ctx, db.Q(`SELECT hash, customer_id, `+flowStatus+` FROM synced
			WHERE `+where+` AND hash > ? ORDER BY hash LIMIT `+fmt.Sprint(flowChunk)), exportID, after)
		if err != nil {
			return total, fmt.Errorf("reading statuses of export %d: %w", exportID, err)
		}
		ids, hashes := map[string][]any{}, map[string][]any{} // by status
		n := 0
		for rows.Next() {
			var h, id, st string
			if err := rows.Scan(&h, &id, &st); err != nil {
				rows.Close()
				return total, err
			}
			ids[st], hashes[st] = append(ids[st], id), append(hashes[st], h)
			after = h
			n++
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return total, fmt.Errorf("reading statuses of export %d: %w", exportID, err)
		}
		if n == 0 {
			return total, nil
		}
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			var missingQ, updateQ string
			var statusKey, atKey any = statusAttr, atAttr
			if db.d == Postgres {
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, profileLockKey); err != nil {
					return err
				}
				missingQ = `SELECT COUNT(*) FROM profiles WHERE attrs -> CAST(? AS text) IS NULL AND customer_id IN (%s)`
				updateQ = `UPDATE profiles SET attrs = attrs || jsonb_build_object(CAST(? AS text), CAST(? AS text), CAST(? AS text), CAST(? AS text))
					WHERE attrs ->> CAST(? AS text) IS DISTINCT FROM CAST(? AS text) AND customer_id IN (%s)`
			} else {
				statusKey, atKey = `$."`+statusAttr+`"`, `$."`+atAttr+`"`
				missingQ = `SELECT COUNT(*) FROM profiles WHERE json_type(attrs, ?) IS NULL AND customer_id IN (%s)`
				updateQ = `UPDATE profiles SET attrs = json_set(attrs, ?, ?, ?, ?) WHERE json_extract(attrs, ?) IS NOT ? AND customer_id IN (%s)`
			}
			var missing int64
			for st, list := range ids {
				hs := hashes[st]
				for len(list) > 0 {
					k := min(len(list), 500)
					in := placeholders(k, 1)
					var m int64
					if err := tx.QueryRowContext(ctx, db.Q(fmt.Sprintf(missingQ, in)), append([]any{statusKey}, list[:k]...)...).Scan(&m); err != nil {
						return fmt.Errorf("counting new status attributes: %w", err)
					}
					missing += m
					res, err := tx.ExecContext(ctx, db.Q(fmt.Sprintf(updateQ, in)), append([]any{statusKey, st, atKey, when, statusKey, st}, list[:k]...)...)
					if err != nil {
						return fmt.Errorf("writing statuses on profiles: %w", err)
					}
					c, _ := res.RowsAffected()
					total += c
					if _, err := tx.ExecContext(ctx, db.Q(`UPDATE synced SET profile_status = ? WHERE export_id = ? AND hash IN (`+in+`)`),
						append([]any{st, exportID}, hs[:k]...)...); err != nil {
						return fmt.Errorf("noting the statuses written: %w", err)
					}
					list, hs = list[k:], hs[k:]
				}
			}
			return db.countStatusAttrs(ctx, tx, statusAttr, atAttr, missing)
		})
		if err != nil {
			return total, fmt.Errorf("writing statuses of export %d on profiles: %w", exportID, err)
		}
		if n < flowChunk {
			return total, nil
		}
	}
}

// countStatusAttrs adds n profiles holding the status attributes to the
// attribute catalogue.
func (db *DB) countStatusAttrs(ctx context.Context, tx *sql.Tx, statusAttr, atAttr string, n int64) error {
	if n <= 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, db.Q(`INSERT INTO profile_attributes (name, type, profile_count) VALUES (?, ?, ?), (?, ?, ?)
		ON CONFLICT (name, type) DO UPDATE SET profile_count = profile_attributes.profile_count + excluded.profile_count`),
		statusAttr, attrjson.TypeString, n, atAttr, attrjson.TypeDate, n); err != nil {
		return fmt.Errorf("updating the attribute catalogue: %w", err)
	}
	return nil
}

// WebhookSecret returns the export's webhook secret, making one (from
// fresh) when it has none. ErrNotFound for an unknown export.
func (db *DB) WebhookSecret(ctx context.Context, exportID int64, fresh string) (string, error) {
	if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE exports SET webhook_secret = ? WHERE id = ? AND webhook_secret = ''`), fresh, exportID); err != nil {
		return "", fmt.Errorf("making the webhook secret of export %d: %w", exportID, err)
	}
	return db.webhookSecret(ctx, exportID)
}

// WebhookTarget returns the secret (” when none) and audience of an export.
func (db *DB) WebhookTarget(ctx context.Context, exportID int64) (secret, audienceID string, err error) {
	err = db.R.QueryRowContext(ctx, db.Q(`SELECT webhook_secret, audience_id FROM exports WHERE id = ?`), exportID).Scan(&secret, &audienceID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("export %d: %w", exportID, store.ErrNotFound)
	}
	if err != nil {
		return "", "", fmt.Errorf("reading the webhook of export %d: %w", exportID, err)
	}
	return secret, audienceID, nil
}

func (db *DB) webhookSecret(ctx context.Context, exportID int64) (string, error) {
	s, _, err := db.WebhookTarget(ctx, exportID)
	return s, err
}

// ApplyStatusEvent records a status Mailchimp reported for a contact of an
// audience (a webhook): for every export writing to the audience with a
// contact of that hash, the synced status, and for its profile the reserved
// attributes, unless the profile already shows a status from after at
// (the newest event wins; a replayed older one changes nothing). It
// returns how many profiles changed and whether any export knew the
// contact.
func (db *DB) ApplyStatusEvent(ctx context.Context, audienceID, hash, status string, at time.Time) (changed int, known bool, err error) {
	statusAttr, atAttr := attrjson.StatusAttr(audienceID), attrjson.StatusChangedAttr(audienceID)
	if !attrjson.ValidReserved(statusAttr) {
		return 0, false, nil
	}
	when := at.UTC().Format("2006-01-02T15:04:05Z")
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		changed, known = 0, false
		if db.d == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, profileLockKey); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, db.Q(`SELECT s.export_id, s.customer_id FROM synced s JOIN exports e ON e.id = s.export_id
			WHERE e.audience_id = ? AND s.hash = ? AND s.in_audience`), audienceID, hash)
		if err != nil {
			return err
		}
		var exports []int64
		customers := map[string]bool{}
		for rows.Next() {
			var id int64
			var c string
			if err := rows.Scan(&id, &c); err != nil {
				rows.Close()
				return err
			}
			exports = append(exports, id)
			if c != "" {
				customers[c] = true
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		known = len(exports) > 0
		for c := range customers {
			var missingQ, updateQ string
			var mArgs, uArgs []any
			if db.d == Postgres {
				missingQ = `SELECT attrs -> CAST(? AS text) IS NULL FROM profiles WHERE customer_id = ?`
				mArgs = []any{statusAttr, c}
				updateQ = `UPDATE profiles SET attrs = attrs || jsonb_build_object(CAST(? AS text), CAST(? AS text), CAST(? AS text), CAST(? AS text))
					WHERE customer_id = ? AND COALESCE(attrs ->> CAST(? AS text), '') COLLATE "C" <= CAST(? AS text) COLLATE "C"`
				uArgs = []any{statusAttr, status, atAttr, when, c, atAttr, when}
			} else {
				sp, ap := `$."`+statusAttr+`"`, `$."`+atAttr+`"`
				missingQ = `SELECT json_type(attrs, ?) IS NULL FROM profiles WHERE customer_id = ?`
				mArgs = []any{sp, c}
				updateQ = `UPDATE profiles SET attrs = json_set(attrs, ?, ?, ?, ?) WHERE customer_id = ? AND COALESCE(json_extract(attrs, ?), '') <= ?`
				uArgs = []any{sp, status, ap, when, c, ap, when}
			}
			var missing bool
			if err := tx.QueryRowContext(ctx, db.Q(missingQ), mArgs...).Scan(&missing); errors.Is(err, sql.ErrNoRows) {
				continue
			} else if err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, db.Q(updateQ), uArgs...)
			if err != nil {
				return fmt.Errorf("writing the status on profile: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue // the profile already shows a newer status
			}
			changed++
			if _, err := tx.ExecContext(ctx, db.Q(`UPDATE synced SET status = ?, profile_status = ? WHERE hash = ? AND customer_id = ? AND in_audience
				AND export_id IN (SELECT id FROM exports WHERE audience_id = ?)`), status, status, hash, c, audienceID); err != nil {
				return fmt.Errorf("recording the status: %w", err)
			}
			if missing {
				if _, err := tx.ExecContext(ctx, db.Q(`INSERT INTO profile_attributes (name, type, profile_count) VALUES (?, ?, 1), (?, ?, 1)
					ON CONFLICT (name, type) DO UPDATE SET profile_count = profile_attributes.profile_count + excluded.profile_count`),
					statusAttr, attrjson.TypeString, atAttr, attrjson.TypeDate); err != nil {
					return fmt.Errorf("updating the attribute catalogue: %w", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("recording a status event of audience %s: %w", audienceID, err)
	}
	return changed, known, nil
}

// ApplyEmailChange records that Mailchimp changed a contact's address
// (upemail): every export of the audience that has the old address moves
// its row to the new one, so no run treats the old address as gone and
// creates it anew. The profile keeps its address (it is the customer's
// data); see docs/privacy.md for what the next run does. It reports
// whether any export knew the old address.
func (db *DB) ApplyEmailChange(ctx context.Context, audienceID, oldHash, newHash, newEmail string) (bool, error) {
	known := false
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, db.Q(`SELECT COUNT(*) FROM synced WHERE hash = ? AND export_id IN (SELECT id FROM exports WHERE audience_id = ?)`),
			oldHash, audienceID).Scan(&n); err != nil {
			return err
		}
		known = n > 0
		if !known {
			return nil
		}
		// A row of the new address (stale, not in the audience) gives way.
		if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM synced WHERE hash = ? AND export_id IN
			(SELECT export_id FROM synced WHERE hash = ? AND export_id IN (SELECT id FROM exports WHERE audience_id = ?))`),
			newHash, oldHash, audienceID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.Q(`UPDATE synced SET hash = ?, email = ? WHERE hash = ? AND export_id IN (SELECT id FROM exports WHERE audience_id = ?)`),
			newHash, newEmail, oldHash, audienceID); err != nil {
			return err
		}
		// The synced state moved without a profile change: the audience's
		// exports plan fully next time (incremental runs follow profiles).
		_, err := tx.ExecContext(ctx, db.Q(`UPDATE export_plans SET full_requested_at = `+db.nowMicros()+`
			WHERE export_id IN (SELECT id FROM exports WHERE audience_id = ?)`), audienceID)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("recording an address change in audience %s: %w", audienceID, err)
	}
	return known, nil
}
