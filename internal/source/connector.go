package source

import (
	"context"
	"time"
)

// The connector's contract (branch src-conn, package
// internal/source/connector), mirrored here so that this package builds and
// is tested before that package lands. Once merged, ConnectorFunc adapts
// connector.Open and connector.Test to Connector (see the lead's notes).

// Config says where a source's rows are.
type Config struct {
	Kind, DSN, Query, URL string
	Headers               map[string]string
	Format                string
	StatementTimeout      time.Duration
}

// Column is one column of a result: Type is number, boolean, date or string.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Options narrow what a reader returns: Cursor names the incremental
// cursor column, After the high-water mark to start past.
type Options struct {
	Limit  int
	Cursor string
	After  string
}

// Row is one row: typed values by column (NULL absent), or Err for a bad row.
type Row struct {
	Num    int64
	Values map[string]any
	Err    string
}

// Reader streams a result.
type Reader interface {
	Columns() []Column
	Next(ctx context.Context) (Row, bool, error)
	Mark() string
	Close() error
}

// Sample is the answer of a test.
type Sample struct {
	Columns []Column         `json:"columns"`
	Sample  []map[string]any `json:"sample"`
}

// Connector opens readers over sources.
type Connector interface {
	Open(ctx context.Context, cfg Config, opt Options) (Reader, error)
	Test(ctx context.Context, cfg Config) (Sample, error)
}
