package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/segsync/segsync/internal/profile/attrjson"
)

// flowStatus is, per synced row, the status the profile should show: the
// contact's status, or "deleted" once it left the audience (after it had
// been shown). Rows whose status is unknown or in flight are left out.
const flowStatus = `CASE WHEN in_audience THEN status ELSE 'deleted' END`

const flowWhere = `export_id = ? AND customer_id <> '' AND status <> 'creating'
	AND ((in_audience AND status <> '') OR (NOT in_audience AND profile_status <> ''))
	AND ` + flowStatus + ` <> profile_status`

// FlowStatuses writes Mailchimp's word back on the profiles (SPEC 12): for
// every contact of the export whose status differs from what its profile
// last showed, the reserved attributes mailchimp.<audience>.status and
// .status_changed_at (= at) are set, in two set-based statements. Nothing
// is read into memory, and a run without status changes costs one scan of
// the export's synced rows. profiles.updated_at is left alone: the
// attributes are not sent to Mailchimp, and updated_at decides which
// profile's fields win for a shared address and what counts as new data.
func (db *DB) FlowStatuses(ctx context.Context, exportID int64, audienceID string, at time.Time) (int64, error) {
	statusAttr, atAttr := attrjson.StatusAttr(audienceID), attrjson.StatusChangedAttr(audienceID)
	if !attrjson.ValidReserved(statusAttr) {
		return 0, fmt.Errorf("audience id %q cannot name an attribute", audienceID)
	}
	when := at.UTC().Format("2006-01-02T15:04:05Z")
	changed := `SELECT customer_id, ` + flowStatus + ` AS st FROM synced WHERE ` + flowWhere
	var n int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var missingQ, updateQ string
		var missingArgs, updateArgs []any
		if db.d == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, profileLockKey); err != nil {
				return err
			}
			missingQ = `SELECT COUNT(*) FROM profiles WHERE attrs -> CAST(? AS text) IS NULL AND customer_id IN (SELECT customer_id FROM synced WHERE ` + flowWhere + `)`
			missingArgs = []any{statusAttr, exportID}
			updateQ = `UPDATE profiles p SET attrs = p.attrs || jsonb_build_object(CAST(? AS text), x.st, CAST(? AS text), CAST(? AS text))
				FROM (` + changed + `) x WHERE p.customer_id = x.customer_id`
			updateArgs = []any{statusAttr, atAttr, when, exportID}
		} else {
			missingQ = `SELECT COUNT(*) FROM profiles WHERE json_type(attrs, ?) IS NULL AND customer_id IN (SELECT customer_id FROM synced WHERE ` + flowWhere + `)`
			missingArgs = []any{`$."` + statusAttr + `"`, exportID}
			updateQ = `UPDATE profiles SET attrs = json_set(attrs, ?, x.st, ?, ?)
				FROM (` + changed + `) x WHERE profiles.customer_id = x.customer_id`
			updateArgs = []any{`$."` + statusAttr + `"`, `$."` + atAttr + `"`, when, exportID}
		}
		var missing int64
		if err := tx.QueryRowContext(ctx, db.Q(missingQ), missingArgs...).Scan(&missing); err != nil {
			return fmt.Errorf("counting new status attributes: %w", err)
		}
		res, err := tx.ExecContext(ctx, db.Q(updateQ), updateArgs...)
		if err != nil {
			return fmt.Errorf("writing statuses on profiles: %w", err)
		}
		n, _ = res.RowsAffected()
		if _, err := tx.ExecContext(ctx, db.Q(`UPDATE synced SET profile_status = `+flowStatus+` WHERE `+flowWhere), exportID); err != nil {
			return fmt.Errorf("noting the statuses written: %w", err)
		}
		if missing > 0 {
			if _, err := tx.ExecContext(ctx, db.Q(`INSERT INTO profile_attributes (name, type, profile_count) VALUES (?, ?, ?), (?, ?, ?)
				ON CONFLICT (name, type) DO UPDATE SET profile_count = profile_attributes.profile_count + excluded.profile_count`),
				statusAttr, attrjson.TypeString, missing, atAttr, attrjson.TypeDate, missing); err != nil {
				return fmt.Errorf("updating the attribute catalogue: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("writing statuses of export %d on profiles: %w", exportID, err)
	}
	return n, nil
}
