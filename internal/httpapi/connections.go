package httpapi

import (
	"net/http"
	"strconv"

	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/fielderr"
)

func (s *Server) connections() (*connection.Service, error) {
	if s.deps.Connections == nil {
		return nil, problemf(http.StatusServiceUnavailable, "connections are not configured on this server")
	}
	return s.deps.Connections, nil
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.connections()
	if err != nil {
		return err
	}
	vs, err := cs.List(r.Context(), principal(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"connections": vs})
}

func (s *Server) createConnection(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.connections()
	if err != nil {
		return err
	}
	var in connection.CreateInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	v, err := cs.Create(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/connections/"+strconv.FormatInt(v.ID, 10))
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.connections()
	if err != nil {
		return err
	}
	id, err := pathID(r, "connection")
	if err != nil {
		return err
	}
	v, err := cs.Get(r.Context(), principal(r), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) updateConnection(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.connections()
	if err != nil {
		return err
	}
	id, err := pathID(r, "connection")
	if err != nil {
		return err
	}
	var in connection.Patch
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	v, err := cs.Update(r.Context(), principal(r), id, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// deleteConnection removes a connection; while exports use it the answer is
// 409 unless ?detach=true.
func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.connections()
	if err != nil {
		return err
	}
	id, err := pathID(r, "connection")
	if err != nil {
		return err
	}
	detach := false
	if v := r.URL.Query().Get("detach"); v != "" {
		if detach, err = strconv.ParseBool(v); err != nil {
			return fielderr.New("detach", "must be true or false")
		}
	}
	n, err := cs.Delete(r.Context(), principal(r), id, detach)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"deleted": id, "detached_exports": n})
}

func (s *Server) testConnection(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.connections()
	if err != nil {
		return err
	}
	id, err := pathID(r, "connection")
	if err != nil {
		return err
	}
	res, err := cs.Test(r.Context(), principal(r), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) connectionAudiences(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.connections()
	if err != nil {
		return err
	}
	id, err := pathID(r, "connection")
	if err != nil {
		return err
	}
	auds, err := cs.Audiences(r.Context(), principal(r), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"audiences": auds})
}
