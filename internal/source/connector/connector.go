// Package connector reads rows from the systems where customers keep their
// profiles: PostgreSQL, MySQL/MariaDB and CSV or NDJSON files at an http(s)
// URL. Rows are streamed (never the whole result in memory) and typed the
// way SPEC section 11 says; database queries run in a read-only transaction
// with a statement timeout; errors never carry the DSN, a password or a
// header value. The package knows nothing of profiles or of the store: the
// source package maps rows to attributes.
package connector

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/fielderr"
)

// Kinds of sources.
const (
	KindPostgres = "postgres"
	KindMySQL    = "mysql"
	KindHTTP     = "http"
)

// Column types, as the attribute catalogue names them.
const (
	TypeNumber  = "number"
	TypeBoolean = "boolean"
	TypeDate    = "date"
	TypeString  = "string"
)

// Config is what a connector needs, secrets included.
type Config struct {
	Kind    string
	DSN     string            // postgres, mysql (secret)
	Query   string            // postgres, mysql: one SELECT
	URL     string            // http
	Headers map[string]string // http (secret values)
	Format  string            // http: csv, ndjson or "" (from the Content-Type, then the URL's extension)
	// StatementTimeout bounds the query (default 5 minutes).
	StatementTimeout time.Duration
}

// Validate checks the configuration's fields, naming each bad one.
func (c Config) Validate() error {
	var errs fielderr.List
	switch c.Kind {
	case KindPostgres, KindMySQL:
		if strings.TrimSpace(c.DSN) == "" {
			errs.Add("dsn", "required for a "+c.Kind+" source")
		}
		if msg := checkQuery(c.Query); msg != "" {
			errs.Add("query", msg)
		}
	case KindHTTP:
		u, err := url.Parse(c.URL)
		switch {
		case c.URL == "":
			errs.Add("url", "required for an http source")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs.Add("url", "must be an http or https URL")
		case u.User != nil:
			errs.Add("url", "must not carry credentials; put them in an Authorization header")
		}
		if c.Format != "" && c.Format != "csv" && c.Format != "ndjson" {
			errs.Add("format", `must be "csv", "ndjson" or empty (from the Content-Type)`)
		}
		for name := range c.Headers {
			if !validHeaderName(name) {
				errs.Add("headers", fmt.Sprintf("%q is not a valid header name", name))
			}
		}
	default:
		errs.Add("kind", `must be "postgres", "mysql" or "http"`)
	}
	return errs.Err()
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// checkQuery accepts one SELECT (or WITH … SELECT) statement. The database
// enforces read-only access anyway; this catches the obvious mistakes early.
func checkQuery(q string) string {
	t := strings.TrimSpace(q)
	t = strings.TrimSpace(strings.TrimSuffix(t, ";"))
	if t == "" {
		return "required: one SELECT statement"
	}
	if strings.Contains(t, ";") && !insideQuotes(t) {
		return "must be a single statement (no ';' between statements)"
	}
	first := strings.ToUpper(strings.Fields(t)[0])
	if first != "SELECT" && first != "WITH" && first != "(SELECT" {
		return "must be a SELECT statement (segsync only reads from sources)"
	}
	return ""
}

// insideQuotes reports whether every ';' of q is inside a quoted string.
func insideQuotes(q string) bool {
	var quote rune
	for _, r := range q {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && (r == '\'' || r == '"' || r == '`'):
			quote = r
		case quote == 0 && r == ';':
			return false
		}
	}
	return true
}

// Column is one column of a source's result.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Field is one non-NULL value of a row: Value is a canonical attrjson value
// (a JSON number, true/false, or a JSON string; dates are strings in the
// form attrjson.NormalizeDate gives).
type Field struct {
	Name  string
	Value []byte
}

// Row is one row: its fields in column order (NULLs left out), or Err, the
// reason it is rejected. Num is the row's number (for http files, the line
// the import would report). Slices are valid until the next call of Next.
type Row struct {
	Num    int64
	Fields []Field
	Err    string
}

// Options narrow a read.
type Options struct {
	Limit int // > 0: at most this many rows
	// Key is the key column; http files need it to read rows the way the
	// import does.
	Key string
	// Cursor, in incremental mode, is the column whose values only grow;
	// After is a Mark of an earlier read: only rows past it are read.
	Cursor string
	After  string
}

// Reader reads rows until Next reports the end.
type Reader interface {
	Columns() []Column
	// Next returns the next row, false at the end, or an error when the
	// read as a whole failed (the message is safe to show).
	Next(ctx context.Context) (Row, bool, error)
	// Mark is the high-water mark of the rows read so far ("" without a
	// cursor or rows): pass it as Options.After to read only newer rows.
	Mark() string
	Close() error
}

// Open starts reading a source.
func Open(ctx context.Context, cfg Config, opt Options) (Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.StatementTimeout <= 0 {
		cfg.StatementTimeout = 5 * time.Minute
	}
	var r Reader
	var err error
	switch cfg.Kind {
	case KindPostgres:
		r, err = openPostgres(ctx, cfg, opt)
	case KindMySQL:
		r, err = openMySQL(ctx, cfg, opt)
	default:
		r, err = openHTTP(ctx, cfg, opt)
	}
	if err != nil {
		return nil, redact(err, cfg)
	}
	return &safeReader{Reader: r, cfg: cfg}, nil
}

// Sample is what Test answers: the columns and up to ten rows.
type Sample struct {
	Columns []Column         `json:"columns"`
	Sample  []map[string]any `json:"sample"`
}

// Test connects, reads up to ten rows and stores nothing.
func Test(ctx context.Context, cfg Config, key string) (Sample, error) {
	s := Sample{Columns: []Column{}, Sample: []map[string]any{}}
	r, err := Open(ctx, cfg, Options{Limit: 10, Key: key})
	if err != nil {
		return s, err
	}
	defer r.Close()
	for {
		row, ok, err := r.Next(ctx)
		if err != nil {
			return s, err
		}
		if !ok {
			break
		}
		m := map[string]any{}
		if row.Err != "" {
			m["_error"] = fmt.Sprintf("row %d: %s", row.Num, row.Err)
		}
		for _, f := range row.Fields {
			m[f.Name] = jsonValue(f.Value)
		}
		s.Sample = append(s.Sample, m)
	}
	s.Columns = append(s.Columns, r.Columns()...)
	return s, nil
}

// safeReader redacts the errors of a reader.
type safeReader struct {
	Reader
	cfg Config
}

func (s *safeReader) Next(ctx context.Context) (Row, bool, error) {
	row, ok, err := s.Reader.Next(ctx)
	if err != nil {
		return row, ok, redact(err, s.cfg)
	}
	return row, ok, nil
}

// ErrSource marks errors of the source itself (unreachable, refused,
// a bad query): the pull fails with the message, which is safe to show.
var ErrSource = errors.New("source error")

// redact turns an error into one that names no secret: it keeps the
// message of the error but blanks every secret the configuration holds.
func redact(err error, cfg Config) error {
	if err == nil {
		return nil
	}
	var fe fielderr.List
	if errors.As(err, &fe) {
		return err
	}
	msg := err.Error()
	ss := secrets(cfg)
	slices.SortFunc(ss, func(a, b string) int { return len(b) - len(a) })
	for _, s := range ss {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return fmt.Errorf("%w: %s", ErrSource, msg)
}

// secrets lists the secret strings of a configuration, longest first.
func secrets(cfg Config) []string {
	var out []string
	if cfg.DSN != "" {
		out = append(out, cfg.DSN)
		if u, err := url.Parse(cfg.DSN); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
			}
		}
		for _, kv := range strings.Fields(cfg.DSN) { // key=value form
			if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(k, "password") {
				out = append(out, strings.Trim(v, "'"))
			}
		}
		if i := strings.Index(cfg.DSN, "@"); i > 0 && cfg.Kind == KindMySQL { // user:pass@tcp(...)
			if _, p, ok := strings.Cut(cfg.DSN[:i], ":"); ok {
				out = append(out, p)
			}
		}
	}
	for _, v := range cfg.Headers {
		out = append(out, v)
		if _, tok, ok := strings.Cut(v, " "); ok {
			out = append(out, tok)
		}
	}
	return out
}
