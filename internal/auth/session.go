package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/store"
)

// Session is a signed-in UI session as the HTTP layer needs it. ID is the
// cookie value; it is only ever known to the browser and this struct.
type Session struct {
	ID        string
	CSRFToken string
	ExpiresAt time.Time
	Principal Principal
}

// Login checks email and password and starts a new session. Any session the
// browser presented (previousID) is ended first, so a session id planted
// before sign-in is never promoted (session fixation). remoteAddr feeds the
// throttle. Wrong credentials are ErrUnauthenticated, too many failures
// ErrThrottled (wrapped with the wait).
func (s *Service) Login(ctx context.Context, email, password, remoteAddr, previousID string) (Session, error) {
	if previousID != "" {
		if err := s.st.DeleteSession(ctx, HashSecret(previousID)); err != nil {
			return Session{}, err
		}
	}
	// Look the address up as given (normalised), so that an account
	// created before the address rules were what they are still signs in;
	// the throttle keeps one key for all invalid addresses.
	e, key := emailaddr.Normalize(email), "invalid"
	if emailaddr.Valid(e) {
		key = e
	}
	okEmail, waitEmail := s.byEmail.Allow(key)
	okAddr, waitAddr := s.byAddr.Allow(remoteAddr)
	if !okEmail || !okAddr {
		return Session{}, &ThrottledError{Wait: max(waitEmail, waitAddr)}
	}
	u, err := s.st.GetUserByEmail(ctx, e)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Session{}, fmt.Errorf("signing in: %w", err)
	}
	hash := u.PasswordHash
	if hash == "" {
		hash = s.dummy // same work whether or not the user exists
	}
	ok, verr := VerifyPassword(password, hash)
	if err != nil || verr != nil || !ok || u.Disabled || u.PasswordHash == "" || len(password) > MaxPasswordLen {
		s.byEmail.Fail(key)
		s.byAddr.Fail(remoteAddr)
		s.log.Info("sign-in failed", "email", key, "remote_addr", remoteAddr)
		return Session{}, ErrUnauthenticated
	}
	s.byEmail.Reset(key)
	id, err := randomSecret(32)
	if err != nil {
		return Session{}, err
	}
	csrf, err := randomSecret(32)
	if err != nil {
		return Session{}, err
	}
	now := s.opt.Now()
	st := store.Session{IDHash: HashSecret(id), UserID: u.ID, CSRFToken: csrf, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: s.expiry(now, now)}
	if err := s.st.CreateSession(ctx, st); err != nil {
		return Session{}, err
	}
	p := Principal{UserID: u.ID, Email: u.Email, Role: Role(u.Role), SessionCSRF: csrf}
	s.record(ctx, p, audit.SessionLogin, "user", u.ID, map[string]any{"remote_addr": remoteAddr})
	return Session{ID: id, CSRFToken: csrf, ExpiresAt: st.ExpiresAt, Principal: p}, nil
}

func (s *Service) expiry(created, now time.Time) time.Time {
	idle, max := now.Add(s.opt.SessionIdle), created.Add(s.opt.SessionMax)
	if idle.Before(max) {
		return idle
	}
	return max
}

// ThrottledError says how long to wait before trying to sign in again.
type ThrottledError struct{ Wait time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed sign-in attempts; try again in %s", e.Wait.Round(time.Second))
}

func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// AuthenticateSession resolves a session cookie to a session, sliding its
// idle expiry. Unknown, expired and disabled-user sessions are ErrUnauthenticated.
func (s *Service) AuthenticateSession(ctx context.Context, id string) (Session, error) {
	if id == "" || len(id) > 100 {
		return Session{}, ErrUnauthenticated
	}
	hash := HashSecret(id)
	st, u, err := s.st.SessionByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, ErrUnauthenticated
	}
	if err != nil {
		return Session{}, fmt.Errorf("checking session: %w", err)
	}
	now := s.opt.Now()
	if !now.Before(st.ExpiresAt) || u.Disabled {
		_ = s.st.DeleteSession(ctx, hash)
		return Session{}, ErrUnauthenticated
	}
	if now.Sub(st.LastSeenAt) >= time.Minute {
		st.ExpiresAt = s.expiry(st.CreatedAt, now)
		if err := s.st.TouchSession(ctx, hash, now, st.ExpiresAt); err != nil {
			s.log.Warn("extending session", "err", err)
		}
	}
	p := Principal{UserID: u.ID, Email: u.Email, Role: Role(u.Role), SessionCSRF: st.CSRFToken}
	return Session{ID: id, CSRFToken: st.CSRFToken, ExpiresAt: st.ExpiresAt, Principal: p}, nil
}

// Logout ends a session; an unknown id is not an error.
func (s *Service) Logout(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	return s.st.DeleteSession(ctx, HashSecret(id))
}

// PruneSessions deletes expired sessions; serve calls it now and then.
func (s *Service) PruneSessions(ctx context.Context) (int64, error) {
	return s.st.DeleteExpiredSessions(ctx, s.opt.Now())
}
