package httpapi

import (
	"errors"
	"net/http"

	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/source"
	"github.com/segsync/segsync/internal/store"
)

// Data sources, pulls and the system refresh (SPEC section 11).

func (s *Server) sources() (*source.Service, error) {
	if s.deps.Sources == nil {
		return nil, problemf(http.StatusServiceUnavailable, "data sources are not configured on this server")
	}
	return s.deps.Sources, nil
}

func (s *Server) puller() (*source.Puller, error) {
	if s.deps.Pulls == nil {
		return nil, problemf(http.StatusServiceUnavailable, "pulls are not configured on this server")
	}
	return s.deps.Pulls, nil
}

// listSources answers GET /api/v1/sources.
func (s *Server) listSources(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	list, err := svc.List(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"sources": list})
}

// createSource answers POST /api/v1/sources.
func (s *Server) createSource(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	var in source.Input
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	src, err := svc.Create(r.Context(), principal(r).Actor(), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, src)
}

// getSource answers GET /api/v1/sources/{id}.
func (s *Server) getSource(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	id, err := pathID(r, "source")
	if err != nil {
		return err
	}
	src, err := svc.Get(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, src)
}

// updateSource answers PUT /api/v1/sources/{id}; absent secrets are kept.
func (s *Server) updateSource(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	id, err := pathID(r, "source")
	if err != nil {
		return err
	}
	var in source.Input
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	src, err := svc.Update(r.Context(), principal(r).Actor(), id, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, src)
}

// deleteSource answers DELETE /api/v1/sources/{id}.
func (s *Server) deleteSource(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	id, err := pathID(r, "source")
	if err != nil {
		return err
	}
	if err := svc.Delete(r.Context(), principal(r).Actor(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// testError turns a failed connection to a source into 422: the request
// was fine, the source answered with an error (never the DSN).
func testError(err error) error {
	var fields fielderr.List
	if errors.As(err, &fields) || errors.Is(err, store.ErrNotFound) || errors.Is(err, connection.ErrSealed) {
		return err
	}
	return problemf(http.StatusUnprocessableEntity, "testing the source: %v", err)
}

// testSource answers POST /api/v1/sources/{id}/test.
func (s *Server) testSource(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	id, err := pathID(r, "source")
	if err != nil {
		return err
	}
	sample, err := svc.Test(r.Context(), id)
	if err != nil {
		return testError(err)
	}
	return writeJSON(w, http.StatusOK, sample)
}

// testSourceInput answers POST /api/v1/sources/test: an unsaved source.
func (s *Server) testSourceInput(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	var in source.Input
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	sample, err := svc.TestInput(r.Context(), in)
	if err != nil {
		return testError(err)
	}
	return writeJSON(w, http.StatusOK, sample)
}

// startPull answers POST /api/v1/sources/{id}/pulls ({"allow_shrink"?}):
// 202 with the queued pull, or 200 with the one already queued or running.
func (s *Server) startPull(w http.ResponseWriter, r *http.Request) error {
	pl, err := s.puller()
	if err != nil {
		return err
	}
	id, err := pathID(r, "source")
	if err != nil {
		return err
	}
	var body struct {
		AllowShrink bool `json:"allow_shrink"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &body); err != nil {
			return err
		}
	}
	p, created, err := pl.Enqueue(r.Context(), id, store.TriggerManual, body.AllowShrink, principal(r).Email)
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if !created {
		status = http.StatusOK
	}
	return writeJSON(w, status, p)
}

// listPulls answers GET /api/v1/sources/{id}/pulls.
func (s *Server) listPulls(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "source")
	if err != nil {
		return err
	}
	if _, err := s.deps.Store.GetSource(r.Context(), id); err != nil {
		return err
	}
	ps, err := s.deps.Store.ListPulls(r.Context(), id, 100)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"pulls": ps})
}

// getPull answers GET /api/v1/pulls/{id}.
func (s *Server) getPull(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "pull")
	if err != nil {
		return err
	}
	p, err := s.deps.Store.GetPull(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// cancelPull answers POST /api/v1/pulls/{id}/cancel.
func (s *Server) cancelPull(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "pull")
	if err != nil {
		return err
	}
	p, err := s.deps.Store.CancelPull(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// getRefresh answers GET /api/v1/refreshes/{id}.
func (s *Server) getRefresh(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "refresh")
	if err != nil {
		return err
	}
	ref, err := s.deps.Store.GetRefresh(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ref)
}
