package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/store"
)

// userJSON is a user as the API shows it; the password hash never leaves.
type userJSON struct {
	ID          int64     `json:"id"`
	Email       string    `json:"email"`
	Role        string    `json:"role"`
	HasPassword bool      `json:"has_password"`
	Disabled    bool      `json:"disabled"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func toUserJSON(u store.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Role: u.Role, HasPassword: u.PasswordHash != "", Disabled: u.Disabled,
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

func (s *Server) authService() (*auth.Service, error) {
	if s.deps.Auth == nil {
		return nil, problemf(http.StatusServiceUnavailable, "user management is not configured on this server")
	}
	return s.deps.Auth, nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	a, err := s.authService()
	if err != nil {
		return err
	}
	us, err := a.ListUsers(r.Context(), principal(r))
	if err != nil {
		return err
	}
	out := make([]userJSON, 0, len(us))
	for _, u := range us {
		out = append(out, toUserJSON(u))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	a, err := s.authService()
	if err != nil {
		return err
	}
	var in auth.NewUser
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	u, err := a.CreateUser(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/users/"+strconv.FormatInt(u.ID, 10))
	return writeJSON(w, http.StatusCreated, toUserJSON(u))
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	a, err := s.authService()
	if err != nil {
		return err
	}
	id, err := pathID(r, "user")
	if err != nil {
		return err
	}
	u, err := a.GetUser(r.Context(), principal(r), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toUserJSON(u))
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	a, err := s.authService()
	if err != nil {
		return err
	}
	id, err := pathID(r, "user")
	if err != nil {
		return err
	}
	var in auth.UserPatch
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Role == nil && in.Disabled == nil && in.Password == nil {
		return fielderr.New("body", "give at least one of role, disabled, password")
	}
	u, err := a.UpdateUser(r.Context(), principal(r), id, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toUserJSON(u))
}
