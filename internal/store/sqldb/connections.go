package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/segsync/segsync/internal/store"
)

const connCols = `c.id, c.display_name, c.type, c.auth_method, c.allow_contributors, c.credential, c.api_base_url,
	c.account_id, c.account_name, c.dc, c.export_user_id, COALESCE(eu.email, ''), c.consent_by, c.consent_by_email,
	c.consent_at, c.created_at, c.updated_at, c.last_tested_at, c.last_test_error`

const connFrom = ` FROM connections c LEFT JOIN users eu ON eu.id = c.export_user_id`

func scanConnection(r authRow) (store.Connection, error) {
	var c store.Connection
	var exportUser, consentBy, tested sql.NullInt64
	var consentAt, created, updated int64
	err := r.Scan(&c.ID, &c.DisplayName, &c.Type, &c.AuthMethod, &c.AllowContributors, &c.Credential, &c.APIBaseURL,
		&c.AccountID, &c.AccountName, &c.DC, &exportUser, &c.ExportUserEmail, &consentBy, &c.ConsentByEmail,
		&consentAt, &created, &updated, &tested, &c.LastTestError)
	if err != nil {
		return c, err
	}
	c.ExportUserID, c.ConsentBy = exportUser.Int64, consentBy.Int64
	c.ConsentAt, c.CreatedAt, c.UpdatedAt = authTime(consentAt), authTime(created), authTime(updated)
	c.LastTestedAt = authNullTime(tested)
	return c, nil
}

func authNullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// CreateConnection inserts c and sets its ID.
func (db *DB) CreateConnection(ctx context.Context, c *store.Connection) error {
	now := time.Now()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	c.UpdatedAt = c.CreatedAt
	if c.Type == "" {
		c.Type = "mailchimp"
	}
	err := db.W.QueryRowContext(ctx, db.Q(`INSERT INTO connections (display_name, type, auth_method, allow_contributors,
		credential, api_base_url, account_id, account_name, dc, export_user_id, consent_by, consent_by_email, consent_at,
		created_at, updated_at, last_tested_at, last_test_error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		c.DisplayName, c.Type, c.AuthMethod, c.AllowContributors, c.Credential, c.APIBaseURL, c.AccountID, c.AccountName,
		c.DC, authNullID(c.ExportUserID), authNullID(c.ConsentBy), c.ConsentByEmail, authMicros(c.ConsentAt),
		authMicros(c.CreatedAt), authMicros(c.UpdatedAt), authNullMicros(c.LastTestedAt), c.LastTestError).Scan(&c.ID)
	if err != nil {
		return fmt.Errorf("creating connection: %w", err)
	}
	return nil
}

// GetConnection reads one connection.
func (db *DB) GetConnection(ctx context.Context, id int64) (store.Connection, error) {
	c, err := scanConnection(db.R.QueryRowContext(ctx, db.Q(`SELECT `+connCols+connFrom+` WHERE c.id = ?`), id))
	if err != nil {
		return c, authNotFound(err, fmt.Sprintf("connection %d", id))
	}
	return c, nil
}

// ListConnections lists every connection by display name.
func (db *DB) ListConnections(ctx context.Context) ([]store.Connection, error) {
	rows, err := db.R.QueryContext(ctx, `SELECT `+connCols+connFrom+` ORDER BY c.display_name, c.id`)
	if err != nil {
		return nil, fmt.Errorf("listing connections: %w", err)
	}
	defer rows.Close()
	var cs []store.Connection
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, fmt.Errorf("listing connections: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing connections: %w", err)
	}
	return cs, nil
}

// UpdateConnection writes every mutable field.
func (db *DB) UpdateConnection(ctx context.Context, c store.Connection) error {
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE connections SET display_name = ?, auth_method = ?, allow_contributors = ?,
		credential = ?, api_base_url = ?, account_id = ?, account_name = ?, dc = ?, export_user_id = ?,
		last_tested_at = ?, last_test_error = ?, updated_at = ? WHERE id = ?`),
		c.DisplayName, c.AuthMethod, c.AllowContributors, c.Credential, c.APIBaseURL, c.AccountID, c.AccountName, c.DC,
		authNullID(c.ExportUserID), authNullMicros(c.LastTestedAt), c.LastTestError, authMicros(time.Now()), c.ID)
	return authAffectedOne(res, err, fmt.Sprintf("connection %d", c.ID))
}

// ConnectionExports counts the exports whose connection_id is id.
func (db *DB) ConnectionExports(ctx context.Context, id int64) (int, error) {
	var n int
	if err := db.R.QueryRowContext(ctx, db.Q(`SELECT COUNT(*) FROM exports WHERE connection_id = ?`), id).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting exports of connection %d: %w", id, err)
	}
	return n, nil
}

// DeleteConnection deletes a connection, refusing (ErrConflict) while exports
// use it unless detach is set, in which case they are detached first, in the
// same transaction.
func (db *DB) DeleteConnection(ctx context.Context, id int64, detach bool) (int, error) {
	detached := 0
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		// exports.connection_id (export domain, migration 0005) has no
		// foreign key: NULL is "detached", and this is the one place that
		// decides between refusing and detaching.
		var n int
		if err := tx.QueryRowContext(ctx, db.Q(`SELECT COUNT(*) FROM exports WHERE connection_id = ?`), id).Scan(&n); err != nil {
			return fmt.Errorf("counting exports of connection %d: %w", id, err)
		}
		if n > 0 && !detach {
			return fmt.Errorf("connection %d is used by %d export(s); detach them first (?detach=true): %w", id, n, store.ErrConflict)
		}
		if n > 0 {
			if _, err := tx.ExecContext(ctx, db.Q(`UPDATE exports SET connection_id = NULL, updated_at = ? WHERE connection_id = ?`),
				authMicros(time.Now()), id); err != nil {
				return fmt.Errorf("detaching exports of connection %d: %w", id, err)
			}
			detached = n
		}
		res, err := tx.ExecContext(ctx, db.Q(`DELETE FROM connections WHERE id = ?`), id)
		return authAffectedOne(res, err, fmt.Sprintf("connection %d", id))
	})
	if err != nil {
		return 0, err
	}
	return detached, nil
}

// CreateOAuthState records a pending OAuth handshake.
func (db *DB) CreateOAuthState(ctx context.Context, s store.OAuthState) error {
	if _, err := db.W.ExecContext(ctx, db.Q(`INSERT INTO oauth_states (state_hash, user_id, display_name, allow_contributors, consent_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`), s.StateHash, s.UserID, s.DisplayName, s.AllowContributors, authMicros(s.ConsentAt), authMicros(s.ExpiresAt)); err != nil {
		return fmt.Errorf("saving OAuth state: %w", err)
	}
	return nil
}

// TakeOAuthState returns and deletes a pending handshake, so a state is used once.
func (db *DB) TakeOAuthState(ctx context.Context, hash string) (store.OAuthState, error) {
	var s store.OAuthState
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var consent, expires int64
		err := tx.QueryRowContext(ctx, db.Q(`DELETE FROM oauth_states WHERE state_hash = ?
			RETURNING state_hash, user_id, display_name, allow_contributors, consent_at, expires_at`), hash).
			Scan(&s.StateHash, &s.UserID, &s.DisplayName, &s.AllowContributors, &consent, &expires)
		if err != nil {
			return authNotFound(err, "OAuth state")
		}
		s.ConsentAt, s.ExpiresAt = authTime(consent), authTime(expires)
		_, err = tx.ExecContext(ctx, db.Q(`DELETE FROM oauth_states WHERE expires_at < ?`), authMicros(time.Now()))
		return err
	})
	return s, err
}
