package httpapi

import (
	"net/http"

	"github.com/segsync/segsync/internal/source"
	"github.com/segsync/segsync/internal/source/connector"
	"github.com/segsync/segsync/internal/store"
)

func (s *Server) sources() (*source.Service, error) {
	if s.deps.Sources == nil {
		return nil, problemf(http.StatusServiceUnavailable, "data sources are not configured on this server")
	}
	return s.deps.Sources, nil
}

func (s *Server) listSources(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	vs, err := svc.List(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"sources": vs})
}

func (s *Server) createSource(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	var in source.Input
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	v, err := svc.Create(r.Context(), principal(r).Actor(), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) getSource(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	id, err := pathID(r, "source")
	if err != nil {
		return err
	}
	v, err := svc.Get(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

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
	v, err := svc.Update(r.Context(), principal(r).Actor(), id, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) deleteSource(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	id, err := pathID(r, "source")
	if err != nil {
		return err
	}
	n, err := svc.Delete(r.Context(), principal(r).Actor(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"deleted": true, "profiles_deleted": n})
}

// testSource answers POST /api/v1/sources/{id}/test: with an empty body the
// stored source is read; with a body, that edited definition (empty secrets
// taken from the stored ones).
func (s *Server) testSource(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	id, err := pathID(r, "source")
	if err != nil {
		return err
	}
	var smp connector.Sample
	if r.ContentLength > 0 {
		var in source.Input
		if err := decodeJSON(w, r, &in); err != nil {
			return err
		}
		smp, err = svc.TestInput(r.Context(), id, in)
	} else {
		smp, err = svc.Test(r.Context(), id)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, smp)
}

// testNewSource answers POST /api/v1/sources/test: an unsaved definition.
func (s *Server) testNewSource(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	var in source.Input
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	smp, err := svc.TestInput(r.Context(), 0, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, smp)
}

func (s *Server) startPull(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	id, err := pathID(r, "source")
	if err != nil {
		return err
	}
	var in struct {
		AllowShrink bool `json:"allow_shrink"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &in); err != nil {
			return err
		}
	}
	p, err := svc.Pull(r.Context(), principal(r).Actor(), id, in.AllowShrink)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, p)
}

func (s *Server) listPulls(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	id, err := pathID(r, "source")
	if err != nil {
		return err
	}
	ps, err := svc.ListPulls(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"pulls": ps})
}

func (s *Server) getPull(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	id, err := pathID(r, "pull")
	if err != nil {
		return err
	}
	p, err := svc.GetPull(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (s *Server) cancelPull(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	id, err := pathID(r, "pull")
	if err != nil {
		return err
	}
	p, err := svc.CancelPull(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, p)
}

// refresh answers POST /api/v1/refresh: a system refresh now (SPEC 11).
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	f, err := svc.StartRefresh(r.Context(), principal(r).Actor(), store.TriggerManual)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, f)
}

func (s *Server) getRefresh(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.sources()
	if err != nil {
		return err
	}
	id, err := pathID(r, "refresh")
	if err != nil {
		return err
	}
	f, err := svc.GetRefresh(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, f)
}
