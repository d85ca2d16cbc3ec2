// Package service is the home of segments as the product knows them:
// validating a segment (name, description, and its rule against the
// attribute catalogue), saving it, counting and listing its members,
// previewing an unsaved rule, and recording every change in the audit log
// with the rule before and after. The REST API calls it; the UI calls the
// API. It lives apart from package segment (the rule engine), which the
// store imports.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
)

// Bounds of a segment's name (it becomes a Mailchimp tag, at most 100
// characters with the export's prefix), its description and a preview's
// sample.
const (
	MaxName          = 100
	MaxDescription   = 2000
	MaxPreviewSample = 100
)

// Store is what the service needs of the store.
type Store interface {
	store.SegmentStore
	ProfileAttributes(ctx context.Context) ([]store.AttributeInfo, error)
}

// Service manages segments. Audit may be nil (no audit log).
type Service struct {
	Store Store
	Audit audit.Recorder
}

// Input is a segment as a person writes it; Rule is the rule's JSON.
type Input struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Rule        json.RawMessage `json:"rule"`
}

// View is a segment with the number of profiles it matches now.
type View struct {
	store.Segment
	MemberCount int64 `json:"member_count"`
}

// ParseRule validates a rule against the attribute catalogue; faults name
// their path ("rule.all[2].op").
func (s *Service) ParseRule(ctx context.Context, raw json.RawMessage) (*segment.Rule, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fielderr.New("rule", "is required")
	}
	attrs, err := s.Store.ProfileAttributes(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the attribute catalogue: %w", err)
	}
	names := make([]string, len(attrs))
	for i, a := range attrs {
		names[i] = a.Name
	}
	return segment.Parse(raw, segment.KnownSet(names...))
}

// validate checks a create or update; every fault comes back at once.
func (s *Service) validate(ctx context.Context, in Input) (store.Segment, error) {
	var errs fielderr.List
	name := strings.TrimSpace(in.Name)
	switch {
	case name == "":
		errs.Add("name", "is required")
	case utf8.RuneCountInString(name) > MaxName:
		errs.Add("name", fmt.Sprintf("is longer than %d characters", MaxName))
	case strings.ContainsFunc(name, unicode.IsControl):
		errs.Add("name", "contains control characters")
	}
	if utf8.RuneCountInString(in.Description) > MaxDescription {
		errs.Add("description", fmt.Sprintf("is longer than %d characters", MaxDescription))
	}
	rule, err := s.ParseRule(ctx, in.Rule)
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

// withCount adds the current member count.
func (s *Service) withCount(ctx context.Context, seg store.Segment) (View, error) {
	n, err := s.Store.CountMatching(ctx, seg.Rule)
	if err != nil {
		return View{}, fmt.Errorf("counting the members of segment %d: %w", seg.ID, err)
	}
	return View{Segment: seg, MemberCount: n}, nil
}

// Create validates and saves a new segment. A taken name is
// store.ErrConflict.
func (s *Service) Create(ctx context.Context, p auth.Principal, in Input) (View, error) {
	if err := auth.Require(p, auth.WriteData); err != nil {
		return View{}, err
	}
	seg, err := s.validate(ctx, in)
	if err != nil {
		return View{}, err
	}
	if err := s.Store.CreateSegment(ctx, &seg); err != nil {
		return View{}, fmt.Errorf("segment %q: %w", seg.Name, err)
	}
	s.record(ctx, p, audit.SegmentCreate, seg.ID, map[string]any{"name": seg.Name, "rule": seg.Rule})
	return s.withCount(ctx, seg)
}

// Update validates and replaces a segment's name, description and rule.
func (s *Service) Update(ctx context.Context, p auth.Principal, id int64, in Input) (View, error) {
	if err := auth.Require(p, auth.WriteData); err != nil {
		return View{}, err
	}
	seg, err := s.validate(ctx, in)
	if err != nil {
		return View{}, err
	}
	old, err := s.Store.GetSegment(ctx, id)
	if err != nil {
		return View{}, fmt.Errorf("segment %d: %w", id, err)
	}
	seg.ID = id
	if err := s.Store.UpdateSegment(ctx, &seg); err != nil {
		return View{}, fmt.Errorf("segment %d: %w", id, err)
	}
	detail := map[string]any{"name": seg.Name, "old_rule": old.Rule, "rule": seg.Rule}
	if old.Name != seg.Name {
		detail["old_name"] = old.Name
	}
	s.record(ctx, p, audit.SegmentUpdate, id, detail)
	return s.withCount(ctx, seg)
}

// Delete deletes a segment: store.ErrConflict while an export selects it.
func (s *Service) Delete(ctx context.Context, p auth.Principal, id int64) error {
	if err := auth.Require(p, auth.WriteData); err != nil {
		return err
	}
	old, err := s.Store.GetSegment(ctx, id)
	if err != nil {
		return fmt.Errorf("segment %d: %w", id, err)
	}
	if err := s.Store.DeleteSegment(ctx, id); err != nil {
		return fmt.Errorf("segment %d: %w", id, err)
	}
	s.record(ctx, p, audit.SegmentDelete, id, map[string]any{"name": old.Name, "old_rule": old.Rule})
	return nil
}

// Get returns one segment with its member count.
func (s *Service) Get(ctx context.Context, p auth.Principal, id int64) (View, error) {
	if err := auth.Require(p, auth.ReadData); err != nil {
		return View{}, err
	}
	seg, err := s.Store.GetSegment(ctx, id)
	if err != nil {
		return View{}, err
	}
	return s.withCount(ctx, seg)
}

// List returns every segment in name order with its member count; the
// counts come from one pass over the profiles, not one scan per segment.
func (s *Service) List(ctx context.Context, p auth.Principal) ([]View, error) {
	if err := auth.Require(p, auth.ReadData); err != nil {
		return nil, err
	}
	segs, err := s.Store.ListSegments(ctx)
	if err != nil {
		return nil, err
	}
	rules := make([]*segment.Rule, len(segs))
	for i, seg := range segs {
		rules[i] = seg.Rule
	}
	counts, err := s.Store.CountMatchingEach(ctx, rules)
	if err != nil {
		return nil, fmt.Errorf("counting the members of %d segments: %w", len(segs), err)
	}
	if len(counts) != len(segs) {
		return nil, fmt.Errorf("counting the members of %d segments: got %d counts", len(segs), len(counts))
	}
	out := make([]View, len(segs))
	for i, seg := range segs {
		out[i] = View{Segment: seg, MemberCount: counts[i]}
	}
	return out, nil
}

// Members pages through a segment's members in customer_id order, like
// store.SegmentStore.SegmentMembers.
func (s *Service) Members(ctx context.Context, p auth.Principal, id int64, limit int, cursor string) (store.ProfilePage, error) {
	if err := auth.Require(p, auth.ReadData); err != nil {
		return store.ProfilePage{}, err
	}
	seg, err := s.Store.GetSegment(ctx, id)
	if err != nil {
		return store.ProfilePage{}, err
	}
	return s.Store.SegmentMembers(ctx, seg.Rule, limit, cursor)
}

// Preview counts what an unsaved rule matches and returns the first
// sample (0 to MaxPreviewSample) of those profiles.
func (s *Service) Preview(ctx context.Context, p auth.Principal, raw json.RawMessage, sample int) (store.SegmentPreview, error) {
	if err := auth.Require(p, auth.ReadData); err != nil {
		return store.SegmentPreview{}, err
	}
	if sample < 0 || sample > MaxPreviewSample {
		return store.SegmentPreview{}, fielderr.New("sample", fmt.Sprintf("must be from 0 to %d", MaxPreviewSample))
	}
	rule, err := s.ParseRule(ctx, raw)
	if err != nil {
		return store.SegmentPreview{}, err
	}
	return s.Store.PreviewSegment(ctx, rule, sample)
}

// record appends a change to the audit log; a failure is logged by the
// log, not returned: the change itself has happened.
func (s *Service) record(ctx context.Context, p auth.Principal, action string, id int64, detail map[string]any) {
	if s.Audit == nil {
		return
	}
	_ = s.Audit.Record(ctx, p.Actor(), action, "segment", id, detail)
}
