package httpapi

import (
	"fmt"
	"net/http"

	"github.com/segsync/segsync/internal/hooks"
	"github.com/segsync/segsync/internal/store"
)

// hookTarget resolves the URL's secret; a wrong one is a plain 404.
func (s *Server) hookTarget(r *http.Request) (string, error) {
	if s.deps.Hooks == nil {
		return "", fmt.Errorf("webhooks: %w", store.ErrNotFound)
	}
	return s.deps.Hooks.Check(r.Context(), r.PathValue("secret"))
}

// hookValidate answers GET /hooks/mailchimp/{secret}: Mailchimp checks the
// URL with a GET before it saves a webhook.
func (s *Server) hookValidate(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.hookTarget(r); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// hookDeliver answers POST /hooks/mailchimp/{secret}: one form-encoded
// event (package hooks).
func (s *Server) hookDeliver(w http.ResponseWriter, r *http.Request) error {
	aud, err := s.hookTarget(r)
	if err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, hooks.MaxBody)
	if err := r.ParseForm(); err != nil {
		return problemf(http.StatusBadRequest, "the body is not a form of at most %d bytes", hooks.MaxBody)
	}
	if err := s.deps.Hooks.Deliver(r.Context(), aud, r.PostForm); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// exportWebhook answers GET /api/v1/exports/{id}/webhook (admins): the URL
// to register with Mailchimp for the export's audience (made on first ask).
// With --public-url set, segsync registers it itself (hooks.Registrar).
func (s *Server) exportWebhook(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "export")
	if err != nil {
		return err
	}
	if s.deps.Hooks == nil {
		return problemf(http.StatusServiceUnavailable, "webhooks are not available in this process")
	}
	if _, _, err := s.deps.Hooks.Store.WebhookTarget(r.Context(), id); err != nil {
		return err
	}
	u, err := s.deps.Hooks.URLFor(r.Context(), s.deps.PublicURL, id)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, map[string]any{"url": u, "events": hooks.Names(hooks.Events), "sources": hooks.Names(hooks.Sources)})
}
