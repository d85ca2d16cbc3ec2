// Package attrjson defines the canonical JSON form of a profile's attributes,
// shared by the importer (which produces it) and the store (which merges and
// compares it). A canonical attribute object is minified, has its members
// sorted by name, holds only strings, numbers and booleans, writes numbers as
// plain decimals (no exponent, no "-0") and escapes strings minimally, the
// way PostgreSQL's jsonb prints them. Two canonical objects are equal exactly
// when their bytes are, which is how an import recognises unchanged profiles
// without writing them.
package attrjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Attribute value types, as the catalogue reports them.
const (
	TypeString  = "string"
	TypeNumber  = "number"
	TypeBoolean = "boolean"
	TypeDate    = "date"
)

// MaxNameLen is the longest attribute name.
const MaxNameLen = 64

// NamePattern documents ValidName; the segment compiler relies on it to build
// JSON paths safely.
const NamePattern = `^[A-Za-z_][A-Za-z0-9_]{0,63}$`

// ValidName reports whether s matches NamePattern.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// AppendString appends s as a canonical JSON string: NFC-normalised (so
// "e"+U+0301 and "é" are stored alike), only '"', '\\' and control characters
// escaped (\b \f \n \r \t or \u00xx); invalid UTF-8 and NUL become U+FFFD.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s, false) }

// appendString is AppendString; normalised says s is NFC already.
func appendString(dst []byte, s string, normalised bool) []byte {
	mark := len(dst)
	dst = append(dst, '"')
	start := 0
	checked := normalised
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf && !checked {
			checked = true
			if !norm.NFC.IsNormalString(s) {
				return appendString(dst[:mark], norm.NFC.String(s), true)
			}
		}
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case 0:
				// PostgreSQL's jsonb cannot hold \u0000.
				dst = append(dst, "\uFFFD"...)
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				const hex = "0123456789abcdef"
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendStringBytes is AppendString for a byte slice.
func AppendStringBytes(dst, s []byte) []byte {
	// The conversion does not escape to the heap for short-lived use.
	return AppendString(dst, string(s))
}

// CanonicalNumber returns the canonical form of a JSON number literal: plain
// decimals are kept as written (trailing zeros included, "-0" loses its
// sign); exponent forms are expanded. ok is false when s is not a JSON
// number or is out of float64 range.
func CanonicalNumber(s string) (string, bool) {
	if plainDecimal(s) {
		if s[0] == '-' && allZero(s[1:]) {
			return s[1:], true
		}
		return s, true
	}
	if !json.Valid([]byte(s)) || len(s) == 0 || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return "", false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return "", false
	}
	if f == 0 {
		return "0", true
	}
	return strconv.FormatFloat(f, 'f', -1, 64), true
}

// plainDecimal matches -?(0|[1-9][0-9]*)(\.[0-9]+)?
func plainDecimal(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return false
	}
	if s[i] == '0' {
		i++
	} else if s[i] >= '1' && s[i] <= '9' {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i == len(s) {
		return true
	}
	if s[i] != '.' {
		return false
	}
	i++
	if i == len(s) {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' && s[i] != '.' {
			return false
		}
	}
	return true
}

// IsPlainDecimal reports whether s is a number in the form CSV typing
// accepts: -?(0|[1-9][0-9]*)(\.[0-9]+)? (so "007" and "1e5" stay text).
func IsPlainDecimal(s string) bool { return plainDecimal(s) }

// NormalizeDate recognises an ISO-8601 date, YYYY-MM-DD, optionally followed
// by 'T' or ' ' and HH:MM[:SS[.fraction]] and a zone (Z, ±HH:MM, ±HHMM,
// ±HH; none means UTC). It returns "YYYY-MM-DD" for a plain date and
// "YYYY-MM-DDTHH:MM:SSZ" in UTC (fractions of a second dropped) for a date
// with a time, so dates of either form compare correctly as text.
func NormalizeDate(s string) (string, bool) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return "", false
	}
	y, ok1 := digits(s, 0, 4)
	mo, ok2 := digits(s, 5, 2)
	d, ok3 := digits(s, 8, 2)
	if !ok1 || !ok2 || !ok3 || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) {
		return "", false
	}
	if len(s) == 10 {
		return s, true
	}
	if s[10] != 'T' && s[10] != 't' && s[10] != ' ' {
		return "", false
	}
	rest := s[11:]
	if len(rest) < 5 || rest[2] != ':' {
		return "", false
	}
	h, ok1 := digits(rest, 0, 2)
	mi, ok2 := digits(rest, 3, 2)
	if !ok1 || !ok2 || h > 23 || mi > 59 {
		return "", false
	}
	sec := 0
	rest = rest[5:]
	if len(rest) >= 3 && rest[0] == ':' {
		v, ok := digits(rest, 1, 2)
		if !ok || v > 59 {
			return "", false
		}
		sec = v
		rest = rest[3:]
		if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
			j := 1
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			if j == 1 {
				return "", false
			}
			rest = rest[j:]
		}
	}
	offset := 0
	switch {
	case rest == "" || rest == "Z" || rest == "z":
	case rest[0] == '+' || rest[0] == '-':
		z := rest[1:]
		var oh, om int
		var ok bool
		switch len(z) {
		case 2:
			oh, ok = digits(z, 0, 2)
		case 4:
			oh, ok = digits(z, 0, 2)
			if ok {
				om, ok = digits(z, 2, 2)
			}
		case 5:
			if z[2] != ':' {
				return "", false
			}
			oh, ok = digits(z, 0, 2)
			if ok {
				om, ok = digits(z, 3, 2)
			}
		}
		if !ok || oh > 23 || om > 59 {
			return "", false
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return "", false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC).Add(-time.Duration(offset) * time.Second)
	return t.Format("2006-01-02T15:04:05Z"), true
}

func digits(s string, at, n int) (int, bool) {
	if at+n > len(s) {
		return 0, false
	}
	v := 0
	for i := at; i < at+n; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// isCanonicalDate reports whether s is a date in NormalizeDate's output form.
func isCanonicalDate(s []byte) bool {
	if len(s) != 10 && len(s) != 20 {
		return false
	}
	// The separators first: most strings of these lengths are not dates.
	if s[4] != '-' || s[7] != '-' || len(s) == 20 && (s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z') {
		return false
	}
	n, ok := NormalizeDate(string(s))
	return ok && n == string(s)
}

// TypeOf names the type of a canonical scalar value.
func TypeOf(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		if isCanonicalDate(raw[1 : len(raw)-1]) {
			return TypeDate
		}
		return TypeString
	case 't', 'f':
		return TypeBoolean
	case 'n':
		return ""
	}
	return TypeNumber
}

// Member is one name/value pair of an attribute object; both are slices of
// the source buffer or of a scratch buffer. Name is the raw (escaped) key
// without quotes; attribute names never need escaping.
type Member struct {
	Name  []byte
	Value []byte
}

// ErrNotObject is returned by Split for input that is not a JSON object.
var ErrNotObject = errors.New("not a JSON object")

// Split appends the members of the JSON object obj to dst, in document
// order. obj must be valid JSON (the caller checks with json.Valid when it
// does not know); nested values are returned raw.
func Split(dst []Member, obj []byte) ([]Member, error) {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return dst, ErrNotObject
	}
	i = skipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return dst, nil
	}
	for i < len(obj) {
		if obj[i] != '"' {
			return dst, fmt.Errorf("attrjson: expected a member name at offset %d", i)
		}
		end := skipString(obj, i)
		name := obj[i+1 : end-1]
		i = skipWS(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return dst, fmt.Errorf("attrjson: expected ':' at offset %d", i)
		}
		i = skipWS(obj, i+1)
		vend := skipValue(obj, i)
		dst = append(dst, Member{Name: name, Value: obj[i:vend]})
		i = skipWS(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipWS(obj, i+1)
			continue
		}
		if i < len(obj) && obj[i] == '}' {
			return dst, nil
		}
		return dst, fmt.Errorf("attrjson: expected ',' or '}' at offset %d", i)
	}
	return dst, fmt.Errorf("attrjson: unterminated object")
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the offset just past the string starting at b[i]=='"'.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// skipValue returns the offset just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// canonicalValue appends the canonical form of a scalar value read from a
// stored object (which another database may have re-printed).
func canonicalValue(dst, v []byte) ([]byte, error) {
	if len(v) == 0 {
		return dst, errors.New("attrjson: empty value")
	}
	switch v[0] {
	case '"':
		if bytes.IndexByte(v, '\\') < 0 {
			return append(dst, v...), nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return dst, fmt.Errorf("attrjson: bad string %s: %w", v, err)
		}
		return AppendString(dst, s), nil
	case 't', 'f', 'n':
		return append(dst, v...), nil
	case '{', '[':
		return append(dst, v...), nil
	}
	n, ok := CanonicalNumber(string(v))
	if !ok {
		return dst, fmt.Errorf("attrjson: bad number %s", v)
	}
	return append(dst, n...), nil
}

// Merger merges attribute objects, reusing its buffers between calls. The
// zero value is ready; a Merger is not safe for concurrent use.
type Merger struct {
	old, patch []Member
	oldBuf     []byte
	offs       []int
	outOld     []byte
	out        []byte
}

func cmpMember(a, b Member) int { return bytes.Compare(a.Name, b.Name) }

// Canonical returns the canonical form of the stored object old (members
// sorted, values canonical). The result is valid until the next call.
func (m *Merger) Canonical(old []byte) ([]byte, error) {
	if err := m.loadOld(old); err != nil {
		return nil, err
	}
	m.outOld = encode(m.outOld[:0], m.old)
	return m.outOld, nil
}

func (m *Merger) loadOld(old []byte) error {
	var err error
	m.old, err = Split(m.old[:0], old)
	if err != nil {
		return err
	}
	// Canonicalise values into one scratch buffer, then point members at it
	// (the buffer may move while it grows).
	m.oldBuf = m.oldBuf[:0]
	m.offs = m.offs[:0]
	needSort := false
	for i := range m.old {
		if i > 0 && bytes.Compare(m.old[i-1].Name, m.old[i].Name) >= 0 {
			needSort = true
		}
		m.offs = append(m.offs, len(m.oldBuf))
		m.oldBuf, err = canonicalValue(m.oldBuf, m.old[i].Value)
		if err != nil {
			return err
		}
	}
	m.offs = append(m.offs, len(m.oldBuf))
	for i := range m.old {
		m.old[i].Value = m.oldBuf[m.offs[i]:m.offs[i+1]]
	}
	if needSort {
		// Of repeated names the last wins, as in a patch and in jsonb.
		slices.SortStableFunc(m.old, cmpMember)
		kept := m.old[:0]
		for i, mem := range m.old {
			if i+1 < len(m.old) && bytes.Equal(m.old[i+1].Name, mem.Name) {
				continue
			}
			kept = append(kept, mem)
		}
		m.old = kept
	}
	return nil
}

// Change is how one attribute's type changed in a merge: Old or New is ""
// when the attribute was absent on that side.
type Change struct {
	Name     []byte
	Old, New string
}

// Merge applies patch (an object whose null members delete attributes) to
// the stored object old (nil or empty for a new profile) and returns the
// merged canonical object and whether it differs from old. For a changed
// object, onType (when not nil) is called for every attribute whose presence
// or type differs, so the caller can keep a catalogue of types. The result
// is valid until the next call.
func (m *Merger) Merge(old, patch []byte, onType func(Change)) (merged []byte, changed bool, err error) {
	m.old = m.old[:0]
	if len(old) > 0 {
		if err := m.loadOld(old); err != nil {
			return nil, false, fmt.Errorf("stored attributes: %w", err)
		}
	}
	m.patch, err = Split(m.patch[:0], patch)
	if err != nil {
		return nil, false, fmt.Errorf("attribute patch: %w", err)
	}
	if !slices.IsSortedFunc(m.patch, cmpMember) {
		slices.SortStableFunc(m.patch, cmpMember)
	}
	if len(m.old) == 0 {
		return m.create(patch, onType)
	}
	out := append(m.out[:0], '{')
	first := true
	emit := func(mem Member) {
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, '"')
		out = append(out, mem.Name...)
		out = append(out, '"', ':')
		out = append(out, mem.Value...)
	}
	i, j := 0, 0
	for i < len(m.old) || j < len(m.patch) {
		var c int
		switch {
		case i == len(m.old):
			c = 1
		case j == len(m.patch):
			c = -1
		default:
			c = bytes.Compare(m.old[i].Name, m.patch[j].Name)
		}
		switch {
		case c < 0:
			emit(m.old[i])
			i++
		case c > 0:
			p := m.patch[j]
			j++
			if j < len(m.patch) && bytes.Equal(m.patch[j].Name, p.Name) {
				continue // a later member of the same name wins
			}
			if isNull(p.Value) {
				continue
			}
			emit(p)
			changed = true
		default:
			p := m.patch[j]
			j++
			if j < len(m.patch) && bytes.Equal(m.patch[j].Name, p.Name) {
				continue
			}
			if isNull(p.Value) {
				changed = true
			} else {
				if !bytes.Equal(m.old[i].Value, p.Value) {
					changed = true
				}
				emit(p)
			}
			i++
		}
	}
	out = append(out, '}')
	m.out = out
	if changed && onType != nil {
		m.diffTypes(onType)
	}
	return out, changed, nil
}

// create is Merge for a profile without attributes: the patch minus its
// nulls (and repeated names), every attribute new.
func (m *Merger) create(patch []byte, onType func(Change)) ([]byte, bool, error) {
	out := append(m.out[:0], '{')
	for i, p := range m.patch {
		if isNull(p.Value) || (i+1 < len(m.patch) && bytes.Equal(m.patch[i+1].Name, p.Name)) {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, p.Name...)
		out = append(out, '"', ':')
		out = append(out, p.Value...)
		if onType != nil {
			onType(Change{Name: p.Name, New: TypeOf(p.Value)})
		}
	}
	out = append(out, '}')
	m.out = out
	return out, len(out) > 2, nil
}

// diffTypes reports type changes between m.old and the merged output.
func (m *Merger) diffTypes(onType func(Change)) {
	var merged []Member
	merged, _ = Split(m.patch[:0], m.out) // patch members are no longer needed
	i, j := 0, 0
	for i < len(m.old) || j < len(merged) {
		var c int
		switch {
		case i == len(m.old):
			c = 1
		case j == len(merged):
			c = -1
		default:
			c = bytes.Compare(m.old[i].Name, merged[j].Name)
		}
		switch {
		case c < 0:
			onType(Change{Name: m.old[i].Name, Old: TypeOf(m.old[i].Value)})
			i++
		case c > 0:
			onType(Change{Name: merged[j].Name, New: TypeOf(merged[j].Value)})
			j++
		default:
			ot, nt := TypeOf(m.old[i].Value), TypeOf(merged[j].Value)
			if ot != nt {
				onType(Change{Name: merged[j].Name, Old: ot, New: nt})
			}
			i++
			j++
		}
	}
	m.patch = merged[:0]
}

// Types calls fn with the name and type of every member of a canonical
// object (used when a profile is deleted).
func Types(obj []byte, fn func(name []byte, typ string)) error {
	var arr [32]Member
	mm, err := Split(arr[:0], obj)
	if err != nil {
		return err
	}
	var buf []byte
	for _, x := range mm {
		v := x.Value
		// A string with escapes, re-printed by another database, may be
		// a date in canonical form; every other value's type is its
		// first byte's (or the date check of its plain text).
		if len(v) > 0 && v[0] == '"' && bytes.IndexByte(v, '\\') >= 0 {
			if buf, err = canonicalValue(buf[:0], v); err != nil {
				return err
			}
			v = buf
		}
		fn(x.Name, TypeOf(v))
	}
	return nil
}

func isNull(v []byte) bool { return len(v) == 4 && string(v) == "null" }

func encode(dst []byte, mm []Member) []byte {
	dst = append(dst, '{')
	for i, x := range mm {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, x.Name...)
		dst = append(dst, '"', ':')
		dst = append(dst, x.Value...)
	}
	return append(dst, '}')
}
