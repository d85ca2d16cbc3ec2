package httpapi

// Authentication and authorisation of every route: a bearer API token or a
// UI session cookie identifies the caller; the route table's Access is the
// least role the route needs (roles ordered by the auth package's policy);
// state-changing requests made with a session cookie must pass Go's
// cross-origin protection and carry the session's CSRF token. Object-level
// checks (may this contributor use that connection?) happen in the domain
// services, which take the principal.

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/auth"
)

// SessionCookie is the name of the UI session cookie.
const SessionCookie = "segsync_session"

// CSRFHeader carries the session's CSRF token on state-changing requests
// made with the session cookie (forms may send a csrf_token field instead).
const CSRFHeader = "X-CSRF-Token"

// Principal is who makes a request.
type Principal = auth.Principal

// principal is the authenticated caller of r; the zero Principal for
// anonymous requests to public routes.
func principal(r *http.Request) Principal {
	p, _ := auth.FromContext(r.Context())
	return p
}

var crossOrigin = http.NewCrossOriginProtection()

// authorize wraps a route's handler with its access check.
func (s *Server) authorize(rt Route, next http.Handler) http.Handler {
	need := auth.Role(rt.Access)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.deps.Auth == nil {
			s.authorizeUnconfigured(rt, next, w, r)
			return
		}
		p, sess, err := s.authenticate(r)
		if err != nil {
			if rt.Access == Public && errors.Is(err, auth.ErrUnauthenticated) {
				next.ServeHTTP(w, r) // a stale cookie does not block public routes
				return
			}
			s.writeAuthError(w, r, err)
			return
		}
		if rt.Access == Public {
			if p.Authenticated() {
				r = r.WithContext(auth.WithPrincipal(r.Context(), p))
			}
			next.ServeHTTP(w, r)
			return
		}
		if !p.Authenticated() {
			s.writeAuthError(w, r, fmt.Errorf("%w: send Authorization: Bearer <token> or sign in", auth.ErrUnauthenticated))
			return
		}
		if sess != nil && !safeMethod(r.Method) {
			if err := checkCSRF(r, sess.CSRFToken); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if !p.Role.AtLeast(need) {
			s.writeError(w, r, fmt.Errorf("%w: %s needs the %s role; you are %s", auth.ErrForbidden, rt.Pattern, need, p.Role))
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// authorizeUnconfigured serves a server built without an auth service
// (tests of other areas): every request is an admin, and only on loopback.
func (s *Server) authorizeUnconfigured(rt Route, next http.Handler, w http.ResponseWriter, r *http.Request) {
	if rt.Access == Public {
		next.ServeHTTP(w, r)
		return
	}
	if !s.deps.Loopback {
		s.writeError(w, r, fmt.Errorf("%w: this server has no authentication configured and admits requests only on loopback", auth.ErrUnauthenticated))
		return
	}
	p := Principal{UserID: -1, Email: "local", Role: auth.Admin}
	next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
}

// authenticate identifies the caller by bearer token or session cookie. No
// credentials at all is the zero Principal and no error; credentials that do
// not check out are ErrUnauthenticated.
func (s *Server) authenticate(r *http.Request) (Principal, *auth.Session, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return Principal{}, nil, fmt.Errorf("%w: the Authorization header must be Bearer <token>", auth.ErrUnauthenticated)
		}
		p, err := s.deps.Auth.AuthenticateToken(r.Context(), strings.TrimSpace(token))
		if err != nil {
			return Principal{}, nil, fmt.Errorf("invalid or revoked API token: %w", err)
		}
		return p, nil, nil
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return Principal{}, nil, nil
	}
	sess, err := s.deps.Auth.AuthenticateSession(r.Context(), c.Value)
	if err != nil {
		return Principal{}, nil, fmt.Errorf("the session has ended; sign in again: %w", err)
	}
	return sess.Principal, &sess, nil
}

func (s *Server) writeAuthError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, auth.ErrUnauthenticated) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="segsync"`)
		if _, cerr := r.Cookie(SessionCookie); cerr == nil {
			http.SetCookie(w, expiredSessionCookie(r))
		}
	}
	s.writeError(w, r, err)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// checkCSRF guards a cookie-authenticated state-changing request: it must
// not come from another origin, and must carry the session's CSRF token.
func checkCSRF(r *http.Request, want string) error {
	if err := crossOrigin.Check(r); err != nil {
		return fmt.Errorf("%w: cross-origin request refused", auth.ErrForbidden)
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		if mt := r.Header.Get("Content-Type"); strings.HasPrefix(mt, "application/x-www-form-urlencoded") {
			got = r.PostFormValue("csrf_token")
		}
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return fmt.Errorf("%w: missing or wrong CSRF token (send the %s header from GET /api/v1/me)", auth.ErrForbidden, CSRFHeader)
	}
	return nil
}

// isHTTPS tells whether the client reached us over TLS (directly or through
// a proxy that says so); session cookies are Secure then.
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func sessionCookie(r *http.Request, sess auth.Session) *http.Cookie {
	return &http.Cookie{
		Name: SessionCookie, Value: sess.ID, Path: "/", Expires: sess.ExpiresAt,
		Secure: isHTTPS(r), HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
}

func expiredSessionCookie(r *http.Request) *http.Cookie {
	return &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(0, 0),
		Secure: isHTTPS(r), HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

// clientAddr is the peer address used for sign-in throttling.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// me is the answer of sign-in and GET /api/v1/me.
type me struct {
	ID        int64      `json:"id"`
	Email     string     `json:"email"`
	Role      auth.Role  `json:"role"`
	CSRFToken string     `json:"csrf_token,omitempty"`
	ExpiresAt *time.Time `json:"session_expires_at,omitempty"`
	TokenID   int64      `json:"token_id,omitempty"`
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// login signs in with email and password and sets the session cookie. A
// session the browser already had is ended and replaced (rotation).
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Auth == nil {
		return problemf(http.StatusServiceUnavailable, "sign-in is not configured")
	}
	if err := crossOrigin.Check(r); err != nil {
		return fmt.Errorf("%w: cross-origin sign-in refused", auth.ErrForbidden)
	}
	var in loginRequest
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		in.Email, in.Password = r.PostFormValue("email"), r.PostFormValue("password")
	} else if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	var previous string
	if c, err := r.Cookie(SessionCookie); err == nil {
		previous = c.Value
	}
	sess, err := s.deps.Auth.Login(r.Context(), in.Email, in.Password, clientAddr(r), previous)
	var te *auth.ThrottledError
	switch {
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(int(te.Wait.Seconds())+1))
		return err
	case errors.Is(err, auth.ErrUnauthenticated):
		http.SetCookie(w, expiredSessionCookie(r))
		return fmt.Errorf("%w: wrong email or password", auth.ErrUnauthenticated)
	case err != nil:
		return err
	}
	http.SetCookie(w, sessionCookie(r, sess))
	w.Header().Set("Cache-Control", "no-store")
	exp := sess.ExpiresAt
	return writeJSON(w, http.StatusOK, me{ID: sess.Principal.UserID, Email: sess.Principal.Email, Role: sess.Principal.Role,
		CSRFToken: sess.CSRFToken, ExpiresAt: &exp})
}

// logout ends the session and clears the cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	if c, err := r.Cookie(SessionCookie); err == nil && s.deps.Auth != nil {
		if err := s.deps.Auth.Logout(r.Context(), c.Value); err != nil {
			return err
		}
	}
	http.SetCookie(w, expiredSessionCookie(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// whoami describes the caller, with the CSRF token of a session.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, me{ID: p.UserID, Email: p.Email, Role: p.Role, CSRFToken: p.SessionCSRF, TokenID: p.TokenID})
}

// withPrincipal is for tests and internal callers that need a context
// carrying p.
func withPrincipal(ctx context.Context, p Principal) context.Context {
	return auth.WithPrincipal(ctx, p)
}
