package store

import (
	"context"
	"time"
)

// User is one person who may sign in or hold API tokens. Role is "admin",
// "contributor" or "viewer"; Email is lowercased and trimmed.
type User struct {
	ID           int64
	Email        string
	Role         string
	PasswordHash string // empty: the user cannot sign in with a password
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Token is an API token. Only the SHA-256 of the secret is kept.
type Token struct {
	ID         int64
	UserID     int64
	UserEmail  string // filled by reads
	Name       string
	Hash       string // hex SHA-256 of the secret
	Prefix     string // first characters of the secret, for recognising it
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// Session is a signed-in UI session. Only the SHA-256 of its id is kept.
type Session struct {
	IDHash     string
	UserID     int64
	CSRFToken  string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

// UserStore keeps users, their API tokens and their UI sessions.
type UserStore interface {
	// CreateUser inserts u and sets u.ID; a taken email is ErrConflict.
	CreateUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, id int64) (User, error)
	GetUserByEmail(ctx context.Context, email string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	// UpdateUser writes role, password hash and disabled flag of u.ID.
	UpdateUser(ctx context.Context, u User) error
	CountUsers(ctx context.Context) (int, error)

	// CreateToken inserts t and sets t.ID.
	CreateToken(ctx context.Context, t *Token) error
	// TokenByHash finds a token by the hash of its secret, with its user.
	TokenByHash(ctx context.Context, hash string) (Token, User, error)
	// ListTokens lists the tokens of one user, or of everyone when userID is 0.
	ListTokens(ctx context.Context, userID int64) ([]Token, error)
	GetToken(ctx context.Context, id int64) (Token, error)
	RevokeToken(ctx context.Context, id int64, at time.Time) error
	TouchToken(ctx context.Context, id int64, at time.Time) error

	CreateSession(ctx context.Context, s Session) error
	// SessionByHash finds an unexpired-or-not session by the hash of its id, with its user.
	SessionByHash(ctx context.Context, hash string) (Session, User, error)
	TouchSession(ctx context.Context, hash string, lastSeen, expires time.Time) error
	DeleteSession(ctx context.Context, hash string) error
	DeleteUserSessions(ctx context.Context, userID int64) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)
}
