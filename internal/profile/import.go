// Package profile imports customer profiles: it reads CSV and NDJSON as
// streams, types each value (numbers, booleans, ISO-8601 dates, strings),
// reports every rejected row with its line number and reason, and writes the
// accepted rows to the store in batched transactions while the next batch is
// being parsed. Attribute names follow attrjson.NamePattern.
package profile

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"mime"
	"strings"
	"sync/atomic"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
)

// Format is the input's format.
type Format string

const (
	CSV    Format = "csv"    // text/csv with a header row
	NDJSON Format = "ndjson" // application/x-ndjson, one object per line
)

// FormatFromContentType maps a Content-Type to a Format; an unknown type is
// ErrInvalid.
func FormatFromContentType(ct string) (Format, error) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.TrimSpace(strings.ToLower(ct))
	}
	switch mt {
	case "text/csv", "application/csv":
		return CSV, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines":
		return NDJSON, nil
	}
	return "", fmt.Errorf("%w: content type %q: send text/csv or application/x-ndjson", store.ErrInvalid, ct)
}

// Mode says what happens to profiles the input does not mention.
type Mode string

const (
	// Upsert adds and updates profiles, merging the given attributes into the
	// stored ones; other profiles stay.
	Upsert Mode = "upsert"
	// Replace does what Upsert does and then deletes the profiles absent from
	// the input, once the whole input has been read.
	Replace Mode = "replace"
)

// ParseMode parses a mode name; "" is Upsert.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", Upsert:
		return Upsert, nil
	case Replace:
		return Replace, nil
	}
	return "", fmt.Errorf("%w: mode %q: use upsert or replace", store.ErrInvalid, s)
}

// DefaultKey is the key column when Options.Key is empty.
const DefaultKey = "customer_id"

// Options configure one import.
type Options struct {
	Format Format
	// Key names the column or field that holds the customer id.
	Key  string
	Mode Mode
	// Progress, when set, is called from the importing goroutine every few
	// thousand rows and once at the end.
	Progress func(Progress)
	// MaxErrors caps Report.Errors (default 1000); Rejected stays exact.
	MaxErrors int
	// BatchSize is the number of rows per transaction (default 5000).
	BatchSize int
}

// Progress is how far an import has got.
type Progress struct {
	Rows  int64 // data rows read
	Bytes int64 // input bytes read
}

// RowError is a rejected row: its (first) line number and why. Line 0 is a
// remark about the whole input.
type RowError struct {
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
}

// Report is the outcome of an import, the answer of the import endpoint.
type Report struct {
	Received  int64 `json:"received"`  // data rows read
	Imported  int64 `json:"imported"`  // new profiles
	Updated   int64 `json:"updated"`   // existing profiles that changed
	Unchanged int64 `json:"unchanged"` // existing profiles left as they were
	Rejected  int64 `json:"rejected"`  // rows not imported, each in Errors
	Deleted   int64 `json:"deleted"`   // profiles removed by replace mode
	// Errors lists rejected rows in input order, up to MaxErrors.
	Errors          []RowError `json:"errors"`
	ErrorsTruncated bool       `json:"errors_truncated,omitempty"`
}

// Importer imports profiles into a store.
type Importer struct {
	store store.ProfileStore
	log   *slog.Logger
}

// NewImporter returns an Importer writing to s.
func NewImporter(s store.ProfileStore, log *slog.Logger) *Importer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Importer{store: s, log: log}
}

// Import reads r to the end and imports its rows. Bad rows are rejected in
// the report and never stop the import. Bad options and a bad CSV header
// are ErrInvalid; a read or store error stops the import and is returned
// with the report of what was done until then (replace mode then deletes
// nothing).
func (im *Importer) Import(ctx context.Context, r io.Reader, opts Options) (Report, error) {
	rep := Report{Errors: []RowError{}}
	if opts.Key == "" {
		opts.Key = DefaultKey
	}
	if !attrjson.ValidName(opts.Key) {
		return rep, fmt.Errorf("%w: key %q is not a valid attribute name (names match %s)", store.ErrInvalid, opts.Key, attrjson.NamePattern)
	}
	mode, err := ParseMode(string(opts.Mode))
	if err != nil {
		return rep, err
	}
	if opts.MaxErrors <= 0 {
		opts.MaxErrors = 1000
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	cr := &countingReader{r: r}
	var rows rowReader
	switch opts.Format {
	case CSV:
		c, err := newCSVReader(cr, opts.Key)
		if err != nil {
			return rep, err
		}
		rows = c
	case NDJSON:
		rows = newNDJSONReader(cr, opts.Key)
	default:
		return rep, fmt.Errorf("%w: format %q: use csv or ndjson", store.ErrInvalid, opts.Format)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := newBatchWriter(ctx, im.store, opts.BatchSize)
	seen := newKeySet()
	reject := func(line int64, reason string) {
		rep.Rejected++
		if len(rep.Errors) < opts.MaxErrors {
			rep.Errors = append(rep.Errors, RowError{Line: line, Reason: reason})
		} else {
			rep.ErrorsTruncated = true
		}
	}
	progress := func() {
		if opts.Progress != nil {
			opts.Progress(Progress{Rows: rep.Received, Bytes: cr.n.Load()})
		}
	}
	var rec record
	var readErr error
	for {
		if err := rows.next(&rec); err != nil {
			if err != io.EOF {
				readErr = fmt.Errorf("reading the input: %w", err)
			}
			break
		}
		rep.Received++
		if rep.Received%8192 == 0 {
			progress()
			if ctx.Err() != nil {
				break
			}
		}
		if rec.reason != "" {
			reject(rec.line, rec.reason)
			if len(rec.key) > 0 && checkKey(rec.key) == "" {
				seen.protect(rec.key)
			}
			continue
		}
		if seen.add(rec.key) {
			reject(rec.line, fmt.Sprintf("duplicate key %q: an earlier row of the input has it", rec.key))
			continue
		}
		if !w.add(rec.key, rec.attrs) {
			break // the writer failed; its error is returned below
		}
	}
	counts, writeErr := w.close()
	rep.Imported, rep.Updated, rep.Unchanged = counts.inserted, counts.updated, counts.unchanged
	progress()
	if err := errors.Join(readErr, writeErr, ctx.Err()); err != nil {
		return rep, fmt.Errorf("importing profiles: %w", err)
	}
	if mode == Replace {
		if rep.Imported+rep.Updated+rep.Unchanged == 0 {
			// Almost certainly the wrong file: do not empty the store.
			rep.Errors = append(rep.Errors, RowError{Line: 0, Reason: "replace mode: the input has no valid rows, so no profile was deleted"})
		} else {
			n, err := im.store.DeleteProfilesExcept(ctx, seen.has)
			rep.Deleted = n
			if err != nil {
				return rep, fmt.Errorf("importing profiles: deleting profiles absent from the input: %w", err)
			}
		}
	}
	im.log.Debug("profiles imported", "format", opts.Format, "mode", mode, "received", rep.Received,
		"imported", rep.Imported, "updated", rep.Updated, "unchanged", rep.Unchanged,
		"rejected", rep.Rejected, "deleted", rep.Deleted)
	return rep, nil
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// keySet remembers the customer ids of the input as 62-bit hashes in an
// open-addressing table of 8-byte slots: 10-20 bytes per distinct id, the
// only memory that grows with the input. A false match needs two of a
// file's ids to collide under a random seed (about n²/2⁶³: 10⁻⁷ for 10⁶ rows).
type keySet struct {
	seed  maphash.Seed
	slots []uint64 // 0: empty; otherwise hash with bit 1 set, bit 0 = accepted
	n     int
}

func newKeySet() *keySet {
	return &keySet{seed: maphash.MakeSeed(), slots: make([]uint64, 1<<12)}
}

const keyAccepted = 1

func (k *keySet) hash(h uint64) uint64 { return h | 2 }

// find returns the slot of hash h (with bit 0 clear) or the empty slot where
// it belongs.
func (k *keySet) find(h uint64) int {
	mask := len(k.slots) - 1
	for i := int(h>>2) & mask; ; i = (i + 1) & mask {
		if v := k.slots[i]; v == 0 || v&^keyAccepted == h {
			return i
		}
	}
}

func (k *keySet) put(h, flag uint64) (prev uint64) {
	if k.n >= len(k.slots)/10*8 {
		old := k.slots
		k.slots = make([]uint64, 2*len(old))
		for _, v := range old {
			if v != 0 {
				k.slots[k.find(v&^keyAccepted)] = v
			}
		}
	}
	i := k.find(h)
	prev = k.slots[i]
	if prev == 0 {
		k.n++
	}
	k.slots[i] = h | flag | prev&keyAccepted
	return prev
}

// add records an accepted row's key; dup reports an earlier accepted row
// with the same key.
func (k *keySet) add(key []byte) (dup bool) {
	return k.put(k.hash(maphash.Bytes(k.seed, key))&^keyAccepted, keyAccepted)&keyAccepted != 0
}

// protect records the key of a rejected row, so that replace mode keeps
// that profile rather than deleting it over a fault in the file.
func (k *keySet) protect(key []byte) {
	k.put(k.hash(maphash.Bytes(k.seed, key))&^keyAccepted, 0)
}

func (k *keySet) has(id string) bool {
	return k.slots[k.find(k.hash(maphash.String(k.seed, id))&^keyAccepted)] != 0
}
