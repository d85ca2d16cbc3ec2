package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/segsync/segsync/internal/store"
)

// Times of users, tokens, sessions, connections and audit events are stored
// as unix microseconds.
func authMicros(t time.Time) int64 { return t.UTC().UnixMicro() }

func authTime(us int64) time.Time { return time.UnixMicro(us).UTC() }

func authNullTime(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := authTime(n.Int64)
	return &t
}

func authNullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: authMicros(*t), Valid: true}
}

const userCols = `u.id, u.email, u.role, u.password_hash, u.disabled, u.created_at, u.updated_at`

type authRow interface{ Scan(dest ...any) error }

func scanUser(r authRow, extra ...any) (store.User, error) {
	var u store.User
	var created, updated int64
	dest := append([]any{&u.ID, &u.Email, &u.Role, &u.PasswordHash, &u.Disabled, &created, &updated}, extra...)
	if err := r.Scan(dest...); err != nil {
		return u, err
	}
	u.CreatedAt, u.UpdatedAt = authTime(created), authTime(updated)
	return u, nil
}

func authNotFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}

// CreateUser inserts u and sets its ID.
func (db *DB) CreateUser(ctx context.Context, u *store.User) error {
	now := time.Now()
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	u.UpdatedAt = u.CreatedAt
	err := db.W.QueryRowContext(ctx, db.Q(`INSERT INTO users (email, role, password_hash, disabled, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`),
		u.Email, u.Role, u.PasswordHash, u.Disabled, authMicros(u.CreatedAt), authMicros(u.UpdatedAt)).Scan(&u.ID)
	if uniqueViolation(err) {
		return fmt.Errorf("user %s already exists: %w", u.Email, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("creating user: %w", err)
	}
	return nil
}

// GetUser reads one user.
func (db *DB) GetUser(ctx context.Context, id int64) (store.User, error) {
	u, err := scanUser(db.R.QueryRowContext(ctx, db.Q(`SELECT `+userCols+` FROM users u WHERE u.id = ?`), id))
	if err != nil {
		return u, authNotFound(err, fmt.Sprintf("user %d", id))
	}
	return u, nil
}

// GetUserByEmail reads one user by (normalised) email.
func (db *DB) GetUserByEmail(ctx context.Context, email string) (store.User, error) {
	u, err := scanUser(db.R.QueryRowContext(ctx, db.Q(`SELECT `+userCols+` FROM users u WHERE u.email = ?`), email))
	if err != nil {
		return u, authNotFound(err, "user")
	}
	return u, nil
}

// ListUsers lists every user by email.
func (db *DB) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := db.R.QueryContext(ctx, `SELECT `+userCols+` FROM users u ORDER BY u.email`)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	defer rows.Close()
	var us []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("listing users: %w", err)
		}
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return us, nil
}

// UpdateUser writes the role, password hash and disabled flag.
func (db *DB) UpdateUser(ctx context.Context, u store.User) error {
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE users SET role = ?, password_hash = ?, disabled = ?, updated_at = ? WHERE id = ?`),
		u.Role, u.PasswordHash, u.Disabled, authMicros(time.Now()), u.ID)
	return authAffectedOne(res, err, fmt.Sprintf("user %d", u.ID))
}

func authAffectedOne(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("updating %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("updating %s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// CountUsers counts all users.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := db.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting users: %w", err)
	}
	return n, nil
}

const tokenCols = `t.id, t.user_id, u.email, t.name, t.token_hash, t.prefix, t.created_at, t.last_used_at, t.revoked_at`

func scanToken(r authRow, extra ...any) (store.Token, error) {
	var t store.Token
	var created int64
	var used, revoked sql.NullInt64
	dest := append([]any{&t.ID, &t.UserID, &t.UserEmail, &t.Name, &t.Hash, &t.Prefix, &created, &used, &revoked}, extra...)
	if err := r.Scan(dest...); err != nil {
		return t, err
	}
	t.CreatedAt, t.LastUsedAt, t.RevokedAt = authTime(created), authNullTime(used), authNullTime(revoked)
	return t, nil
}

// CreateToken inserts t and sets its ID.
func (db *DB) CreateToken(ctx context.Context, t *store.Token) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	err := db.W.QueryRowContext(ctx, db.Q(`INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_at)
		VALUES (?, ?, ?, ?, ?) RETURNING id`), t.UserID, t.Name, t.Hash, t.Prefix, authMicros(t.CreatedAt)).Scan(&t.ID)
	if uniqueViolation(err) {
		return fmt.Errorf("creating token: %w", store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("creating token: %w", err)
	}
	return nil
}

// TokenByHash finds a token and its user by the hash of the secret.
func (db *DB) TokenByHash(ctx context.Context, hash string) (store.Token, store.User, error) {
	var u store.User
	var created, updated int64
	t, err := scanToken(db.R.QueryRowContext(ctx, db.Q(`SELECT `+tokenCols+`, `+userCols+`
		FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?`), hash),
		&u.ID, &u.Email, &u.Role, &u.PasswordHash, &u.Disabled, &created, &updated)
	if err != nil {
		return t, u, authNotFound(err, "token")
	}
	u.CreatedAt, u.UpdatedAt = authTime(created), authTime(updated)
	return t, u, nil
}

// GetToken reads one token.
func (db *DB) GetToken(ctx context.Context, id int64) (store.Token, error) {
	t, err := scanToken(db.R.QueryRowContext(ctx, db.Q(`SELECT `+tokenCols+`
		FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?`), id))
	if err != nil {
		return t, authNotFound(err, fmt.Sprintf("token %d", id))
	}
	return t, nil
}

// ListTokens lists the tokens of one user (or all when userID is 0), newest first.
func (db *DB) ListTokens(ctx context.Context, userID int64) ([]store.Token, error) {
	rows, err := db.R.QueryContext(ctx, db.Q(`SELECT `+tokenCols+`
		FROM api_tokens t JOIN users u ON u.id = t.user_id
		WHERE ? = 0 OR t.user_id = ? ORDER BY t.id DESC`), userID, userID)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	defer rows.Close()
	var ts []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("listing tokens: %w", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	return ts, nil
}

// RevokeToken marks a token revoked (idempotent: the first time is kept).
func (db *DB) RevokeToken(ctx context.Context, id int64, at time.Time) error {
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`), authMicros(at), id)
	return authAffectedOne(res, err, fmt.Sprintf("token %d", id))
}

// TouchToken records that a token was used.
func (db *DB) TouchToken(ctx context.Context, id int64, at time.Time) error {
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE api_tokens SET last_used_at = ? WHERE id = ?`), authMicros(at), id)
	return authAffectedOne(res, err, fmt.Sprintf("token %d", id))
}

// CreateSession inserts a session.
func (db *DB) CreateSession(ctx context.Context, s store.Session) error {
	_, err := db.W.ExecContext(ctx, db.Q(`INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`), s.IDHash, s.UserID, s.CSRFToken, authMicros(s.CreatedAt), authMicros(s.LastSeenAt), authMicros(s.ExpiresAt))
	if err != nil {
		return fmt.Errorf("creating session: %w", err)
	}
	return nil
}

// SessionByHash finds a session and its user by the hash of the session id.
func (db *DB) SessionByHash(ctx context.Context, hash string) (store.Session, store.User, error) {
	var s store.Session
	var created, seen, expires int64
	u, err := scanUser(db.R.QueryRowContext(ctx, db.Q(`SELECT `+userCols+`, s.id_hash, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?`), hash),
		&s.IDHash, &s.CSRFToken, &created, &seen, &expires)
	if err != nil {
		return s, u, authNotFound(err, "session")
	}
	s.UserID = u.ID
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = authTime(created), authTime(seen), authTime(expires)
	return s, u, nil
}

// TouchSession slides a session's expiry.
func (db *DB) TouchSession(ctx context.Context, hash string, lastSeen, expires time.Time) error {
	res, err := db.W.ExecContext(ctx, db.Q(`UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE id_hash = ?`),
		authMicros(lastSeen), authMicros(expires), hash)
	return authAffectedOne(res, err, "session")
}

// DeleteSession ends one session; deleting a missing session is not an error.
func (db *DB) DeleteSession(ctx context.Context, hash string) error {
	if _, err := db.W.ExecContext(ctx, db.Q(`DELETE FROM sessions WHERE id_hash = ?`), hash); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session of a user.
func (db *DB) DeleteUserSessions(ctx context.Context, userID int64) error {
	if _, err := db.W.ExecContext(ctx, db.Q(`DELETE FROM sessions WHERE user_id = ?`), userID); err != nil {
		return fmt.Errorf("deleting sessions of user %d: %w", userID, err)
	}
	return nil
}

// DeleteExpiredSessions removes sessions that expired before now.
func (db *DB) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	res, err := db.W.ExecContext(ctx, db.Q(`DELETE FROM sessions WHERE expires_at < ?`), authMicros(now))
	if err != nil {
		return 0, fmt.Errorf("deleting expired sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
