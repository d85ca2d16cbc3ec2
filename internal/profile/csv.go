package profile

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
)

// Limits that keep a broken file from holding unbounded memory.
const (
	// MaxLineBytes is the longest physical line accepted.
	MaxLineBytes = 1 << 20
	// MaxRecordBytes is the largest CSV record (quoted fields may span lines).
	MaxRecordBytes = 1 << 20
	// MaxRecordLines is how many lines one CSV record may span; beyond it an
	// open quote is reported as unterminated and the lines after the record's
	// first are parsed again as records of their own.
	MaxRecordLines = 200
	// MaxKeyBytes is the longest customer id.
	MaxKeyBytes = 255
)

// record is one data row, parsed: its customer id and its attributes as a
// canonical attrjson object, or the reason it is rejected (with the key when
// it could still be read). Slices are valid until the next read.
type record struct {
	line   int64
	key    []byte
	attrs  []byte
	reason string
}

// rowReader reads data rows. next returns io.EOF at the end; other errors are
// fatal (the input could not be read).
type rowReader interface {
	next(rec *record) error
}

// csvReader is a streaming RFC 4180 reader: quoted fields may hold commas,
// doubled quotes and line breaks; unquoted fields are trimmed of spaces; a
// bad record is reported with its first line number and the reader carries
// on with the next one.
type csvReader struct {
	ls     *lineSource
	names  []string // header, by column
	order  []int    // columns sorted by name
	keyCol int

	buf    []byte // field contents
	ends   []int  // end offset of each field in buf
	quoted []bool
	cont   []numberedLine // owned copies of continuation lines
	attrs  []byte
}

// newCSVReader reads the header row and checks it: every column named
// validly and once, and the key among them. Header faults are ErrInvalid.
func newCSVReader(r io.Reader, key string) (*csvReader, error) {
	c := &csvReader{ls: newLineSource(r, MaxLineBytes)}
	var line int64
	var reason string
	var err error
	for {
		line, reason, err = c.readRecord()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: the CSV input is empty: expected a header row", store.ErrInvalid)
		}
		if err != nil {
			return nil, err
		}
		if reason != "" {
			return nil, fmt.Errorf("%w: CSV header (line %d): %s", store.ErrInvalid, line, reason)
		}
		if len(c.ends) > 0 {
			break
		}
	}
	c.keyCol = -1
	seen := map[string]bool{}
	for i := range c.ends {
		name := strings.TrimSpace(string(c.field(i)))
		if i == 0 {
			name = strings.TrimPrefix(name, "\uFEFF")
		}
		switch {
		case name == "":
			return nil, fmt.Errorf("%w: CSV header (line %d): column %d has no name", store.ErrInvalid, line, i+1)
		case attrjson.Reserved(name):
			return nil, fmt.Errorf("%w: CSV header (line %d): column %d: the name %q is reserved (%s… attributes are written by segsync from Mailchimp)", store.ErrInvalid, line, i+1, name, attrjson.ReservedPrefix)
		case !attrjson.ValidName(name):
			return nil, fmt.Errorf("%w: CSV header (line %d): invalid attribute name %q in column %d (names match %s)", store.ErrInvalid, line, name, i+1, attrjson.NamePattern)
		case seen[name]:
			return nil, fmt.Errorf("%w: CSV header (line %d): column %q appears twice", store.ErrInvalid, line, name)
		}
		seen[name] = true
		if name == key {
			c.keyCol = i
		}
		c.names = append(c.names, name)
	}
	if c.keyCol < 0 {
		return nil, fmt.Errorf("%w: CSV header (line %d): no column named %q (the key)", store.ErrInvalid, line, key)
	}
	c.order = make([]int, len(c.names))
	for i := range c.order {
		c.order[i] = i
	}
	slices.SortFunc(c.order, func(a, b int) int { return strings.Compare(c.names[a], c.names[b]) })
	return c, nil
}

func (c *csvReader) field(i int) []byte {
	start := 0
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.buf[start:c.ends[i]]
}

func (c *csvReader) next(rec *record) error {
	for {
		line, reason, err := c.readRecord()
		if err != nil {
			return err
		}
		*rec = record{line: line, reason: reason}
		if reason != "" {
			if c.keyCol < len(c.ends) && c.names != nil {
				rec.key = c.cell(c.keyCol)
			}
			return nil
		}
		if len(c.ends) == 0 {
			continue // blank line
		}
		if len(c.ends) != len(c.names) {
			rec.reason = fmt.Sprintf("wrong number of fields: %d, the header has %d", len(c.ends), len(c.names))
			if len(c.cont) > 0 {
				rec.reason += fmt.Sprintf(" (the record spans lines %d-%d)", line, c.cont[len(c.cont)-1].num)
			}
			if c.keyCol < len(c.ends) {
				rec.key = c.cell(c.keyCol)
			}
			return nil
		}
		c.build(rec)
		return nil
	}
}

// cell is field i, trimmed of spaces unless it was quoted.
func (c *csvReader) cell(i int) []byte {
	f := c.field(i)
	if !c.quoted[i] {
		f = bytes.TrimSpace(f)
	}
	return f
}

// build types the cells of a complete record into rec.
func (c *csvReader) build(rec *record) {
	key := c.cell(c.keyCol)
	if reason := checkKey(key); reason != "" {
		rec.reason = fmt.Sprintf("%s (column %q)", reason, c.names[c.keyCol])
		return
	}
	rec.key = key
	a := append(c.attrs[:0], '{')
	for _, i := range c.order {
		v := c.cell(i)
		if len(v) == 0 {
			continue // empty cells are absent
		}
		if len(a) > 1 {
			a = append(a, ',')
		}
		a = append(a, '"')
		a = append(a, c.names[i]...)
		a = append(a, '"', ':')
		a = appendTyped(a, v)
	}
	c.attrs = append(a, '}')
	rec.attrs = c.attrs
}

// checkKey returns why key cannot be a customer id, or "".
func checkKey(key []byte) string {
	switch {
	case len(key) == 0:
		return "missing key"
	case len(key) > MaxKeyBytes:
		return fmt.Sprintf("key longer than %d bytes", MaxKeyBytes)
	case !utf8.Valid(key):
		return "key is not valid UTF-8"
	case bytes.IndexByte(key, 0) >= 0:
		return "key contains a NUL byte"
	}
	return ""
}

// appendTyped appends a CSV cell as a canonical JSON value: plain decimals
// are numbers, true/false (any case) booleans, ISO-8601 dates normalised
// date strings, anything else a string.
func appendTyped(dst, v []byte) []byte {
	s := string(v) // does not escape: the compiler keeps it on the stack for short cells
	if attrjson.IsPlainDecimal(s) {
		n, _ := attrjson.CanonicalNumber(s)
		return append(dst, n...)
	}
	switch len(v) {
	case 4:
		if strings.EqualFold(s, "true") {
			return append(dst, "true"...)
		}
	case 5:
		if strings.EqualFold(s, "false") {
			return append(dst, "false"...)
		}
	}
	if len(v) >= 10 && v[4] == '-' {
		if d, ok := attrjson.NormalizeDate(s); ok {
			return attrjson.AppendString(dst, d)
		}
	}
	return attrjson.AppendString(dst, s)
}

// readRecord reads the fields of the next record into c.buf/c.ends. A blank
// line gives no fields. A malformed record gives a reason; the reader has
// then moved past it (for an unterminated quote, only past its first line).
func (c *csvReader) readRecord() (start int64, reason string, err error) {
	c.buf, c.ends, c.quoted, c.cont = c.buf[:0], c.ends[:0], c.quoted[:0], c.cont[:0]
	text, num, tooLong, err := c.ls.next()
	if err != nil {
		return 0, "", err
	}
	start = num
	if tooLong {
		return start, fmt.Sprintf("line longer than %d bytes", MaxLineBytes), nil
	}
	if isBlank(text) {
		return start, "", nil
	}
	content := trimEOL(text)
	pos := 0
	for {
		if pos < len(content) && content[pos] == '"' {
			// Quoted field: runs to the next lone quote, maybe lines later.
			pos++
			for {
				i := bytes.IndexByte(content[pos:], '"')
				if i < 0 {
					c.buf = append(c.buf, content[pos:]...)
					c.buf = append(c.buf, text[len(content):]...) // the line break is data
					var more bool
					text, content, more, err = c.continueLine()
					if err != nil {
						return 0, "", err
					}
					if !more || len(c.buf) > MaxRecordBytes || len(c.cont) >= MaxRecordLines {
						where := "before the end of the input"
						if more || len(c.cont) > 0 && c.cont[len(c.cont)-1].tooLong {
							where = fmt.Sprintf("within %d lines or %d bytes", len(c.cont), MaxRecordBytes)
						}
						n := len(c.ends) + 1
						c.giveUp()
						return start, fmt.Sprintf("unterminated quoted field %d: no closing quote %s; the lines after this one are read again as rows", n, where), nil
					}
					pos = 0
					continue
				}
				c.buf = append(c.buf, content[pos:pos+i]...)
				pos += i + 1
				if pos < len(content) && content[pos] == '"' {
					c.buf = append(c.buf, '"')
					pos++
					continue
				}
				break
			}
			c.ends = append(c.ends, len(c.buf))
			c.quoted = append(c.quoted, true)
			if pos == len(content) {
				return start, "", nil
			}
			if content[pos] != ',' {
				n := len(c.ends)
				reason := fmt.Sprintf("unexpected text after the closing quote of field %d", n)
				if len(c.cont) > 0 {
					// Most likely a stray quote swallowed the lines that
					// followed: report it and read them again as rows.
					reason += fmt.Sprintf(" (a quoted field opened on line %d closes on line %d; the lines after this one are read again as rows)", start, c.cont[len(c.cont)-1].num)
				}
				c.giveUp()
				return start, reason, nil
			}
			pos++
			continue
		}
		i := bytes.IndexByte(content[pos:], ',')
		if i < 0 {
			c.buf = append(c.buf, content[pos:]...)
			c.ends = append(c.ends, len(c.buf))
			c.quoted = append(c.quoted, false)
			return start, "", nil
		}
		c.buf = append(c.buf, content[pos:pos+i]...)
		c.ends = append(c.ends, len(c.buf))
		c.quoted = append(c.quoted, false)
		pos += i + 1
		if pos == len(content) {
			// A trailing comma ends the record with an empty field.
			c.ends = append(c.ends, len(c.buf))
			c.quoted = append(c.quoted, false)
			return start, "", nil
		}
	}
}

// giveUp drops the current record and queues its continuation lines to be
// parsed again.
// The fields read before the fault stay, so the row's key can still be
// known.
func (c *csvReader) giveUp() {
	c.ls.pushBack(c.cont)
}

// continueLine reads the next line of a multi-line record, keeping an owned
// copy in case the record has to be given up. more is false at the end of
// the input or on a line too long to belong to a record.
func (c *csvReader) continueLine() (text, content []byte, more bool, err error) {
	t, num, tooLong, err := c.ls.next()
	if err == io.EOF {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	if tooLong {
		// Give the record up; the long line is reported on its own.
		c.cont = append(c.cont, numberedLine{num: num, tooLong: true})
		return nil, nil, false, nil
	}
	owned := append([]byte(nil), t...)
	c.cont = append(c.cont, numberedLine{num: num, text: owned})
	return owned, trimEOL(owned), true, nil
}
