package store

import (
	"context"
	"time"
)

// Connection is a Mailchimp account segsync may write to. Credential is the
// sealed (encrypted) API key or OAuth token; the store never sees it in clear.
type Connection struct {
	ID                int64
	DisplayName       string
	Type              string // "mailchimp"
	AuthMethod        string // "api_key" or "oauth"
	AllowContributors bool
	Credential        []byte
	APIBaseURL        string // e.g. https://us6.api.mailchimp.com/3.0
	AccountID         string
	AccountName       string
	DC                string
	ExportUserID      int64  // the admin who authenticated; 0 when that user is gone
	ExportUserEmail   string // filled by reads
	ConsentBy         int64
	ConsentByEmail    string
	ConsentAt         time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
	LastTestedAt      *time.Time
	LastTestError     string
}

// OAuthState is a pending "Authenticate with Mailchimp" handshake.
type OAuthState struct {
	StateHash         string
	UserID            int64
	DisplayName       string
	AllowContributors bool
	ConsentAt         time.Time
	ExpiresAt         time.Time
}

// ConnectionStore keeps connections and pending OAuth handshakes.
type ConnectionStore interface {
	CreateConnection(ctx context.Context, c *Connection) error
	GetConnection(ctx context.Context, id int64) (Connection, error)
	ListConnections(ctx context.Context) ([]Connection, error)
	// UpdateConnection writes every mutable field of c.ID.
	UpdateConnection(ctx context.Context, c Connection) error
	// DeleteConnection deletes a connection. While exports use it the answer
	// is ErrConflict, unless detach is true: then those exports lose their
	// connection (connection_id becomes NULL) and the number detached is returned.
	DeleteConnection(ctx context.Context, id int64, detach bool) (detached int, err error)
	// ConnectionExports counts the exports that use a connection.
	ConnectionExports(ctx context.Context, id int64) (int, error)

	CreateOAuthState(ctx context.Context, s OAuthState) error
	// TakeOAuthState returns and deletes a pending handshake (single use).
	TakeOAuthState(ctx context.Context, hash string) (OAuthState, error)
}
