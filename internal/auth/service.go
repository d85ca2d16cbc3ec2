package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/store"
)

// TokenPrefix starts every API token, so that leaked tokens are easy to find.
const TokenPrefix = "sst_"

// Options tune a Service; zero values take the defaults.
type Options struct {
	Password    PasswordParams
	SessionIdle time.Duration // a session unused this long ends (default 12h)
	SessionMax  time.Duration // a session ends this long after sign-in regardless (default 7 days)
	// Sign-in throttling: at most ThrottleMax failures per email within
	// ThrottleWindow (default 5 in 15 minutes), and four times as many per
	// client address (several people may share one address).
	ThrottleMax    int
	ThrottleWindow time.Duration
	Now            func() time.Time
}

// Service manages users, tokens and sessions.
type Service struct {
	st      store.UserStore
	audit   audit.Recorder
	log     *slog.Logger
	opt     Options
	byEmail *Throttle
	byAddr  *Throttle
	dummy   string // hash compared against when the email is unknown, to hide that
}

// NewService returns a Service over st.
func NewService(st store.UserStore, rec audit.Recorder, log *slog.Logger, opt Options) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.Password == (PasswordParams{}) {
		opt.Password = DefaultPasswordParams
	}
	if opt.SessionIdle <= 0 {
		opt.SessionIdle = 12 * time.Hour
	}
	if opt.SessionMax <= 0 {
		opt.SessionMax = 7 * 24 * time.Hour
	}
	if opt.ThrottleMax <= 0 {
		opt.ThrottleMax = 5
	}
	if opt.ThrottleWindow <= 0 {
		opt.ThrottleWindow = 15 * time.Minute
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &Service{st: st, audit: rec, log: log, opt: opt,
		byEmail: NewThrottle(opt.ThrottleMax, opt.ThrottleWindow), byAddr: NewThrottle(4*opt.ThrottleMax, opt.ThrottleWindow)}
	s.byEmail.now, s.byAddr.now = opt.Now, opt.Now
	s.dummy, _ = HashPassword("not a password of anyone", opt.Password)
	return s
}

// checkEmail normalises a user's address and checks it (package
// emailaddr: one identity for contacts and users).
func checkEmail(email string) (string, error) {
	e := emailaddr.Normalize(email)
	if !emailaddr.Valid(e) {
		return "", fmt.Errorf("%q is not an email address", email)
	}
	return e, nil
}

func (s *Service) record(ctx context.Context, actor Principal, action, objType string, id any, detail map[string]any) {
	if s.audit != nil {
		_ = s.audit.Record(ctx, actor.Actor(), action, objType, id, detail)
	}
}

// SystemPrincipal acts for the command line and first start: an admin
// without a user row, recorded as "system" in the audit log.
var SystemPrincipal = Principal{UserID: -1, Email: "system", Role: Admin}

func (p Principal) auditActor() Principal {
	if p.UserID < 0 {
		return Principal{}
	}
	return p
}

// NewUser is a user to create.
type NewUser struct {
	Email    string `json:"email"`
	Role     string `json:"role"`
	Password string `json:"password,omitempty"`
}

// CreateUser creates a user. Only admins (and the system) may.
func (s *Service) CreateUser(ctx context.Context, actor Principal, nu NewUser) (store.User, error) {
	if err := Require(actor, ManageUsers); err != nil {
		return store.User{}, err
	}
	var errs fielderr.List
	email, err := checkEmail(nu.Email)
	if err != nil {
		errs.Add("email", err.Error())
	}
	role, err := ParseRole(nu.Role)
	if err != nil {
		errs.Add("role", err.Error())
	}
	if nu.Password != "" {
		if err := CheckPassword(nu.Password); err != nil {
			errs.Add("password", err.Error())
		}
	}
	if err := errs.Err(); err != nil {
		return store.User{}, err
	}
	u := store.User{Email: email, Role: string(role), CreatedAt: s.opt.Now()}
	if nu.Password != "" {
		if u.PasswordHash, err = HashPassword(nu.Password, s.opt.Password); err != nil {
			return store.User{}, err
		}
	}
	if err := s.st.CreateUser(ctx, &u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.User{}, fmt.Errorf("a user with this email already exists: %w", err)
		}
		return store.User{}, err
	}
	s.record(ctx, actor.auditActor(), audit.UserCreate, "user", u.ID, map[string]any{"email": u.Email, "role": u.Role})
	return u, nil
}

// UserPatch changes a user; nil fields stay.
type UserPatch struct {
	Role     *string `json:"role,omitempty"`
	Disabled *bool   `json:"disabled,omitempty"`
	Password *string `json:"password,omitempty"`
	// CurrentPassword must accompany a change of one's own password, so a
	// borrowed session or token cannot take the account over.
	CurrentPassword string `json:"current_password,omitempty"`
}

// UpdateUser changes a user's role, password or disabled flag. Admins may
// change anyone; others only their own password. Disabling a user or
// changing their password or role ends their sessions.
func (s *Service) UpdateUser(ctx context.Context, actor Principal, id int64, p UserPatch) (store.User, error) {
	self := actor.Authenticated() && actor.UserID == id
	if !Can(actor, ManageUsers) && !(self && p.Role == nil && p.Disabled == nil) {
		return store.User{}, Require(actor, ManageUsers)
	}
	u, err := s.st.GetUser(ctx, id)
	if err != nil {
		return store.User{}, err
	}
	var errs fielderr.List
	detail := map[string]any{"email": u.Email}
	if p.Role != nil {
		r, err := ParseRole(*p.Role)
		if err != nil {
			errs.Add("role", err.Error())
		} else if self && r != Admin {
			errs.Add("role", "administrators cannot take away their own admin role")
		}
		u.Role = string(r)
		detail["role"] = u.Role
	}
	if p.Disabled != nil {
		if self && *p.Disabled {
			errs.Add("disabled", "you cannot disable yourself")
		}
		u.Disabled = *p.Disabled
		detail["disabled"] = u.Disabled
	}
	if p.Password != nil {
		if self && u.PasswordHash != "" {
			if ok, _ := VerifyPassword(p.CurrentPassword, u.PasswordHash); !ok {
				errs.Add("current_password", "does not match your current password")
			}
		}
		if err := CheckPassword(*p.Password); err != nil {
			errs.Add("password", err.Error())
		} else if u.PasswordHash, err = HashPassword(*p.Password, s.opt.Password); err != nil {
			return store.User{}, err
		}
		detail["password_changed"] = true
	}
	if err := errs.Err(); err != nil {
		return store.User{}, err
	}
	if err := s.st.UpdateUser(ctx, u); err != nil {
		return store.User{}, err
	}
	if err := s.st.DeleteUserSessions(ctx, u.ID); err != nil {
		return store.User{}, err
	}
	s.record(ctx, actor.auditActor(), audit.UserUpdate, "user", u.ID, detail)
	return u, nil
}

// ListUsers lists every user (admins only).
func (s *Service) ListUsers(ctx context.Context, actor Principal) ([]store.User, error) {
	if err := Require(actor, ManageUsers); err != nil {
		return nil, err
	}
	return s.st.ListUsers(ctx)
}

// GetUser reads a user: admins anyone, others themselves.
func (s *Service) GetUser(ctx context.Context, actor Principal, id int64) (store.User, error) {
	if actor.UserID != id || !actor.Authenticated() {
		if err := Require(actor, ManageUsers); err != nil {
			return store.User{}, err
		}
	}
	return s.st.GetUser(ctx, id)
}

// UserByEmail finds a user by email (admins and the system).
func (s *Service) UserByEmail(ctx context.Context, actor Principal, email string) (store.User, error) {
	if err := Require(actor, ManageUsers); err != nil {
		return store.User{}, err
	}
	e, err := checkEmail(email)
	if err != nil {
		return store.User{}, fielderr.New("email", err.Error())
	}
	return s.st.GetUserByEmail(ctx, e)
}

// HasUsers reports whether any user exists.
func (s *Service) HasUsers(ctx context.Context) (bool, error) {
	n, err := s.st.CountUsers(ctx)
	return n > 0, err
}

// EnsureFirstAdmin creates an admin when no user exists yet. It reports
// whether it created one; with users present it does nothing.
func (s *Service) EnsureFirstAdmin(ctx context.Context, email, password string) (bool, error) {
	has, err := s.HasUsers(ctx)
	if err != nil || has {
		return false, err
	}
	if _, err := s.CreateUser(ctx, SystemPrincipal, NewUser{Email: email, Role: string(Admin), Password: password}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return false, nil // another process was first
		}
		return false, fmt.Errorf("creating the first admin: %w", err)
	}
	return true, nil
}

// randomSecret returns n random bytes in URL-safe base64.
func randomSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashSecret is how tokens and session ids are kept: hex SHA-256. Their
// 256 bits of entropy make a slow hash unnecessary.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateToken creates an API token for a user and returns its secret, which
// is shown this once and never again. Admins may create tokens for anyone,
// others only for themselves.
func (s *Service) CreateToken(ctx context.Context, actor Principal, userID int64, name string) (string, store.Token, error) {
	if actor.UserID != userID || !actor.Authenticated() {
		if err := Require(actor, ManageUsers); err != nil {
			return "", store.Token{}, err
		}
	} else if err := Require(actor, Self); err != nil {
		return "", store.Token{}, err
	}
	name = strings.TrimSpace(name)
	if len(name) > 100 {
		return "", store.Token{}, fielderr.New("name", "at most 100 characters")
	}
	u, err := s.st.GetUser(ctx, userID)
	if err != nil {
		return "", store.Token{}, err
	}
	if u.Disabled {
		return "", store.Token{}, fielderr.New("user", "the user is disabled")
	}
	rnd, err := randomSecret(32)
	if err != nil {
		return "", store.Token{}, err
	}
	secret := TokenPrefix + rnd
	t := store.Token{UserID: u.ID, UserEmail: u.Email, Name: name, Hash: HashSecret(secret),
		Prefix: secret[:len(TokenPrefix)+4], CreatedAt: s.opt.Now()}
	if err := s.st.CreateToken(ctx, &t); err != nil {
		return "", store.Token{}, err
	}
	s.record(ctx, actor.auditActor(), audit.TokenCreate, "token", t.ID, map[string]any{"user": u.Email, "name": name})
	return secret, t, nil
}

// ListTokens lists a user's tokens (userID 0: everyone's, admins only).
func (s *Service) ListTokens(ctx context.Context, actor Principal, userID int64) ([]store.Token, error) {
	if userID != actor.UserID || !actor.Authenticated() {
		if err := Require(actor, ManageUsers); err != nil {
			return nil, err
		}
	}
	return s.st.ListTokens(ctx, userID)
}

// RevokeToken revokes a token: admins any, others their own.
func (s *Service) RevokeToken(ctx context.Context, actor Principal, id int64) error {
	if err := Require(actor, Self); err != nil {
		return err
	}
	t, err := s.st.GetToken(ctx, id)
	if err != nil {
		return err
	}
	if t.UserID != actor.UserID && !Can(actor, ManageUsers) {
		return fmt.Errorf("token %d: %w", id, store.ErrNotFound) // do not reveal others' tokens
	}
	if err := s.st.RevokeToken(ctx, id, s.opt.Now()); err != nil {
		return err
	}
	s.record(ctx, actor.auditActor(), audit.TokenRevoke, "token", id, map[string]any{"user": t.UserEmail, "name": t.Name})
	return nil
}

// AuthenticateToken resolves an API token to its principal. Revoked tokens
// and disabled users are refused with ErrUnauthenticated.
func (s *Service) AuthenticateToken(ctx context.Context, secret string) (Principal, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 200 {
		return Principal{}, ErrUnauthenticated
	}
	t, u, err := s.st.TokenByHash(ctx, HashSecret(secret))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("checking token: %w", err)
	}
	if t.RevokedAt != nil || u.Disabled {
		return Principal{}, ErrUnauthenticated
	}
	now := s.opt.Now()
	// last_used_at has minute precision, so busy clients do not turn every
	// request into a write.
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= time.Minute {
		if err := s.st.TouchToken(ctx, t.ID, now); err != nil {
			s.log.Warn("recording token use", "token_id", t.ID, "err", err)
		}
	}
	return Principal{UserID: u.ID, Email: u.Email, Role: Role(u.Role), TokenID: t.ID}, nil
}
