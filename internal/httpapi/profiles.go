package httpapi

import (
	"errors"
	"net/http"

	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/store"
)

// listProfiles answers GET /api/v1/profiles?limit&cursor.
func (s *Server) listProfiles(w http.ResponseWriter, r *http.Request) error {
	limit, cursor, err := pageParams(r, 100, 1000)
	if err != nil {
		return err
	}
	page, err := s.deps.Store.ListProfiles(r.Context(), limit, cursor)
	if err != nil {
		return cursorError(err, cursor)
	}
	if page.Profiles == nil {
		page.Profiles = []store.Profile{}
	}
	return writeJSON(w, http.StatusOK, page)
}

// getProfile answers GET /api/v1/profiles/{customer_id}.
func (s *Server) getProfile(w http.ResponseWriter, r *http.Request) error {
	p, err := s.deps.Store.GetProfile(r.Context(), r.PathValue("customer_id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// deleteProfile answers DELETE /api/v1/profiles/{customer_id}.
func (s *Server) deleteProfile(w http.ResponseWriter, r *http.Request) error {
	if err := s.deps.Store.DeleteProfile(r.Context(), r.PathValue("customer_id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// profileAttributes answers GET /api/v1/profiles/attributes.
func (s *Server) profileAttributes(w http.ResponseWriter, r *http.Request) error {
	attrs, err := s.deps.Store.ProfileAttributes(r.Context())
	if err != nil {
		return err
	}
	if attrs == nil {
		attrs = []store.AttributeInfo{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"attributes": attrs})
}

// cursorError names the cursor parameter when the store refused it.
func cursorError(err error, cursor string) error {
	if cursor != "" && errors.Is(err, store.ErrInvalid) {
		return fielderr.New("cursor", "is not a cursor of this listing")
	}
	return err
}
