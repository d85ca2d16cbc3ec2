package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segsync/segsync/internal/store"
)

// erasureSyncedQueries are CreateErasure's statements on one person's
// synced rows (argument: the customer id): read reads them with their
// export's connection and audience, deleteSynced deletes them. In read the
// few exports lead (SQLite keeps a CROSS JOIN's order), each seeking
// the person's rows in synced_customer.
func (db *DB) erasureSyncedQueries() (read, deleteSynced string) {
	read = db.Q(`SELECT e.connection_id, e.audience_id, s.email, s.in_audience OR s.status = 'creating' AS sent
		FROM exports e CROSS JOIN synced s WHERE s.export_id = e.id AND ` + db.syncedBuckets("s.") + ` AND s.customer_id = ?`)
	deleteSynced = db.Q(`DELETE FROM synced WHERE export_id IN (SELECT id FROM exports) AND ` + db.syncedBuckets("") + ` AND customer_id = ?`)
	return read, deleteSynced
}

// CreateErasure implements store.ErasureStore. In one transaction: the
// targets are collected from the synced state of every export that has a
// connection, and the person is removed from segsync: profile (with the
// attribute catalogue), synced rows, run rejections and dry-run samples.
// From then on no run can send the person again (a crash before the
// targets are deleted leaves the request pending, never the data).
func (db *DB) CreateErasure(ctx context.Context, customerID, requestedBy string) (store.Erasure, error) {
	var id int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockProfiles(ctx, tx); err != nil {
			return err
		}
		// The contacts the exports sent, and those sent for creation
		// without an answer yet (create intents: they may exist).
		read, deleteSynced := db.erasureSyncedQueries()
		rows, err := tx.QueryContext(ctx, read, customerID)
		if err != nil {
			return fmt.Errorf("reading the contacts sent: %w", err)
		}
		type contact struct {
			conn      sql.NullInt64
			aud, mail string
			sent      bool
		}
		var contacts []contact
		for rows.Next() {
			var c contact
			if err := rows.Scan(&c.conn, &c.aud, &c.mail, &c.sent); err != nil {
				rows.Close()
				return err
			}
			contacts = append(contacts, c)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		intents, err := db.eraseIntents(ctx, tx, customerID)
		if err != nil {
			return err
		}
		for _, b := range intents {
			for _, in := range b.intents {
				contacts = append(contacts, contact{conn: b.conn, aud: b.aud, mail: in.Email, sent: true})
			}
		}
		slices.SortFunc(contacts, func(a, b contact) int {
			return cmp.Or(cmp.Compare(a.conn.Int64, b.conn.Int64), cmp.Compare(a.aud, b.aud), cmp.Compare(a.mail, b.mail))
		})
		type key struct {
			conn      int64
			aud, mail string
		}
		var targets []key
		seen := map[key]bool{}
		emails := map[string]bool{}
		for _, c := range contacts {
			emails[c.mail] = true
			// A detached export's contacts are reached through the other
			// exports of the audience, if any; without a connection there
			// is no way to Mailchimp.
			k := key{conn: c.conn.Int64, aud: c.aud, mail: c.mail}
			if !c.sent || !c.conn.Valid || seen[k] {
				continue
			}
			seen[k] = true
			targets = append(targets, k)
		}
		cat := newCatalogDelta()
		prow, err := tx.QueryContext(ctx, db.Q(`DELETE FROM profiles WHERE customer_id = ? RETURNING `+db.attrsCol()), customerID)
		if err != nil {
			return fmt.Errorf("deleting the profile: %w", err)
		}
		profiles := 0
		for prow.Next() {
			var attrs []byte
			if err := prow.Scan(&attrs); err != nil {
				prow.Close()
				return err
			}
			profiles++
			if err := cat.forget(attrs); err != nil {
				prow.Close()
				return err
			}
		}
		if err := errors.Join(prow.Err(), prow.Close()); err != nil {
			return err
		}
		if profiles == 0 && len(emails) == 0 {
			return fmt.Errorf("profile %q: %w", customerID, store.ErrNotFound)
		}
		if err := cat.apply(ctx, db, tx); err != nil {
			return err
		}
		if err := db.deleteLayers(ctx, tx, []any{customerID}); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, deleteSynced, customerID); err != nil {
			return fmt.Errorf("deleting synced state: %w", err)
		}
		if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM run_rejections WHERE customer_id = ?`), customerID); err != nil {
			return fmt.Errorf("deleting run rejections: %w", err)
		}
		for e := range emails {
			if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM run_rejections WHERE email = ?`), e); err != nil {
				return fmt.Errorf("deleting run rejections: %w", err)
			}
		}
		if err := db.scrubSamples(ctx, tx, customerID, emails); err != nil {
			return err
		}
		now := time.Now().UnixMicro()
		if err := tx.QueryRowContext(ctx, db.Q(`INSERT INTO erasures (customer_id, status, requested_by, created_at)
			VALUES (?, ?, ?, ?) RETURNING id`), customerID, store.ErasurePending, requestedBy, now).Scan(&id); err != nil {
			return fmt.Errorf("recording the erasure: %w", err)
		}
		for i, t := range targets {
			if _, err := tx.ExecContext(ctx, db.Q(`INSERT INTO erasure_targets (erasure_id, seq, connection_id, audience_id, email)
				VALUES (?, ?, ?, ?, ?)`), id, i, t.conn, t.aud, t.mail); err != nil {
				return fmt.Errorf("recording the erasure: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return store.Erasure{}, fmt.Errorf("erasing %q: %w", customerID, err)
	}
	return db.GetErasure(ctx, id)
}

// scrubSamples removes the person from the dry-run samples of every run.
func (db *DB) scrubSamples(ctx context.Context, tx *sql.Tx, customerID string, emails map[string]bool) error {
	rows, err := tx.QueryContext(ctx, db.Q(`SELECT id, sample FROM runs WHERE sample <> '{}' AND sample <> ''`))
	if err != nil {
		return fmt.Errorf("reading run samples: %w", err)
	}
	type fix struct {
		id     int64
		sample string
	}
	var fixes []fix
	for rows.Next() {
		var id int64
		var raw string
		if err := rows.Scan(&id, &raw); err != nil {
			rows.Close()
			return err
		}
		var s store.RunSample
		if json.Unmarshal([]byte(raw), &s) != nil {
			continue
		}
		changed := false
		for kind, cs := range s {
			kept := cs[:0]
			for _, c := range cs {
				if c.CustomerID == customerID || emails[c.Email] {
					changed = true
					continue
				}
				kept = append(kept, c)
			}
			s[kind] = kept
		}
		if changed {
			b, _ := json.Marshal(s)
			fixes = append(fixes, fix{id, string(b)})
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	for _, f := range fixes {
		if _, err := tx.ExecContext(ctx, db.Q(`UPDATE runs SET sample = ? WHERE id = ?`), f.sample, f.id); err != nil {
			return fmt.Errorf("scrubbing the sample of run %d: %w", f.id, err)
		}
	}
	return nil
}

// GetErasure implements store.ErasureStore.
func (db *DB) GetErasure(ctx context.Context, id int64) (store.Erasure, error) {
	var e store.Erasure
	var created, finished int64
	err := db.R.QueryRowContext(ctx, db.Q(`SELECT id, customer_id, status, requested_by, created_at, finished_at, attempts, last_error, token
		FROM erasures WHERE id = ?`), id).Scan(&e.ID, &e.CustomerID, &e.Status, &e.RequestedBy, &created, &finished, &e.Attempts, &e.LastError, &e.Token)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Erasure{}, fmt.Errorf("erasure %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Erasure{}, fmt.Errorf("reading erasure %d: %w", id, err)
	}
	e.CreatedAt = time.UnixMicro(created).UTC()
	if finished != 0 {
		t := time.UnixMicro(finished).UTC()
		e.FinishedAt = &t
	}
	rows, err := db.R.QueryContext(ctx, db.Q(`SELECT seq, connection_id, audience_id, email, result, error
		FROM erasure_targets WHERE erasure_id = ? ORDER BY seq`), id)
	if err != nil {
		return store.Erasure{}, fmt.Errorf("reading erasure %d: %w", id, err)
	}
	defer rows.Close()
	e.Audiences = []store.ErasureTarget{}
	for rows.Next() {
		var t store.ErasureTarget
		if err := rows.Scan(&t.Seq, &t.ConnectionID, &t.AudienceID, &t.Email, &t.Result, &t.Error); err != nil {
			return store.Erasure{}, err
		}
		if t.Result == "" {
			t.Result = store.ErasurePendingTarget
		}
		e.Audiences = append(e.Audiences, t)
	}
	return e, rows.Err()
}

// ClaimErasure implements store.ErasureStore.
func (db *DB) ClaimErasure(ctx context.Context, owner string, lease time.Duration) (store.Erasure, bool, error) {
	now := time.Now().UnixMicro()
	var id int64
	err := db.W.QueryRowContext(ctx, db.Q(`SELECT id FROM erasures WHERE (status = ? AND next_at <= ?) OR (status = ? AND lease_until < ?)
		ORDER BY id LIMIT 1`), store.ErasurePending, now, store.ErasureRunning, now).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Erasure{}, false, nil
	}
	if err != nil {
		return store.Erasure{}, false, fmt.Errorf("looking for erasures: %w", err)
	}
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE erasures SET status = ?, lease_owner = ?, lease_until = ?, token = token + 1, attempts = attempts + 1
		WHERE id = ? AND ((status = ? AND next_at <= ?) OR (status = ? AND lease_until < ?))`),
		store.ErasureRunning, owner, now+lease.Microseconds(), id, store.ErasurePending, now, store.ErasureRunning, now)
	if err != nil {
		return store.Erasure{}, false, fmt.Errorf("claiming erasure %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return store.Erasure{}, false, nil // another worker was faster
	}
	e, err := db.GetErasure(ctx, id)
	return e, err == nil, err
}

// RecordErasureTarget implements store.ErasureStore. The address is
// blanked once it is no longer needed.
func (db *DB) RecordErasureTarget(ctx context.Context, id, token int64, seq int, result, errMsg string) error {
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE erasure_targets SET result = ?, error = ?,
		email = CASE WHEN ? IN ('deleted', 'not_found') THEN '' ELSE email END
		WHERE erasure_id = ? AND seq = ? AND EXISTS (SELECT 1 FROM erasures WHERE id = ? AND token = ? AND status = ?)`),
		result, errMsg, result, id, seq, id, token, store.ErasureRunning)
	if err != nil {
		return fmt.Errorf("recording erasure %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("erasure %d was claimed by another worker: %w", id, store.ErrConflict)
	}
	return nil
}

// RenewErasure implements store.ErasureStore.
func (db *DB) RenewErasure(ctx context.Context, id, token int64, lease time.Duration) error {
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE erasures SET lease_until = ? WHERE id = ? AND token = ? AND status = ?`),
		time.Now().Add(lease).UnixMicro(), id, token, store.ErasureRunning)
	if err != nil {
		return fmt.Errorf("renewing erasure %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("erasure %d was claimed by another worker: %w", id, store.ErrConflict)
	}
	return nil
}

// FinishErasure implements store.ErasureStore.
func (db *DB) FinishErasure(ctx context.Context, id, token int64, succeeded bool, errMsg string, retryAt time.Time, done *store.AuditEvent) error {
	status, finished := store.ErasurePending, int64(0)
	if succeeded {
		status, finished = store.ErasureSucceeded, time.Now().UnixMicro()
	}
	return db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.Q(`UPDATE erasures SET status = ?, finished_at = ?, last_error = ?, next_at = ?,
			lease_owner = '', lease_until = 0 WHERE id = ? AND token = ? AND status = ?`),
			status, finished, errMsg, retryAt.UnixMicro(), id, token, store.ErasureRunning)
		if err != nil {
			return fmt.Errorf("finishing erasure %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("erasure %d was claimed by another worker: %w", id, store.ErrConflict)
		}
		if done != nil {
			return db.addAuditEvent(ctx, tx, done)
		}
		return nil
	})
}
