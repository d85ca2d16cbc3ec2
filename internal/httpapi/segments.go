package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
)

// Bounds of a segment's name (it becomes a Mailchimp tag, at most 100
// characters with the export's prefix) and description.
const (
	maxSegmentName        = 100
	maxSegmentDescription = 2000
	defaultPreviewSample  = 10
	maxPreviewSample      = 100
)

// segmentInput is the body of POST /api/v1/segments and PUT /api/v1/segments/{id}.
type segmentInput struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Rule        json.RawMessage `json:"rule"`
}

// segmentResponse is a segment with the number of profiles it matches now.
type segmentResponse struct {
	store.Segment
	MemberCount int64 `json:"member_count"`
}

// knownAttributes is the attribute catalogue as a segment.Known.
func (s *Server) knownAttributes(r *http.Request) (segment.Known, error) {
	attrs, err := s.deps.Store.ProfileAttributes(r.Context())
	if err != nil {
		return nil, fmt.Errorf("reading the attribute catalogue: %w", err)
	}
	names := make([]string, len(attrs))
	for i, a := range attrs {
		names[i] = a.Name
	}
	return segment.KnownSet(names...), nil
}

// parseRule validates a rule against the attribute catalogue; faults name
// their path ("rule.all[2].op").
func (s *Server) parseRule(r *http.Request, raw json.RawMessage) (*segment.Rule, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fielderr.New("rule", "is required")
	}
	known, err := s.knownAttributes(r)
	if err != nil {
		return nil, err
	}
	return segment.Parse(raw, known)
}

// segmentFromInput validates a create or update body.
func (s *Server) segmentFromInput(r *http.Request, in segmentInput) (store.Segment, error) {
	var errs fielderr.List
	name := strings.TrimSpace(in.Name)
	switch {
	case name == "":
		errs.Add("name", "is required")
	case utf8.RuneCountInString(name) > maxSegmentName:
		errs.Add("name", fmt.Sprintf("is longer than %d characters", maxSegmentName))
	case strings.ContainsFunc(name, unicode.IsControl):
		errs.Add("name", "contains control characters")
	}
	if utf8.RuneCountInString(in.Description) > maxSegmentDescription {
		errs.Add("description", fmt.Sprintf("is longer than %d characters", maxSegmentDescription))
	}
	rule, err := s.parseRule(r, in.Rule)
	if err != nil {
		var ruleErrs fielderr.List
		if !errors.As(err, &ruleErrs) {
			return store.Segment{}, err
		}
		errs = append(errs, ruleErrs...)
	}
	if err := errs.Err(); err != nil {
		return store.Segment{}, err
	}
	return store.Segment{Name: name, Description: in.Description, Rule: rule}, nil
}

// withCount adds the current member count to a segment.
func (s *Server) withCount(r *http.Request, seg store.Segment) (segmentResponse, error) {
	n, err := s.deps.Store.CountMatching(r.Context(), seg.Rule)
	if err != nil {
		return segmentResponse{}, fmt.Errorf("counting the members of segment %d: %w", seg.ID, err)
	}
	return segmentResponse{Segment: seg, MemberCount: n}, nil
}

// createSegment answers POST /api/v1/segments.
func (s *Server) createSegment(w http.ResponseWriter, r *http.Request) error {
	var in segmentInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	seg, err := s.segmentFromInput(r, in)
	if err != nil {
		return err
	}
	if err := s.deps.Store.CreateSegment(r.Context(), &seg); err != nil {
		return fmt.Errorf("segment %q: %w", seg.Name, err)
	}
	resp, err := s.withCount(r, seg)
	if err != nil {
		return err
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/segments/%d", seg.ID))
	return writeJSON(w, http.StatusCreated, resp)
}

// listSegments answers GET /api/v1/segments. Every segment's member count
// comes from one pass over the profiles (Store.CountMatchingEach), not one
// scan per segment.
func (s *Server) listSegments(w http.ResponseWriter, r *http.Request) error {
	segs, err := s.deps.Store.ListSegments(r.Context())
	if err != nil {
		return err
	}
	rules := make([]*segment.Rule, len(segs))
	for i, seg := range segs {
		rules[i] = seg.Rule
	}
	counts, err := s.deps.Store.CountMatchingEach(r.Context(), rules)
	if err != nil {
		return fmt.Errorf("counting the members of %d segments: %w", len(segs), err)
	}
	if len(counts) != len(segs) {
		return fmt.Errorf("counting the members of %d segments: got %d counts", len(segs), len(counts))
	}
	out := make([]segmentResponse, len(segs))
	for i, seg := range segs {
		out[i] = segmentResponse{Segment: seg, MemberCount: counts[i]}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"segments": out})
}

// getSegment answers GET /api/v1/segments/{id}.
func (s *Server) getSegment(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "segment")
	if err != nil {
		return err
	}
	seg, err := s.deps.Store.GetSegment(r.Context(), id)
	if err != nil {
		return err
	}
	resp, err := s.withCount(r, seg)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
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
	seg, err := s.segmentFromInput(r, in)
	if err != nil {
		return err
	}
	seg.ID = id
	if err := s.deps.Store.UpdateSegment(r.Context(), &seg); err != nil {
		return fmt.Errorf("segment %d: %w", id, err)
	}
	resp, err := s.withCount(r, seg)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

// deleteSegment answers DELETE /api/v1/segments/{id}.
func (s *Server) deleteSegment(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "segment")
	if err != nil {
		return err
	}
	if err := s.deps.Store.DeleteSegment(r.Context(), id); err != nil {
		return fmt.Errorf("segment %d: %w", id, err)
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
	seg, err := s.deps.Store.GetSegment(r.Context(), id)
	if err != nil {
		return err
	}
	page, err := s.deps.Store.SegmentMembers(r.Context(), seg.Rule, limit, cursor)
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
		if *in.Sample < 0 || *in.Sample > maxPreviewSample {
			return fielderr.New("sample", fmt.Sprintf("must be from 0 to %d", maxPreviewSample))
		}
		sample = *in.Sample
	}
	rule, err := s.parseRule(r, in.Rule)
	if err != nil {
		return err
	}
	prev, err := s.deps.Store.PreviewSegment(r.Context(), rule, sample)
	if err != nil {
		return err
	}
	if prev.Sample == nil {
		prev.Sample = []store.Profile{}
	}
	return writeJSON(w, http.StatusOK, prev)
}
