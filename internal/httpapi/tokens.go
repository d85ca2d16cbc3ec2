package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/store"
)

// tokenJSON is an API token as the API lists it: never the secret, only its
// first characters.
type tokenJSON struct {
	ID         int64      `json:"id"`
	UserID     int64      `json:"user_id"`
	User       string     `json:"user"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

func toTokenJSON(t store.Token) tokenJSON {
	return tokenJSON{ID: t.ID, UserID: t.UserID, User: t.UserEmail, Name: t.Name, Prefix: t.Prefix,
		CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

type createTokenRequest struct {
	Name   string `json:"name"`
	UserID int64  `json:"user_id,omitempty"` // admins only; default: the caller
}

// createToken makes an API token and shows its secret this once.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	a, err := s.authService()
	if err != nil {
		return err
	}
	var in createTokenRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	p := principal(r)
	if in.UserID == 0 {
		in.UserID = p.UserID
	}
	secret, t, err := a.CreateToken(r.Context(), p, in.UserID, in.Name)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, struct {
		tokenJSON
		Token string `json:"token"`
	}{toTokenJSON(t), secret})
}

// listTokens lists the caller's tokens; admins may ask for ?user_id=N or ?all=true.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	a, err := s.authService()
	if err != nil {
		return err
	}
	p := principal(r)
	userID := p.UserID
	q := r.URL.Query()
	switch {
	case q.Get("all") == "true":
		userID = 0
	case q.Get("user_id") != "":
		n, err := strconv.ParseInt(q.Get("user_id"), 10, 64)
		if err != nil || n <= 0 {
			return fielderr.New("user_id", "must be a positive whole number")
		}
		userID = n
	}
	ts, err := a.ListTokens(r.Context(), p, userID)
	if err != nil {
		return err
	}
	out := make([]tokenJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, toTokenJSON(t))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

// revokeToken revokes a token: one's own, or anyone's for admins.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	a, err := s.authService()
	if err != nil {
		return err
	}
	id, err := pathID(r, "token")
	if err != nil {
		return err
	}
	if err := a.RevokeToken(r.Context(), principal(r), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
