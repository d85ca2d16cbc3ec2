package profile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/segsync/segsync/internal/profile/attrjson"
)

// ndjsonReader reads one JSON object per line. Values keep their JSON types
// (strings that are ISO-8601 dates become normalised dates); null removes an
// attribute; nested objects and arrays are rejected.
type ndjsonReader struct {
	ls    *lineSource
	key   string
	mems  []attrjson.Member
	vals  []byte // canonical values of mems
	offs  []int
	attrs []byte
	keyb  []byte
}

func newNDJSONReader(r io.Reader, key string) *ndjsonReader {
	return &ndjsonReader{ls: newLineSource(r, MaxLineBytes), key: key}
}

func (n *ndjsonReader) next(rec *record) error {
	for {
		text, num, tooLong, err := n.ls.next()
		if err != nil {
			return err
		}
		*rec = record{line: num}
		if tooLong {
			rec.reason = fmt.Sprintf("line longer than %d bytes", MaxLineBytes)
			return nil
		}
		line := bytes.TrimSpace(text)
		if len(line) == 0 {
			continue
		}
		n.parse(rec, line)
		return nil
	}
}

func (n *ndjsonReader) parse(rec *record, line []byte) {
	if !json.Valid(line) {
		var v any
		err := json.Unmarshal(line, &v)
		rec.reason = fmt.Sprintf("bad JSON: %v", err)
		return
	}
	var err error
	n.mems, err = attrjson.Split(n.mems[:0], line)
	if err != nil {
		rec.reason = "not a JSON object"
		return
	}
	// Find the key first, so that a rejected row still names its profile.
	n.keyb = n.keyb[:0]
	keyFound := false
	for _, m := range n.mems {
		if name, _ := memberName(m.Name); name == n.key {
			keyFound = true
			n.keyb, rec.reason = keyValue(n.keyb[:0], m.Value)
		}
	}
	if !keyFound && rec.reason == "" {
		rec.reason = fmt.Sprintf("missing key (field %q)", n.key)
	}
	if rec.reason == "" {
		if reason := checkKey(n.keyb); reason != "" {
			rec.reason = fmt.Sprintf("%s (field %q)", reason, n.key)
		}
	}
	if rec.reason != "" {
		return
	}
	rec.key = n.keyb
	n.vals, n.offs = n.vals[:0], n.offs[:0]
	for i := range n.mems {
		m := &n.mems[i]
		name, ok := memberName(m.Name)
		if ok && attrjson.Reserved(name) {
			rec.reason = fmt.Sprintf("attribute %q: the name is reserved (%s… attributes are written by segsync from Mailchimp)", name, attrjson.ReservedPrefix)
			return
		}
		if !ok || !attrjson.ValidName(name) {
			rec.reason = fmt.Sprintf("invalid attribute name %q (names match %s)", name, attrjson.NamePattern)
			return
		}
		if len(name) != len(m.Name) {
			m.Name = []byte(name) // was escaped
		}
		n.offs = append(n.offs, len(n.vals))
		var reason string
		n.vals, reason = appendJSONValue(n.vals, m.Value)
		if reason != "" {
			rec.reason = fmt.Sprintf("attribute %q: %s", name, reason)
			return
		}
	}
	n.offs = append(n.offs, len(n.vals))
	for i := range n.mems {
		n.mems[i].Value = n.vals[n.offs[i]:n.offs[i+1]]
	}
	slices.SortStableFunc(n.mems, func(a, b attrjson.Member) int { return bytes.Compare(a.Name, b.Name) })
	a := append(n.attrs[:0], '{')
	for i, m := range n.mems {
		if i > 0 && bytes.Equal(n.mems[i-1].Name, m.Name) {
			rec.reason = fmt.Sprintf("attribute %q appears twice", m.Name)
			return
		}
		if i > 0 {
			a = append(a, ',')
		}
		a = append(a, '"')
		a = append(a, m.Name...)
		a = append(a, '"', ':')
		a = append(a, m.Value...)
	}
	n.attrs = append(a, '}')
	rec.attrs = n.attrs
}

// memberName unescapes a raw member name.
func memberName(raw []byte) (string, bool) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw), true
	}
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s); err != nil {
		return string(raw), false
	}
	return s, true
}

// keyValue returns the customer id held by a JSON value: a string or a
// number.
func keyValue(dst, v []byte) ([]byte, string) {
	switch v[0] {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return dst, "bad key string"
		}
		return append(dst, strings.TrimSpace(s)...), ""
	case 'n':
		return dst, "missing key (null)"
	case 't', 'f', '{', '[':
		return dst, "the key must be a string or a number"
	}
	num, ok := attrjson.CanonicalNumber(string(v))
	if !ok {
		return dst, "the key is not a usable number"
	}
	return append(dst, num...), ""
}

// appendJSONValue appends the canonical form of a JSON value from the input,
// or gives the reason it is not accepted.
func appendJSONValue(dst, v []byte) ([]byte, string) {
	switch v[0] {
	case '{', '[':
		return dst, "nested objects and arrays are not supported"
	case 't', 'f', 'n':
		return append(dst, v...), ""
	case '"':
		var s string
		if bytes.IndexByte(v, '\\') < 0 {
			s = string(v[1 : len(v)-1])
		} else if err := json.Unmarshal(v, &s); err != nil {
			return dst, "bad string"
		}
		if len(s) >= 10 && s[4] == '-' {
			if d, ok := attrjson.NormalizeDate(s); ok {
				return attrjson.AppendString(dst, d), ""
			}
		}
		return attrjson.AppendString(dst, s), ""
	}
	num, ok := attrjson.CanonicalNumber(string(v))
	if !ok {
		return dst, "number out of range"
	}
	return append(dst, num...), ""
}
