// Package source manages data sources (SPEC section 11): their definitions
// and secrets, pulls as durable jobs (claimed with a fenced lease, staged,
// then applied in one transaction), and the system refresh that pulls every
// refresh-scheduled source before it runs the refresh-scheduled exports.
// Reading a source's rows is package connector's job; merging the sources
// of one profile is the store's.
package source

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/schedule"
	"github.com/segsync/segsync/internal/source/connector"
	"github.com/segsync/segsync/internal/store"
)

// Modes.
const (
	ModeFull        = "full"
	ModeIncremental = "incremental"
)

// Input is a source as the API takes it. Secrets (DSN, header values) are
// write-only: on update, an empty DSN or a header with an empty value keeps
// the stored one.
type Input struct {
	Name     string            `json:"name"`
	Kind     string            `json:"kind"`
	Key      string            `json:"key"`
	Mode     string            `json:"mode"`
	Cursor   string            `json:"cursor,omitempty"`
	Schedule string            `json:"schedule,omitempty"`
	Rename   map[string]string `json:"rename,omitempty"`
	Exclude  []string          `json:"exclude,omitempty"`
	Priority *int              `json:"priority,omitempty"`
	MinRatio *float64          `json:"min_ratio,omitempty"`
	DSN      string            `json:"dsn,omitempty"`
	Query    string            `json:"query,omitempty"`
	URL      string            `json:"url,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
	Format   string            `json:"format,omitempty"`
}

// config is the stored, non-secret part of a source's definition.
type config struct {
	Query   string            `json:"query,omitempty"`
	URL     string            `json:"url,omitempty"`
	Format  string            `json:"format,omitempty"`
	Headers []string          `json:"headers,omitempty"` // names only
	Rename  map[string]string `json:"rename,omitempty"`
	Exclude []string          `json:"exclude,omitempty"`
}

// secret is the sealed part.
type secret struct {
	DSN     string            `json:"dsn,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// View is a source as the API shows it: no secrets, their presence only.
type View struct {
	ID        int64             `json:"id"`
	Name      string            `json:"name"`
	Kind      string            `json:"kind"`
	Key       string            `json:"key,omitempty"`
	Mode      string            `json:"mode,omitempty"`
	Cursor    string            `json:"cursor,omitempty"`
	Schedule  string            `json:"schedule"`
	Rename    map[string]string `json:"rename,omitempty"`
	Exclude   []string          `json:"exclude,omitempty"`
	Priority  int               `json:"priority"`
	MinRatio  float64           `json:"min_ratio"`
	DSNSet    bool              `json:"dsn_set,omitempty"`
	Query     string            `json:"query,omitempty"`
	URL       string            `json:"url,omitempty"`
	Headers   []string          `json:"headers,omitempty"`
	Format    string            `json:"format,omitempty"`
	CreatedBy string            `json:"created_by,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	LastPull  *store.Pull       `json:"last_pull,omitempty"`
}

func view(s store.Source) View {
	var c config
	_ = json.Unmarshal(s.Config, &c)
	return View{ID: s.ID, Name: s.Name, Kind: s.Kind, Key: s.Key, Mode: s.Mode, Cursor: s.Cursor, Schedule: s.Schedule,
		Rename: c.Rename, Exclude: c.Exclude, Priority: s.Priority, MinRatio: s.MinRatio, DSNSet: len(s.Secret) > 0 && s.Kind != connector.KindHTTP,
		Query: c.Query, URL: c.URL, Headers: c.Headers, Format: c.Format, CreatedBy: s.CreatedBy, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

// validate checks an input (with its secrets already completed from the
// stored ones on update) and returns the connector configuration.
func (in *Input) validate() (connector.Config, error) {
	var errs fielderr.List
	in.Name = strings.TrimSpace(in.Name)
	switch {
	case in.Name == "":
		errs.Add("name", "required")
	case len(in.Name) > 100:
		errs.Add("name", "at most 100 characters")
	case strings.EqualFold(in.Name, "uploads"):
		errs.Add("name", `"uploads" is the source of pushed imports`)
	}
	if in.Key == "" {
		errs.Add("key", "required: the column that holds the customer id")
	}
	switch in.Mode {
	case "":
		in.Mode = ModeFull
	case ModeFull, ModeIncremental:
	default:
		errs.Add("mode", `must be "full" or "incremental"`)
	}
	if in.Mode == ModeIncremental && in.Cursor == "" {
		errs.Add("cursor", "required in incremental mode: a column whose values only grow (e.g. updated_at)")
	}
	if in.Mode == ModeFull && in.Cursor != "" {
		errs.Add("cursor", "only used in incremental mode")
	}
	if in.Schedule == "" {
		in.Schedule = schedule.Refresh
	}
	if err := schedule.Validate(in.Schedule); err != nil {
		errs.Add("schedule", err.Error())
	}
	if in.Priority != nil && (*in.Priority < 0 || *in.Priority > 1_000_000) {
		errs.Add("priority", "must be between 0 and 1000000 (lower wins)")
	}
	if in.MinRatio != nil && (*in.MinRatio < 0 || *in.MinRatio > 1) {
		errs.Add("min_ratio", "must be between 0 and 1")
	}
	for col, attr := range in.Rename {
		if col == in.Key {
			errs.Add("rename", fmt.Sprintf("the key column %q cannot be renamed", col))
		}
		if msg := checkAttrName(attr); msg != "" {
			errs.Add("rename", fmt.Sprintf("%q → %q: %s", col, attr, msg))
		}
	}
	for _, col := range in.Exclude {
		if col == in.Key {
			errs.Add("exclude", fmt.Sprintf("the key column %q cannot be excluded", col))
		}
	}
	cfg := connector.Config{Kind: in.Kind, DSN: in.DSN, Query: in.Query, URL: in.URL, Headers: in.Headers, Format: in.Format}
	if in.Kind == connector.KindHTTP && (in.DSN != "" || in.Query != "") {
		errs.Add("kind", "an http source has a url, not a dsn or query")
	}
	if in.Kind != connector.KindHTTP && (in.URL != "" || len(in.Headers) > 0) {
		errs.Add("kind", "a database source has a dsn and a query, not a url or headers")
	}
	if err := cfg.Validate(); err != nil {
		if l, ok := err.(fielderr.List); ok {
			errs = append(errs, l...)
		}
	}
	return cfg, errs.Err()
}

// checkAttrName says why a name cannot be an attribute ("" when it can).
func checkAttrName(name string) string {
	if attrjson.Reserved(name) {
		return "the name is reserved for Mailchimp's statuses (" + attrjson.ReservedPrefix + "…)"
	}
	if !attrjson.ValidName(name) {
		return "not a valid attribute name (" + attrjson.NamePattern + ")"
	}
	return ""
}
