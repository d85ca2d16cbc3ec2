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

// flowRange is how many contacts an owed full pass (flowInAudience) writes
// per transaction, and flowChunk how many due contacts flowDue writes per
// transaction: short transactions, so that runs recording acknowledgements
// and the run's own lease heartbeats wait little for SQLite's single
// writer.
const (
	flowRange = 50_000
	flowChunk = 5000
)

// FlowStatuses writes Mailchimp's word back on the profiles (SPEC 12): for
// every contact of the export whose status differs from what its profile
// last showed (synced.profile_status), the profile's row in
// profile_statuses for the audience (read as the reserved attributes
// mailchimp.<audience>.status and .status_changed_at = at) is set, and
// then profile_status notes it (flowDue). A run without status changes
// costs a look into the partial index synced_flow_due. profiles.updated_at
// is left alone: the statuses are not sent to Mailchimp, and updated_at
// decides which profile's fields win for a shared address and what counts
// as new data.
//
// While the export owes its profiles a full pass (exports.flow_pending,
// from its first status refresh), every contact in the audience is written
// first (flowInAudience), whatever its profile_status says, and the debt
// is settled once all are.
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

// statusTime is how status_changed_at holds a time: RFC 3339, UTC, seconds
// (rules compare it as a date with time).
func statusTime(at time.Time) string { return at.UTC().Format("2006-01-02T15:04:05Z") }

// Owed full passes (exports.flow_pending).
const (
	flowOwed    = 1 // contacts are noted on insert
	flowOngoing = 2 // the pass has begun: they are not
)

// flowStatuses is FlowStatuses, or with owedOnly FlowOwed; with a claim f,
// settling the owed pass is fenced by it (an abandoned attempt's pass
// cannot settle what a run taking over relies on).
func (db *DB) flowStatuses(ctx context.Context, f *store.RunLease, exportID int64, audienceID string, at time.Time, owedOnly bool) (total int64, owed bool, err error) {
	if !attrjson.ValidReserved(attrjson.StatusAttr(audienceID)) {
		return 0, false, fmt.Errorf("audience id %q cannot name an attribute", audienceID)
	}
	when := statusTime(at)
	pending, err := db.flowPending(ctx, db.R, exportID)
	if err != nil {
		return 0, false, err
	}
	if owed = pending != 0; owed {
		// From here on, contacts recorded are due as usual: once the pass
		// has gone by their profiles, only flowDue can see them.
		if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE exports SET flow_pending = ? WHERE id = ? AND flow_pending = ?`), flowOngoing, exportID, flowOwed); err != nil {
			return 0, owed, fmt.Errorf("starting the status flow-back of export %d: %w", exportID, err)
		}
		if total, err = db.flowInAudience(ctx, exportID, audienceID, when); err != nil {
			return total, owed, err
		}
		err := db.fencedTx(ctx, f, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, db.Q(`UPDATE exports SET flow_pending = 0 WHERE id = ?`), exportID)
			return err
		})
		if err != nil {
			return total, owed, fmt.Errorf("settling the full status flow-back of export %d: %w", exportID, err)
		}
	}
	if owedOnly {
		return total, owed, nil
	}
	n, err := db.flowDue(ctx, exportID, audienceID, when)
	return total + n, owed, err
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

// flowInAudience writes the status of every contact of the export in the
// audience on its profile, whatever synced.profile_status says, in
// customer order through the index synced_customer (which covers what it
// reads), one range of flowRange profiles per transaction: an owed full
// pass. The ranges are cut in profiles' customer index: synced_customer
// is ordered by hash bucket first on SQLite, so each range's contacts are
// read from every bucket and sorted. A first run inserts one short row per
// profile, in the table's own order. It notes nothing; contacts that left
// the audience are flowDue's.
func (db *DB) flowInAudience(ctx context.Context, exportID int64, audienceID, when string) (int64, error) {
	// The profiles already showing a status of the audience (none on its
	// first run: the update is skipped) and those without a row yet, whose
	// number goes to the attribute catalogue. A contact of a customer with
	// no profile (deleted meanwhile) is not written.
	var shown int64
	if err := db.R.QueryRowContext(ctx, db.Q(`SELECT COALESCE(SUM(profile_count), 0) FROM profile_attributes WHERE name = ?`),
		attrjson.StatusAttr(audienceID)).Scan(&shown); err != nil {
		return 0, fmt.Errorf("reading the attribute catalogue: %w", err)
	}
	update, insert := db.flowRangeQueries()
	var total int64
	after := ""
	for {
		upto, last := "", false
		err := db.R.QueryRowContext(ctx, db.Q(`SELECT customer_id FROM profiles WHERE customer_id > ? ORDER BY customer_id LIMIT 1 OFFSET ?`),
			after, flowRange-1).Scan(&upto)
		if last = errors.Is(err, sql.ErrNoRows); last {
			upto = "\U0010FFFF" // after every customer id (valid UTF-8, compared bytewise)
		} else if err != nil {
			return total, fmt.Errorf("writing statuses of export %d: %w", exportID, err)
		}
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			if err := db.lockProfiles(ctx, tx); err != nil {
				return err
			}
			if shown > 0 {
				res, err := tx.ExecContext(ctx, update, when, exportID, after, upto, audienceID)
				if err != nil {
					return fmt.Errorf("writing statuses on profiles: %w", err)
				}
				n, _ := res.RowsAffected()
				total += n
			}
			res, err := tx.ExecContext(ctx, insert, audienceID, when, exportID, after, upto)
			if err != nil {
				return fmt.Errorf("writing statuses on profiles: %w", err)
			}
			n, _ := res.RowsAffected()
			total += n
			return db.countStatusAttrs(ctx, tx, audienceID, n)
		})
		if err != nil {
			return total, fmt.Errorf("writing statuses of export %d on profiles: %w", exportID, err)
		}
		if last {
			return total, nil
		}
		after = upto
	}
}

// flowRangeQueries are flowInAudience's statements for one range of
// customers: update (arguments: when, the export, after, upto, the
// audience) and insert (the audience, when, the export, after, upto).
func (db *DB) flowRangeQueries() (update, insert string) {
	contacts := `FROM synced s WHERE s.export_id = ? AND ` + db.syncedBuckets("s.") + ` AND s.customer_id > ? AND s.customer_id <= ?
		AND s.in_audience AND s.status NOT IN ('', 'creating')`
	update = db.Q(`UPDATE profile_statuses SET status = x.status, changed_at = ? FROM (SELECT s.customer_id, s.status ` + contacts + `) x
		WHERE profile_statuses.customer = x.customer_id AND profile_statuses.audience_id = ? AND profile_statuses.status <> x.status`)
	insert = db.Q(`INSERT INTO profile_statuses (customer, audience_id, status, changed_at)
		SELECT s.customer_id, ?, s.status, ? ` + contacts + ` AND EXISTS (SELECT 1 FROM profiles p WHERE p.customer_id = s.customer_id)
		ORDER BY s.customer_id ON CONFLICT (customer, audience_id) DO NOTHING`)
	return update, insert
}

// flowDue walks the contacts whose status is due (flowWhere) in hash
// order, flowChunk per transaction: per status and 500 contacts, the rows
// of their profiles that show another status are updated, the profiles
// without one get one ("deleted" is written only over a status shown), and
// profile_status notes what was written. A profile that shows the status
// already keeps its status_changed_at.
func (db *DB) flowDue(ctx context.Context, exportID int64, audienceID, when string) (int64, error) {
	var total int64
	after := ""
	for {
		rows, err := db.R.QueryContext(ctx, db.Q(`SELECT hash, customer_id, `+flowStatus+` FROM synced
			WHERE `+flowWhere+` AND hash > ? ORDER BY hash LIMIT `+fmt.Sprint(flowChunk)), exportID, after)
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
			if err := db.lockProfiles(ctx, tx); err != nil {
				return err
			}
			var added int64
			for st, list := range ids {
				hs := hashes[st]
				for len(list) > 0 {
					k := min(len(list), 500)
					in := placeholders(k, 1)
					res, err := tx.ExecContext(ctx, db.Q(`UPDATE profile_statuses SET status = ?, changed_at = ? WHERE audience_id = ? AND status <> ? AND customer IN (`+in+`)`),
						append([]any{st, when, audienceID, st}, list[:k]...)...)
					if err != nil {
						return fmt.Errorf("writing statuses on profiles: %w", err)
					}
					c, _ := res.RowsAffected()
					total += c
					if st != "deleted" {
						res, err := tx.ExecContext(ctx, db.Q(`INSERT INTO profile_statuses (customer, audience_id, status, changed_at)
							SELECT customer_id, ?, ?, ? FROM profiles WHERE customer_id IN (`+in+`) ON CONFLICT (customer, audience_id) DO NOTHING`),
							append([]any{audienceID, st, when}, list[:k]...)...)
						if err != nil {
							return fmt.Errorf("writing statuses on profiles: %w", err)
						}
						c, _ := res.RowsAffected()
						total += c
						added += c
					}
					if _, err := tx.ExecContext(ctx, db.Q(`UPDATE synced SET profile_status = ? WHERE export_id = ? AND hash IN (`+in+`)`),
						append([]any{st, exportID}, hs[:k]...)...); err != nil {
						return fmt.Errorf("noting the statuses written: %w", err)
					}
					list, hs = list[k:], hs[k:]
				}
			}
			return db.countStatusAttrs(ctx, tx, audienceID, added)
		})
		if err != nil {
			return total, fmt.Errorf("writing statuses of export %d on profiles: %w", exportID, err)
		}
		if n < flowChunk {
			return total, nil
		}
	}
}

// countStatusAttrs adds n profiles holding the status attributes of an
// audience to the attribute catalogue (a trigger counts deleted rows of
// profile_statuses out).
func (db *DB) countStatusAttrs(ctx context.Context, tx *sql.Tx, audienceID string, n int64) error {
	if n <= 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, db.Q(`INSERT INTO profile_attributes (name, type, profile_count) VALUES (?, ?, ?), (?, ?, ?)
		ON CONFLICT (name, type) DO UPDATE SET profile_count = profile_attributes.profile_count + excluded.profile_count`),
		attrjson.StatusAttr(audienceID), attrjson.TypeString, n, attrjson.StatusChangedAttr(audienceID), attrjson.TypeDate, n); err != nil {
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
	if !attrjson.ValidReserved(attrjson.StatusAttr(audienceID)) {
		return 0, false, nil
	}
	when := statusTime(at)
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		changed, known = 0, false
		if err := db.lockProfiles(ctx, tx); err != nil {
			return err
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
			// The profile's row for the audience, unless it shows a status
			// from after at already; a profile deleted meanwhile gets none.
			var missing bool
			err := tx.QueryRowContext(ctx, db.Q(`SELECT NOT EXISTS (SELECT 1 FROM profile_statuses WHERE customer = ? AND audience_id = ?) FROM profiles WHERE customer_id = ?`),
				c, audienceID, c).Scan(&missing)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			} else if err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, db.Q(`INSERT INTO profile_statuses (customer, audience_id, status, changed_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (customer, audience_id) DO UPDATE SET status = excluded.status, changed_at = excluded.changed_at
				WHERE profile_statuses.changed_at <= excluded.changed_at`), c, audienceID, status, when)
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
				if err := db.countStatusAttrs(ctx, tx, audienceID, 1); err != nil {
					return err
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
