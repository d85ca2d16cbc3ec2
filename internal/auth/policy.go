// Package auth knows who is asking and what they may do: users with the roles
// admin, contributor and viewer, passwords under argon2id, API tokens shown
// once and kept hashed, UI sessions, login throttling, and the one permission
// policy every route and page is checked against.
package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/segsync/segsync/internal/audit"
)

// Errors of authentication and authorisation, mapped to 401, 403 and 429.
var (
	ErrUnauthenticated = errors.New("authentication required")
	ErrForbidden       = errors.New("forbidden")
	ErrThrottled       = errors.New("too many failed attempts")
)

// Role is what a user may do; each role includes the ones below it.
type Role string

const (
	Viewer      Role = "viewer"
	Contributor Role = "contributor"
	Admin       Role = "admin"
)

// Roles lists every role from least to most powerful.
var Roles = []Role{Viewer, Contributor, Admin}

func (r Role) rank() int {
	switch r {
	case Viewer:
		return 1
	case Contributor:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r.rank() > 0 }

// AtLeast reports whether r includes min. An unknown role includes nothing.
func (r Role) AtLeast(min Role) bool { return r.Valid() && r.rank() >= min.rank() }

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("role %q is not admin, contributor or viewer", s)
	}
	return r, nil
}

// Principal is the authenticated caller of one request.
type Principal struct {
	UserID  int64
	Email   string
	Role    Role
	TokenID int64 // set when authenticated by API token
	// Session is set when authenticated by UI session cookie; its CSRF
	// token guards state-changing requests.
	SessionCSRF string
}

// Authenticated reports whether p is a signed-in user.
func (p Principal) Authenticated() bool { return p.UserID != 0 && p.Role.Valid() }

// Actor is p as the audit log names it.
func (p Principal) Actor() audit.Actor { return audit.Actor{ID: p.UserID, Email: p.Email} }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of the request, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok && p.Authenticated()
}

// Action is something a principal may be allowed to do. The policy below is
// the only place that decides which role may do it.
type Action string

const (
	// ReadData: profiles, segments, exports, runs and their reports, and
	// connections as far as the role may see them.
	ReadData Action = "data.read"
	// WriteData: import and delete profiles, change segments and exports.
	WriteData Action = "data.write"
	// RunExports: start, cancel and refresh runs.
	RunExports Action = "runs.start"
	// UseConnection: pick a connection for an export (also subject to the
	// connection's own allow_contributors; see CanUseConnection).
	UseConnection Action = "connections.use"
	// ManageConnections: create, edit, test and delete connections.
	ManageConnections Action = "connections.manage"
	// ManageUsers: users and everyone's tokens.
	ManageUsers Action = "users.manage"
	// ReadAudit: the audit log.
	ReadAudit Action = "audit.read"
	// Self: read oneself, manage one's own tokens, sign out.
	Self Action = "self"
)

// policy is the minimum role of each action.
var policy = map[Action]Role{
	Self:              Viewer,
	ReadData:          Viewer,
	WriteData:         Contributor,
	RunExports:        Contributor,
	UseConnection:     Contributor,
	ManageConnections: Admin,
	ManageUsers:       Admin,
	ReadAudit:         Admin,
}

// MinRole is the least role allowed to do a; unknown actions need more than admin.
func MinRole(a Action) (Role, bool) {
	r, ok := policy[a]
	return r, ok
}

// Can reports whether p may do a.
func Can(p Principal, a Action) bool {
	min, ok := policy[a]
	return ok && p.Authenticated() && p.Role.AtLeast(min)
}

// Require returns nil when p may do a, ErrUnauthenticated when p is nobody,
// and ErrForbidden otherwise.
func Require(p Principal, a Action) error {
	if !p.Authenticated() {
		return ErrUnauthenticated
	}
	if !Can(p, a) {
		return fmt.Errorf("%s may not %s: %w", p.Role, a, ErrForbidden)
	}
	return nil
}

// CanUseConnection reports whether p may use (export through) a connection
// that does or does not allow contributors. Admins may use every connection.
func CanUseConnection(p Principal, allowContributors bool) bool {
	if !Can(p, UseConnection) {
		return false
	}
	return p.Role.AtLeast(Admin) || allowContributors
}

// CanSeeConnectionDetails reports whether p may see a connection beyond its
// display name, type and account name (export user, consent, base URL, dc).
func CanSeeConnectionDetails(p Principal) bool { return Can(p, ManageConnections) }
