// Package source is segsync's data sources (SPEC section 11): their
// definitions and validation, their secrets sealed in the credential vault,
// pulls as durable jobs (the pulls table is the queue; a pull streams the
// source's rows into a staging table and applies them in one transaction)
// and the system refresh, which pulls every refresh-scheduled source and
// only then queues the refresh-scheduled exports.
//
// Boundaries: reading a database or a URL is the connector's job (package
// connector, seen here through the Connector interface); how several
// sources merge into profiles.attrs is the store's (sqldb/layers.go); this
// package turns rows into attributes, runs the jobs and keeps the rules.
package source

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
)

// Kinds, modes and schedules.
const (
	KindPostgres = "postgres"
	KindMySQL    = "mysql"
	KindHTTP     = "http"

	ModeFull        = "full"
	ModeIncremental = "incremental"

	ScheduleRefresh = "refresh"
	ScheduleOff     = "off"
)

// Source is a source as the API shows it: secrets never leave (DSNSet,
// Headers names only).
type Source struct {
	ID       int64             `json:"id"`
	Name     string            `json:"name"`
	Kind     string            `json:"kind"`
	Key      string            `json:"key"`
	Mode     string            `json:"mode"`
	Cursor   string            `json:"cursor,omitempty"`
	Schedule string            `json:"schedule"`
	Rename   map[string]string `json:"rename"`
	Exclude  []string          `json:"exclude"`
	Priority int               `json:"priority"`
	MinRatio float64           `json:"min_ratio"`
	Query    string            `json:"query,omitempty"`
	URL      string            `json:"url,omitempty"`
	Format   string            `json:"format,omitempty"`
	DSNSet   bool              `json:"dsn_set"`
	Headers  []string          `json:"headers"`
	// HighWater is the incremental mode's mark of the last applied pull.
	HighWater string    `json:"high_water,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// LastPull is the newest pull, with its status and counts.
	LastPull *store.Pull `json:"last_pull"`
}

// Input is the body of POST and PUT /api/v1/sources: pointers tell what
// was given. On PUT, an absent dsn keeps the stored one, and so does a
// header given with an empty value.
type Input struct {
	Name     *string           `json:"name"`
	Kind     *string           `json:"kind"`
	Key      *string           `json:"key"`
	Mode     *string           `json:"mode"`
	Cursor   *string           `json:"cursor"`
	Schedule *string           `json:"schedule"`
	Rename   map[string]string `json:"rename"`
	Exclude  []string          `json:"exclude"`
	Priority *int              `json:"priority"`
	MinRatio *float64          `json:"min_ratio"`
	DSN      *string           `json:"dsn"`
	Query    *string           `json:"query"`
	URL      *string           `json:"url"`
	Headers  map[string]string `json:"headers"`
	Format   *string           `json:"format"`
}

const secretPurpose = "source-secret"

// Service manages sources. It records every change in the audit log.
type Service struct {
	st    store.Store
	vault *connection.Vault
	audit *audit.Log
	conn  Connector
}

// NewService returns a Service; conn reads sources (Test).
func NewService(st store.Store, vault *connection.Vault, log *audit.Log, conn Connector) *Service {
	return &Service{st: st, vault: vault, audit: log, conn: conn}
}

// ParseSchedule checks a schedule: "refresh", "off" or 5-field cron.
func ParseSchedule(s string) error {
	if s == ScheduleRefresh || s == ScheduleOff {
		return nil
	}
	if _, err := cron.ParseStandard(s); err != nil {
		return fmt.Errorf("not \"refresh\", \"off\" or a 5-field cron expression: %v", err)
	}
	return nil
}

// apply merges in into rec (a new or stored record) and validates the
// result; errors name the field.
func (s *Service) apply(rec *store.SourceRecord, in Input, creating bool) error {
	var errs fielderr.List
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = strings.TrimSpace(*v)
		}
	}
	if rec.Kind == store.SourceKindPush {
		// The uploads source: only its priority can change.
		if in.Priority != nil {
			rec.Priority = *in.Priority
		}
		if in.Name != nil && *in.Name != store.UploadsSource || in.Kind != nil && *in.Kind != store.SourceKindPush {
			errs.Add("kind", "the uploads source takes pushed imports; only its priority can change")
		}
		return errs.Err()
	}
	set(&rec.Name, in.Name)
	if in.Kind != nil {
		if !creating && *in.Kind != rec.Kind {
			errs.Add("kind", "cannot change; create a new source")
		}
		rec.Kind = *in.Kind
	}
	set(&rec.Key, in.Key)
	set(&rec.Mode, in.Mode)
	set(&rec.Cursor, in.Cursor)
	set(&rec.Schedule, in.Schedule)
	set(&rec.Query, in.Query)
	set(&rec.URL, in.URL)
	set(&rec.Format, in.Format)
	if in.Rename != nil {
		rec.Rename = in.Rename
	}
	if in.Exclude != nil {
		rec.Exclude = in.Exclude
	}
	if in.Priority != nil {
		rec.Priority = *in.Priority
	}
	if in.MinRatio != nil {
		rec.MinRatio = *in.MinRatio
	}
	if rec.Mode == "" {
		rec.Mode = ModeFull
	}
	if rec.Schedule == "" {
		rec.Schedule = ScheduleRefresh
	}
	switch {
	case rec.Name == "":
		errs.Add("name", "is required")
	case len(rec.Name) > 100:
		errs.Add("name", "is longer than 100 characters")
	case rec.Name == store.UploadsSource:
		errs.Add("name", `"uploads" is the source of pushed imports`)
	}
	switch rec.Kind {
	case KindPostgres, KindMySQL:
		if rec.Query == "" {
			errs.Add("query", "is required for a "+rec.Kind+" source: one SELECT")
		}
		if rec.URL != "" || len(in.Headers) > 0 || rec.Format != "" {
			errs.Add("url", "belongs to http sources only")
		}
	case KindHTTP:
		u, err := url.Parse(rec.URL)
		switch {
		case rec.URL == "":
			errs.Add("url", "is required for an http source")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs.Add("url", "must be an http or https URL")
		}
		if rec.Format != "" && rec.Format != "csv" && rec.Format != "ndjson" {
			errs.Add("format", `must be "csv" or "ndjson" (or absent: from the Content-Type)`)
		}
		if in.DSN != nil || rec.Query != "" {
			errs.Add("dsn", "belongs to postgres and mysql sources only")
		}
	case "":
		errs.Add("kind", `is required: "postgres", "mysql" or "http"`)
	default:
		errs.Add("kind", fmt.Sprintf("%q is not postgres, mysql or http", rec.Kind))
	}
	if rec.Key == "" {
		errs.Add("key", "is required: the column that holds the customer id")
	}
	switch rec.Mode {
	case ModeFull:
		if rec.Cursor != "" {
			errs.Add("cursor", "only incremental sources have a cursor column")
		}
	case ModeIncremental:
		if rec.Cursor == "" {
			errs.Add("cursor", "is required in incremental mode: the column that grows with every change")
		}
	default:
		errs.Add("mode", `must be "full" or "incremental"`)
	}
	if err := ParseSchedule(rec.Schedule); err != nil {
		errs.Add("schedule", err.Error())
	}
	for col, attr := range rec.Rename {
		switch {
		case strings.HasPrefix(attr, store.ReservedAttrPrefix):
			errs.Add("rename."+col, fmt.Sprintf("%q is reserved: mailchimp.* attributes come from Mailchimp", attr))
		case !attrjson.ValidName(attr):
			errs.Add("rename."+col, fmt.Sprintf("%q is not a valid attribute name (%s)", attr, attrjson.NamePattern))
		}
	}
	if rec.MinRatio < 0 || rec.MinRatio > 1 {
		errs.Add("min_ratio", "must be between 0 and 1")
	}
	for name := range in.Headers {
		if name == "" || strings.ContainsAny(name, " :\r\n") {
			errs.Add("headers", fmt.Sprintf("%q is not a header name", name))
		}
	}
	if creating && (rec.Kind == KindPostgres || rec.Kind == KindMySQL) && (in.DSN == nil || *in.DSN == "") {
		errs.Add("dsn", "is required for a "+rec.Kind+" source")
	}
	if err := errs.Err(); err != nil {
		return err
	}
	// Secrets: sealed at once; absent ones are kept.
	if in.DSN != nil && *in.DSN != "" {
		sealed, err := s.vault.Seal([]byte(*in.DSN), secretPurpose)
		if err != nil {
			return err
		}
		rec.DSNSealed = base64.StdEncoding.EncodeToString(sealed)
	}
	if in.Headers != nil {
		old, err := s.headers(*rec)
		if err != nil {
			return err
		}
		hs := map[string]string{}
		names := []string{}
		for k, v := range in.Headers {
			if v == "" {
				v = old[k] // kept
			}
			if v == "" {
				continue
			}
			hs[k] = v
			names = append(names, k)
		}
		sortStrings(names)
		b, _ := json.Marshal(hs)
		sealed, err := s.vault.Seal(b, secretPurpose)
		if err != nil {
			return err
		}
		rec.HeadersSealed, rec.HeaderNames = base64.StdEncoding.EncodeToString(sealed), names
	}
	return nil
}

func (s *Service) open(sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", connection.ErrSealed
	}
	plain, err := s.vault.Open(b, secretPurpose)
	return string(plain), err
}

func (s *Service) headers(rec store.SourceRecord) (map[string]string, error) {
	plain, err := s.open(rec.HeadersSealed)
	if err != nil || plain == "" {
		return map[string]string{}, err
	}
	hs := map[string]string{}
	if err := json.Unmarshal([]byte(plain), &hs); err != nil {
		return nil, fmt.Errorf("source %d headers: %w", rec.ID, err)
	}
	return hs, nil
}

// ConfigOf is the connector configuration of a stored source, secrets
// opened.
func (s *Service) ConfigOf(rec store.SourceRecord) (Config, error) {
	dsn, err := s.open(rec.DSNSealed)
	if err != nil {
		return Config{}, fmt.Errorf("source %q: the DSN: %w", rec.Name, err)
	}
	hs, err := s.headers(rec)
	if err != nil {
		return Config{}, fmt.Errorf("source %q: the headers: %w", rec.Name, err)
	}
	return Config{Kind: rec.Kind, DSN: dsn, Query: rec.Query, URL: rec.URL, Headers: hs, Format: rec.Format}, nil
}

func (s *Service) view(ctx context.Context, rec store.SourceRecord) (Source, error) {
	v := Source{ID: rec.ID, Name: rec.Name, Kind: rec.Kind, Key: rec.Key, Mode: rec.Mode, Cursor: rec.Cursor, Schedule: rec.Schedule,
		Rename: rec.Rename, Exclude: rec.Exclude, Priority: rec.Priority, MinRatio: rec.MinRatio, Query: rec.Query, URL: rec.URL,
		Format: rec.Format, DSNSet: rec.DSNSealed != "", Headers: rec.HeaderNames, HighWater: rec.HighWater,
		CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt}
	if v.Rename == nil {
		v.Rename = map[string]string{}
	}
	if v.Exclude == nil {
		v.Exclude = []string{}
	}
	if v.Headers == nil {
		v.Headers = []string{}
	}
	p, err := s.st.LastPull(ctx, rec.ID)
	switch {
	case err == nil:
		v.LastPull = &p
	case !errors.Is(err, store.ErrNotFound):
		return v, err
	}
	return v, nil
}

// Create validates and stores a new source.
func (s *Service) Create(ctx context.Context, actor audit.Actor, in Input) (Source, error) {
	rec := store.SourceRecord{MinRatio: 0.5, CreatedBy: actor.Email}
	if err := s.apply(&rec, in, true); err != nil {
		return Source{}, err
	}
	if err := s.st.CreateSource(ctx, &rec); err != nil {
		return Source{}, err
	}
	_ = s.audit.Record(ctx, actor, "source.create", "source", rec.ID, map[string]any{"name": rec.Name, "kind": rec.Kind})
	return s.view(ctx, rec)
}

// Get returns one source.
func (s *Service) Get(ctx context.Context, id int64) (Source, error) {
	rec, err := s.st.GetSource(ctx, id)
	if err != nil {
		return Source{}, err
	}
	return s.view(ctx, rec)
}

// List returns every source, uploads first.
func (s *Service) List(ctx context.Context) ([]Source, error) {
	recs, err := s.st.ListSources(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Source, 0, len(recs))
	for _, r := range recs {
		v, err := s.view(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Update changes a source; absent secrets are kept.
func (s *Service) Update(ctx context.Context, actor audit.Actor, id int64, in Input) (Source, error) {
	rec, err := s.st.GetSource(ctx, id)
	if err != nil {
		return Source{}, err
	}
	if err := s.apply(&rec, in, false); err != nil {
		return Source{}, err
	}
	if err := s.st.UpdateSource(ctx, &rec); err != nil {
		return Source{}, err
	}
	_ = s.audit.Record(ctx, actor, "source.update", "source", rec.ID, map[string]any{"name": rec.Name})
	return s.view(ctx, rec)
}

// Delete deletes a source and its attributes from every profile.
func (s *Service) Delete(ctx context.Context, actor audit.Actor, id int64) error {
	rec, err := s.st.GetSource(ctx, id)
	if err != nil {
		return err
	}
	if rec.Kind == store.SourceKindPush {
		return fielderr.New("id", "the uploads source cannot be deleted")
	}
	if err := s.st.DeleteSource(ctx, id); err != nil {
		return err
	}
	_ = s.audit.Record(ctx, actor, "source.delete", "source", id, map[string]any{"name": rec.Name})
	return nil
}

// Test connects to a stored source and returns its columns and up to ten
// rows; nothing is stored.
func (s *Service) Test(ctx context.Context, id int64) (Sample, error) {
	rec, err := s.st.GetSource(ctx, id)
	if err != nil {
		return Sample{}, err
	}
	if rec.Kind == store.SourceKindPush {
		return Sample{}, fielderr.New("id", "the uploads source has nothing to test: it takes pushed imports")
	}
	cfg, err := s.ConfigOf(rec)
	if err != nil {
		return Sample{}, err
	}
	return s.conn.Test(ctx, cfg)
}

// TestInput tests an unsaved source body.
func (s *Service) TestInput(ctx context.Context, in Input) (Sample, error) {
	rec := store.SourceRecord{MinRatio: 0.5}
	if err := s.apply(&rec, in, true); err != nil {
		return Sample{}, err
	}
	cfg, err := s.ConfigOf(rec)
	if err != nil {
		return Sample{}, err
	}
	return s.conn.Test(ctx, cfg)
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
