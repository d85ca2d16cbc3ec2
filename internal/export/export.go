// Package export manages export definitions: create, read, update and
// delete, each save validated against the profiles, the segments and the
// Mailchimp audience (through the export's connection), every fault named
// by its field. Saving never runs the export; runs are package jobs' work.
package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/schedule"
	"github.com/segsync/segsync/internal/store"
)

// Store is the part of the store exports need.
type Store interface {
	CreateExport(ctx context.Context, e *store.Export) error
	GetExport(ctx context.Context, id int64) (store.Export, error)
	ListExports(ctx context.Context) ([]store.Export, error)
	UpdateExport(ctx context.Context, e *store.Export) error
	DeleteExport(ctx context.Context, id int64) error
	GetSegment(ctx context.Context, id int64) (store.Segment, error)
	ProfileAttributes(ctx context.Context) ([]store.AttributeInfo, error)
}

// Audience is what validation asks of Mailchimp; *mailchimp.Client
// implements it.
type Audience interface {
	GetList(ctx context.Context, listID string) (*mailchimp.List, error)
	MergeFields(ctx context.Context, listID string) ([]mailchimp.MergeField, error)
}

// Connections checks that a principal may use a connection and gives its
// client; *connection.Service implements it (through an adapter in cli).
type Connections interface {
	Authorize(ctx context.Context, p auth.Principal, id int64) (store.Connection, error)
	Audience(ctx context.Context, p auth.Principal, id int64) (Audience, error)
}

// Webhooks keeps an export's Mailchimp webhook registered; *hooks.Registrar
// implements it. Its failures never fail a save: it logs them, and each
// run tries again.
type Webhooks interface {
	Ensure(ctx context.Context, e store.Export) error
	Remove(ctx context.Context, e store.Export) error
}

// Service manages exports.
type Service struct {
	Store       Store
	Connections Connections
	Audit       audit.Recorder
	Webhooks    Webhooks // nil: none registered
}

// Input is the body of POST /api/v1/exports and PUT /api/v1/exports/{id}.
type Input struct {
	Name                     string        `json:"name"`
	ConnectionID             *int64        `json:"connection_id"`
	AudienceID               string        `json:"audience_id"`
	SegmentIDs               []int64       `json:"segment_ids"`
	Mapping                  store.Mapping `json:"mapping"`
	StatusIfNew              string        `json:"status_if_new"`
	OnLeave                  string        `json:"on_leave"`
	TagPrefix                string        `json:"tag_prefix"`
	CreateMissingMergeFields bool          `json:"create_missing_merge_fields"`
	Schedule                 string        `json:"schedule"`
}

// Policies and limits.
const (
	OnLeaveUntag       = "untag"
	OnLeaveArchive     = "archive"
	OnLeaveUnsubscribe = "unsubscribe"

	maxName       = 200
	maxTagPrefix  = 50
	maxTagName    = 100
	maxSegments   = 32
	maxAttributes = 28
)

var mergeTagPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,9}$`)

// List returns every export (any signed-in role may read them).
func (s *Service) List(ctx context.Context, p auth.Principal) ([]store.Export, error) {
	if err := auth.Require(p, auth.ReadData); err != nil {
		return nil, err
	}
	return s.Store.ListExports(ctx)
}

// Get returns one export.
func (s *Service) Get(ctx context.Context, p auth.Principal, id int64) (store.Export, error) {
	if err := auth.Require(p, auth.ReadData); err != nil {
		return store.Export{}, err
	}
	return s.Store.GetExport(ctx, id)
}

// Create validates and saves a new export. It does not run it.
func (s *Service) Create(ctx context.Context, p auth.Principal, in Input) (store.Export, error) {
	if err := auth.Require(p, auth.WriteData); err != nil {
		return store.Export{}, err
	}
	e, err := s.validate(ctx, p, in)
	if err != nil {
		return store.Export{}, err
	}
	e.CreatedBy = p.Email
	if err := s.Store.CreateExport(ctx, &e); err != nil {
		return store.Export{}, err
	}
	s.record(ctx, p, audit.ExportCreate, e, nil)
	if s.Webhooks != nil {
		_ = s.Webhooks.Ensure(ctx, e)
	}
	return e, nil
}

// Update validates and replaces an export's definition.
func (s *Service) Update(ctx context.Context, p auth.Principal, id int64, in Input) (store.Export, error) {
	if err := auth.Require(p, auth.WriteData); err != nil {
		return store.Export{}, err
	}
	old, err := s.Store.GetExport(ctx, id)
	if err != nil {
		return store.Export{}, err
	}
	e, err := s.validate(ctx, p, in)
	if err != nil {
		return store.Export{}, err
	}
	e.ID, e.CreatedBy, e.CreatedAt = id, old.CreatedBy, old.CreatedAt
	if err := s.Store.UpdateExport(ctx, &e); err != nil {
		return store.Export{}, err
	}
	s.record(ctx, p, audit.ExportUpdate, e, &old)
	if s.Webhooks != nil {
		if old.AudienceID != e.AudienceID || !sameConnection(old.ConnectionID, e.ConnectionID) {
			_ = s.Webhooks.Remove(ctx, old)
		}
		_ = s.Webhooks.Ensure(ctx, e)
	}
	return e, nil
}

// Delete removes an export, its runs and its synced state. Mailchimp data
// is never touched, except the export's webhook, which is removed.
func (s *Service) Delete(ctx context.Context, p auth.Principal, id int64) error {
	if err := auth.Require(p, auth.WriteData); err != nil {
		return err
	}
	e, err := s.Store.GetExport(ctx, id)
	if err != nil {
		return err
	}
	if s.Webhooks != nil {
		_ = s.Webhooks.Remove(ctx, e)
	}
	if err := s.Store.DeleteExport(ctx, id); err != nil {
		return err
	}
	s.record(ctx, p, audit.ExportDelete, e, nil)
	return nil
}

// MayRun checks that p may run export e: the role, and the connection.
func (s *Service) MayRun(ctx context.Context, p auth.Principal, e store.Export) error {
	if err := auth.Require(p, auth.RunExports); err != nil {
		return err
	}
	if e.ConnectionID == nil {
		return fmt.Errorf("export %d is detached from its connection; give it one first: %w", e.ID, store.ErrConflict)
	}
	if s.Connections == nil {
		return nil
	}
	_, err := s.Connections.Authorize(ctx, p, *e.ConnectionID)
	return err
}

func sameConnection(a, b *int64) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// record puts a change of e in the audit log with everything that decides
// who is sent and how: audience, segments, the field mapping and tags. An
// update (old not nil) also lists each field that changed with its old and
// new value under "changed".
func (s *Service) record(ctx context.Context, p auth.Principal, action string, e store.Export, old *store.Export) {
	if s.Audit == nil {
		return
	}
	detail := auditDetail(e)
	if old != nil {
		before, changed := auditDetail(*old), map[string]any{}
		for k, v := range detail {
			if !sameJSON(before[k], v) {
				changed[k] = map[string]any{"old": before[k], "new": v}
			}
		}
		for k, v := range before {
			if _, ok := detail[k]; !ok {
				changed[k] = map[string]any{"old": v, "new": nil}
			}
		}
		detail["changed"] = changed
	}
	_ = s.Audit.Record(ctx, p.Actor(), action, "export", e.ID, detail)
}

// auditDetail is what the audit log keeps of an export's definition.
func auditDetail(e store.Export) map[string]any {
	d := map[string]any{"name": e.Name, "audience_id": e.AudienceID, "segment_ids": e.SegmentIDs, "on_leave": e.OnLeave,
		"schedule": e.Schedule, "status_if_new": e.StatusIfNew, "tag_prefix": e.TagPrefix, "mapping": e.Mapping,
		"create_missing_merge_fields": e.CreateMissingMergeFields}
	if e.ConnectionID != nil {
		d["connection_id"] = *e.ConnectionID
	}
	return d
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// validate checks an input against everything it refers to and returns the
// export to save. Faults come back together as a fielderr.List.
func (s *Service) validate(ctx context.Context, p auth.Principal, in Input) (store.Export, error) {
	var errs fielderr.List
	e := store.Export{
		Name: strings.TrimSpace(in.Name), ConnectionID: in.ConnectionID, AudienceID: strings.TrimSpace(in.AudienceID),
		SegmentIDs: in.SegmentIDs, Mapping: in.Mapping, StatusIfNew: in.StatusIfNew, OnLeave: in.OnLeave,
		TagPrefix: in.TagPrefix, CreateMissingMergeFields: in.CreateMissingMergeFields, Schedule: strings.TrimSpace(in.Schedule),
	}
	if e.StatusIfNew == "" {
		e.StatusIfNew = mailchimp.StatusSubscribed
	}
	if e.OnLeave == "" {
		e.OnLeave = OnLeaveUntag
	}
	if e.Schedule == "" {
		e.Schedule = schedule.Refresh
	}
	switch {
	case e.Name == "":
		errs.Add("name", "is required")
	case utf8.RuneCountInString(e.Name) > maxName:
		errs.Add("name", fmt.Sprintf("is longer than %d characters", maxName))
	}
	switch e.StatusIfNew {
	case mailchimp.StatusSubscribed, mailchimp.StatusPending, mailchimp.StatusTransactional, mailchimp.StatusUnsubscribed:
	default:
		errs.Add("status_if_new", "must be subscribed, pending, transactional or unsubscribed")
	}
	switch e.OnLeave {
	case OnLeaveUntag, OnLeaveArchive, OnLeaveUnsubscribe:
	default:
		errs.Add("on_leave", "must be untag, archive or unsubscribe")
	}
	if err := schedule.Validate(e.Schedule); err != nil {
		errs.Add("schedule", err.Error())
	}
	if utf8.RuneCountInString(e.TagPrefix) > maxTagPrefix || strings.ContainsFunc(e.TagPrefix, unicode.IsControl) {
		errs.Add("tag_prefix", fmt.Sprintf("must be at most %d printable characters", maxTagPrefix))
	}

	// Segments.
	switch {
	case len(e.SegmentIDs) == 0:
		errs.Add("segment_ids", "select at least one segment")
	case len(e.SegmentIDs) > maxSegments:
		errs.Add("segment_ids", fmt.Sprintf("at most %d segments", maxSegments))
	}
	seen := map[int64]bool{}
	for i, id := range e.SegmentIDs {
		field := fmt.Sprintf("segment_ids[%d]", i)
		if seen[id] {
			errs.Add(field, "is selected twice")
			continue
		}
		seen[id] = true
		sg, err := s.Store.GetSegment(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			errs.Add(field, fmt.Sprintf("segment %d does not exist", id))
			continue
		}
		if err != nil {
			return e, err
		}
		if n := utf8.RuneCountInString(e.TagPrefix + sg.Name); n > maxTagName {
			errs.Add(field, fmt.Sprintf("the tag %q would be longer than %d characters", e.TagPrefix+sg.Name, maxTagName))
		}
	}

	// Mapping against the attribute catalogue.
	attrs, err := s.Store.ProfileAttributes(ctx)
	if err != nil {
		return e, fmt.Errorf("reading the attribute catalogue: %w", err)
	}
	attrType := map[string]string{}
	for _, a := range attrs {
		attrType[a.Name] = a.Type
	}
	m := &e.Mapping
	m.Email, m.FirstName, m.LastName = strings.TrimSpace(m.Email), strings.TrimSpace(m.FirstName), strings.TrimSpace(m.LastName)
	var wants []wanted
	checkAttr := func(field, name string) bool {
		if attrjson.Reserved(name) {
			// Mailchimp's own word about a contact, written back by segsync:
			// never sent (docs/privacy.md), nor an address.
			errs.Add(field, fmt.Sprintf("%q is written by segsync from Mailchimp and cannot be sent to it", name))
			return false
		}
		if _, ok := attrType[name]; !ok {
			errs.Add(field, fmt.Sprintf("no profile has the attribute %q", name))
			return false
		}
		return true
	}
	if m.Email == "" {
		errs.Add("mapping.email", "is required")
	} else {
		checkAttr("mapping.email", m.Email)
	}
	if m.FirstName != "" && checkAttr("mapping.first_name", m.FirstName) {
		wants = append(wants, wanted{"mapping.first_name", m.FirstName, "FNAME"})
	}
	if m.LastName != "" && checkAttr("mapping.last_name", m.LastName) {
		wants = append(wants, wanted{"mapping.last_name", m.LastName, "LNAME"})
	}
	if len(m.Attributes) > maxAttributes {
		errs.Add("mapping.attributes", fmt.Sprintf("at most %d attributes", maxAttributes))
	}
	tags := map[string]string{"FNAME": "first_name", "LNAME": "last_name"}
	for i, a := range m.Attributes {
		field := fmt.Sprintf("mapping.attributes[%d]", i)
		a.Attribute, a.MergeTag = strings.TrimSpace(a.Attribute), strings.ToUpper(strings.TrimSpace(a.MergeTag))
		m.Attributes[i] = a
		if !mergeTagPattern.MatchString(a.MergeTag) {
			errs.Add(field+".merge_tag", "must be 1-10 characters of A-Z, 0-9 and _, starting with a letter")
			continue
		}
		if prev, dup := tags[a.MergeTag]; dup {
			errs.Add(field+".merge_tag", fmt.Sprintf("%s is already mapped (%s)", a.MergeTag, prev))
			continue
		}
		tags[a.MergeTag] = field
		if a.Attribute == "" {
			errs.Add(field+".attribute", "is required")
			continue
		}
		if checkAttr(field+".attribute", a.Attribute) {
			wants = append(wants, wanted{field + ".merge_tag", a.Attribute, a.MergeTag})
		}
	}

	// Connection and audience.
	if e.ConnectionID == nil {
		errs.Add("connection_id", "is required")
	} else if s.Connections != nil {
		if _, err := s.Connections.Authorize(ctx, p, *e.ConnectionID); err != nil {
			switch {
			case errors.Is(err, store.ErrNotFound):
				errs.Add("connection_id", fmt.Sprintf("connection %d does not exist", *e.ConnectionID))
			case errors.Is(err, auth.ErrForbidden):
				errs.Add("connection_id", "you may not use this connection")
			default:
				return e, err
			}
		} else if e.AudienceID == "" {
			errs.Add("audience_id", "is required")
		} else if err := s.checkAudience(ctx, p, &e, wants, attrType, &errs); err != nil {
			return e, err
		}
	}
	if e.AudienceID == "" && e.ConnectionID == nil {
		errs.Add("audience_id", "is required")
	}
	if err := errs.Err(); err != nil {
		return e, err
	}
	return e, nil
}

// wanted is one merge field the mapping sends to.
type wanted struct{ field, attr, tag string }

// ErrUpstream means Mailchimp could not be asked about the audience.
var ErrUpstream = errors.New("Mailchimp could not be reached to check the audience")

func (s *Service) checkAudience(ctx context.Context, p auth.Principal, e *store.Export, wants []wanted, attrType map[string]string, errs *fielderr.List) error {
	aud, err := s.Connections.Audience(ctx, p, *e.ConnectionID)
	if err != nil {
		return err
	}
	if _, err := aud.GetList(ctx, e.AudienceID); err != nil {
		if mailchimp.IsNotFound(err) {
			errs.Add("audience_id", fmt.Sprintf("the connection's account has no audience %q", e.AudienceID))
			return nil
		}
		if mailchimp.IsAuth(err) {
			errs.Add("connection_id", "Mailchimp refused the connection's credential")
			return nil
		}
		return fmt.Errorf("%w: %v", ErrUpstream, err)
	}
	fields, err := aud.MergeFields(ctx, e.AudienceID)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUpstream, err)
	}
	types := map[string]string{}
	for _, f := range fields {
		types[f.Tag] = f.Type
	}
	for _, w := range wants {
		typ, ok := types[w.tag]
		if !ok {
			if !e.CreateMissingMergeFields {
				errs.Add(w.field, fmt.Sprintf("the audience has no merge field %s (set create_missing_merge_fields to create it)", w.tag))
			}
			continue
		}
		if !Compatible(attrType[w.attr], typ) {
			errs.Add(w.field, fmt.Sprintf("merge field %s is of type %s, which cannot hold the %s attribute %q", w.tag, typ, attrType[w.attr], w.attr))
		}
	}
	return nil
}

// Compatible reports whether a profile attribute type (string, number,
// boolean, date) can be sent to a merge field type.
func Compatible(attrType, mergeType string) bool {
	switch mergeType {
	case mailchimp.MergeText, mailchimp.MergeRadio, mailchimp.MergeDropdown:
		return true // anything has a text form
	case mailchimp.MergeNumber:
		return attrType == "number"
	case mailchimp.MergeDate, mailchimp.MergeBirthday:
		return attrType == "date"
	case mailchimp.MergePhone, mailchimp.MergeURL, mailchimp.MergeImageURL, mailchimp.MergeZip:
		return attrType == "string" || attrType == "number"
	}
	return false // address and unknown types
}
