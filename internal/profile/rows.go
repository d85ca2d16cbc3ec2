package profile

import (
	"fmt"
	"io"

	"github.com/segsync/segsync/internal/store"
)

// Row is one data row of a CSV or NDJSON input as the import reads it: its
// line, its key, its other attributes as a canonical attrjson object, or the
// reason it is rejected.
type Row struct {
	Line   int64
	Key    string
	Attrs  []byte // valid until the next call of Next
	Reason string
}

// RowReader reads an input row by row with exactly the import's rules, for
// other callers than Import (the http data source).
type RowReader struct {
	rows rowReader
	rec  record
}

// NewRowReader reads the header (CSV) and returns a reader of the rows; a
// bad header is ErrInvalid.
func NewRowReader(r io.Reader, format Format, key string) (*RowReader, error) {
	switch format {
	case CSV:
		c, err := newCSVReader(r, key)
		if err != nil {
			return nil, err
		}
		return &RowReader{rows: c}, nil
	case NDJSON:
		return &RowReader{rows: newNDJSONReader(r, key)}, nil
	}
	return nil, fmt.Errorf("%w: format %q: use csv or ndjson", store.ErrInvalid, format)
}

// Next returns the next row, or io.EOF at the end; other errors mean the
// input could not be read.
func (rr *RowReader) Next() (Row, error) {
	if err := rr.rows.next(&rr.rec); err != nil {
		return Row{}, err
	}
	return Row{Line: rr.rec.line, Key: string(rr.rec.key), Attrs: rr.rec.attrs, Reason: rr.rec.reason}, nil
}
