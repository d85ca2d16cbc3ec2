package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	segsvc "github.com/segsync/segsync/internal/segment/service"
	"github.com/segsync/segsync/internal/store"
)

// Segments are the segment service's (internal/segment/service: validation,
// counting, audit); these handlers only read requests and write answers.

const defaultPreviewSample = 10

type (
	segmentInput = segsvc.Input
	segmentView  = segsvc.View
)

// createSegment answers POST /api/v1/segments.
func (s *Server) createSegment(w http.ResponseWriter, r *http.Request) error {
	var in segmentInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	v, err := s.segments.Create(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/segments/%d", v.ID))
	return writeJSON(w, http.StatusCreated, v)
}

// listSegments answers GET /api/v1/segments.
func (s *Server) listSegments(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.segments.List(r.Context(), principal(r))
	if err != nil {
		return err
	}
	if vs == nil {
		vs = []segmentView{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"segments": vs})
}

// getSegment answers GET /api/v1/segments/{id}.
func (s *Server) getSegment(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "segment")
	if err != nil {
		return err
	}
	v, err := s.segments.Get(r.Context(), principal(r), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// updateSegment answers PUT /api/v1/segments/{id}.
func (s *Server) updateSegment(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "segment")
	if err != nil {
		return err
	}
	var in segmentInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	v, err := s.segments.Update(r.Context(), principal(r), id, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// deleteSegment answers DELETE /api/v1/segments/{id}.
func (s *Server) deleteSegment(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "segment")
	if err != nil {
		return err
	}
	if err := s.segments.Delete(r.Context(), principal(r), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// segmentMembers answers GET /api/v1/segments/{id}/members?limit&cursor.
func (s *Server) segmentMembers(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "segment")
	if err != nil {
		return err
	}
	limit, cursor, err := pageParams(r, 100, 1000)
	if err != nil {
		return err
	}
	page, err := s.segments.Members(r.Context(), principal(r), id, limit, cursor)
	if err != nil {
		return cursorError(err, cursor)
	}
	if page.Profiles == nil {
		page.Profiles = []store.Profile{}
	}
	return writeJSON(w, http.StatusOK, struct {
		Members    []store.Profile `json:"members"`
		NextCursor string          `json:"next_cursor,omitempty"`
	}{page.Profiles, page.NextCursor})
}

// previewSegment answers POST /api/v1/segments/preview {"rule", "sample"?}.
func (s *Server) previewSegment(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Rule   json.RawMessage `json:"rule"`
		Sample *int            `json:"sample"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	sample := defaultPreviewSample
	if in.Sample != nil {
		sample = *in.Sample
	}
	prev, err := s.segments.Preview(r.Context(), principal(r), in.Rule, sample)
	if err != nil {
		return err
	}
	if prev.Sample == nil {
		prev.Sample = []store.Profile{}
	}
	return writeJSON(w, http.StatusOK, prev)
}
