package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/source/connector"
	"github.com/segsync/segsync/internal/store"
)

// Audit actions of sources.
const (
	ActionCreate = "source.create"
	ActionUpdate = "source.update"
	ActionDelete = "source.delete"
	ActionPull   = audit.ProfileImport // an applied pull imports profiles (kind profile)
)

// sealPurpose binds sealed source secrets to this use.
const sealPurpose = "source-secret"

// Store is the part of the store sources use.
type Store interface {
	store.SourceStore
	GetRun(ctx context.Context, id int64) (store.Run, error)
}

// Service manages sources and their pulls.
type Service struct {
	store Store
	vault *connection.Vault
	audit audit.Recorder
	log   *slog.Logger
	wake  func() // tells the worker that a pull is queued
	runs  RunQueuer
}

// NewService builds the service; wake may be nil.
func NewService(st Store, v *connection.Vault, a audit.Recorder, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: st, vault: v, audit: a, log: log, wake: func() {}}
}

// OnQueued sets what is called when a pull is queued (the worker's wake-up).
func (s *Service) OnQueued(fn func()) { s.wake = fn }

func (s *Service) record(ctx context.Context, actor audit.Actor, action string, id int64, detail map[string]any) {
	s.recordOn(ctx, actor, action, "source", id, detail)
}

// recordOn records an event on an object of another type than the source
// (an applied pull imports profiles: kind profile).
func (s *Service) recordOn(ctx context.Context, actor audit.Actor, action, objectType string, id any, detail map[string]any) {
	if s.audit == nil {
		return
	}
	if err := s.audit.Record(ctx, actor, action, objectType, id, detail); err != nil {
		s.log.Warn("audit", "action", action, "err", err)
	}
}

// List lists the sources with their last pull.
func (s *Service) List(ctx context.Context) ([]View, error) {
	srcs, err := s.store.ListSources(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]View, 0, len(srcs))
	for _, src := range srcs {
		v, err := s.withLastPull(ctx, src)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Service) withLastPull(ctx context.Context, src store.Source) (View, error) {
	v := view(src)
	p, ok, err := s.store.LastPull(ctx, src.ID)
	if err != nil {
		return v, err
	}
	if ok {
		v.LastPull = &p
	}
	return v, nil
}

// Get returns one source.
func (s *Service) Get(ctx context.Context, id int64) (View, error) {
	src, err := s.store.GetSource(ctx, id)
	if err != nil {
		return View{}, err
	}
	return s.withLastPull(ctx, src)
}

// Create validates and stores a new source.
func (s *Service) Create(ctx context.Context, actor audit.Actor, in Input) (View, error) {
	if in.Kind == "upload" {
		return View{}, fielderr.New("kind", `must be "postgres", "mysql" or "http"`)
	}
	if _, err := in.validate(); err != nil {
		return View{}, err
	}
	rec, err := s.toRecord(in)
	if err != nil {
		return View{}, err
	}
	rec.CreatedBy = actor.Email
	out, err := s.store.CreateSource(ctx, rec)
	if err != nil {
		return View{}, err
	}
	s.record(ctx, actor, ActionCreate, out.ID, map[string]any{"name": out.Name, "kind": out.Kind})
	return view(out), nil
}

// Update replaces a source's definition. Secrets left empty are kept; a
// changed query, key or mode resets the incremental mark and the shrink
// guard's reference.
func (s *Service) Update(ctx context.Context, actor audit.Actor, id int64, in Input) (View, error) {
	old, err := s.store.GetSource(ctx, id)
	if err != nil {
		return View{}, err
	}
	if old.Kind == "upload" {
		return View{}, fmt.Errorf("the uploads source cannot be edited: %w", store.ErrConflict)
	}
	if in.Kind == "" {
		in.Kind = old.Kind
	}
	if in.Kind != old.Kind {
		return View{}, fielderr.New("kind", "cannot change; create a new source instead")
	}
	sec, err := s.openSecret(old)
	if err != nil {
		return View{}, err
	}
	if in.DSN == "" {
		in.DSN = sec.DSN
	}
	for name, v := range in.Headers {
		if v == "" {
			in.Headers[name] = sec.Headers[name]
		}
	}
	if in.Headers == nil && in.Kind == connector.KindHTTP {
		in.Headers = sec.Headers
	}
	if _, err := in.validate(); err != nil {
		return View{}, err
	}
	rec, err := s.toRecord(in)
	if err != nil {
		return View{}, err
	}
	rec.ID = id
	rec.HighWater, rec.LastFullRows = old.HighWater, old.LastFullRows
	var oc config
	_ = json.Unmarshal(old.Config, &oc)
	if in.Query != oc.Query || in.URL != oc.URL || in.Key != old.Key || in.Mode != old.Mode || in.Cursor != old.Cursor {
		rec.HighWater, rec.LastFullRows = "", -1
	}
	out, err := s.store.UpdateSource(ctx, rec)
	if err != nil {
		return View{}, err
	}
	s.record(ctx, actor, ActionUpdate, id, map[string]any{"name": out.Name})
	return s.withLastPull(ctx, out)
}

// Delete deletes a source and removes its attributes from the profiles; a
// profile no other source holds is deleted.
func (s *Service) Delete(ctx context.Context, actor audit.Actor, id int64) (int64, error) {
	src, err := s.store.GetSource(ctx, id)
	if err != nil {
		return 0, err
	}
	n, err := s.store.DeleteSource(ctx, id)
	if err != nil {
		return 0, err
	}
	s.record(ctx, actor, ActionDelete, id, map[string]any{"name": src.Name, "profiles_deleted": n})
	return n, nil
}

func (s *Service) toRecord(in Input) (store.Source, error) {
	c := config{Query: in.Query, URL: in.URL, Format: in.Format, Rename: in.Rename, Exclude: in.Exclude}
	c.Headers = slices.Sorted(maps.Keys(in.Headers))
	cb, err := json.Marshal(c)
	if err != nil {
		return store.Source{}, err
	}
	rec := store.Source{Name: in.Name, Kind: in.Kind, Key: in.Key, Mode: in.Mode, Cursor: in.Cursor, Schedule: in.Schedule,
		Priority: 100, MinRatio: 0.5, Config: cb, LastFullRows: -1}
	if in.Priority != nil {
		rec.Priority = *in.Priority
	}
	if in.MinRatio != nil {
		rec.MinRatio = *in.MinRatio
	}
	sec := secret{DSN: in.DSN, Headers: in.Headers}
	if sec.DSN != "" || len(sec.Headers) > 0 {
		plain, _ := json.Marshal(sec)
		if s.vault == nil {
			return rec, errors.New("no secret key is configured to seal the source's secrets")
		}
		if rec.Secret, err = s.vault.Seal(plain, sealPurpose); err != nil {
			return rec, fmt.Errorf("sealing the source's secrets: %w", err)
		}
	}
	return rec, nil
}

func (s *Service) openSecret(src store.Source) (secret, error) {
	var sec secret
	if len(src.Secret) == 0 {
		return sec, nil
	}
	if s.vault == nil {
		return sec, errors.New("no secret key is configured to open the source's secrets")
	}
	plain, err := s.vault.Open(src.Secret, sealPurpose)
	if err != nil {
		return sec, fmt.Errorf("opening the secrets of source %d (was the secret key changed?): %w", src.ID, err)
	}
	if err := json.Unmarshal(plain, &sec); err != nil {
		return sec, fmt.Errorf("the secrets of source %d: %w", src.ID, err)
	}
	return sec, nil
}

// connectorConfig is the connector configuration of a stored source.
func (s *Service) connectorConfig(src store.Source) (connector.Config, config, error) {
	var c config
	if err := json.Unmarshal(src.Config, &c); err != nil {
		return connector.Config{}, c, fmt.Errorf("the configuration of source %d: %w", src.ID, err)
	}
	sec, err := s.openSecret(src)
	if err != nil {
		return connector.Config{}, c, err
	}
	return connector.Config{Kind: src.Kind, DSN: sec.DSN, Query: c.Query, URL: c.URL, Headers: sec.Headers, Format: c.Format}, c, nil
}

// Test reads up to ten rows of a stored source; nothing is stored.
func (s *Service) Test(ctx context.Context, id int64) (connector.Sample, error) {
	src, err := s.store.GetSource(ctx, id)
	if err != nil {
		return connector.Sample{}, err
	}
	if src.Kind == "upload" {
		return connector.Sample{}, fmt.Errorf("the uploads source is pushed, not pulled: %w", store.ErrConflict)
	}
	cfg, _, err := s.connectorConfig(src)
	if err != nil {
		return connector.Sample{}, err
	}
	return connector.Test(ctx, cfg, src.Key)
}

// TestInput reads up to ten rows of an unsaved source (the UI's "Test"
// before saving). With id > 0, the stored secrets fill in empty ones.
func (s *Service) TestInput(ctx context.Context, id int64, in Input) (connector.Sample, error) {
	if id > 0 {
		old, err := s.store.GetSource(ctx, id)
		if err != nil {
			return connector.Sample{}, err
		}
		sec, err := s.openSecret(old)
		if err != nil {
			return connector.Sample{}, err
		}
		if in.DSN == "" {
			in.DSN = sec.DSN
		}
		for name, v := range in.Headers {
			if v == "" {
				in.Headers[name] = sec.Headers[name]
			}
		}
	}
	if in.Name == "" {
		in.Name = "test"
	}
	cfg, err := in.validate()
	if err != nil {
		return connector.Sample{}, err
	}
	return connector.Test(ctx, cfg, in.Key)
}

// Pull queues a pull of a source (single flight: a queued one is returned).
func (s *Service) Pull(ctx context.Context, actor audit.Actor, id int64, allowShrink bool) (store.Pull, error) {
	src, err := s.store.GetSource(ctx, id)
	if err != nil {
		return store.Pull{}, err
	}
	if src.Kind == "upload" {
		return store.Pull{}, fmt.Errorf("the uploads source is pushed through /api/v1/profiles/import, not pulled: %w", store.ErrConflict)
	}
	p, _, err := s.store.EnqueuePull(ctx, id, nil, store.TriggerManual, allowShrink, actor.Email)
	if err != nil {
		return p, err
	}
	s.wake()
	return p, nil
}

// GetPull returns one pull.
func (s *Service) GetPull(ctx context.Context, id int64) (store.Pull, error) {
	return s.store.GetPull(ctx, id)
}

// ListPulls lists a source's pulls, newest first.
func (s *Service) ListPulls(ctx context.Context, sourceID int64) ([]store.Pull, error) {
	if _, err := s.store.GetSource(ctx, sourceID); err != nil {
		return nil, err
	}
	return s.store.ListPulls(ctx, sourceID, 100)
}

// CancelPull cancels a queued pull or asks a running one to stop.
func (s *Service) CancelPull(ctx context.Context, id int64) (store.Pull, error) {
	return s.store.CancelPull(ctx, id)
}
