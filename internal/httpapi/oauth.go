package httpapi

import (
	"net/http"
	"strconv"

	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/fielderr"
)

// queryBool reads an optional boolean query parameter.
func queryBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fielderr.New(name, "must be true or false")
	}
	return b, nil
}

// oauthStart sends an admin's browser to Mailchimp's authorize page:
// ?display_name=…&allow_contributors=…&privacy_consent=true.
func (s *Server) oauthStart(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.connections()
	if err != nil {
		return err
	}
	in := connection.StartInput{DisplayName: r.URL.Query().Get("display_name")}
	if in.AllowContributors, err = queryBool(r, "allow_contributors"); err != nil {
		return err
	}
	if in.PrivacyConsent, err = queryBool(r, "privacy_consent"); err != nil {
		return err
	}
	u, err := cs.StartOAuth(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u, http.StatusSeeOther)
	return nil
}

// oauthCallback is where Mailchimp sends the browser back with ?code&state
// (or ?error); it saves the connection and answers with it.
func (s *Server) oauthCallback(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.connections()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	v, err := cs.FinishOAuth(r.Context(), principal(r), q.Get("state"), q.Get("code"), q.Get("error"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", "/api/v1/connections/"+strconv.FormatInt(v.ID, 10))
	return writeJSON(w, http.StatusCreated, v)
}
