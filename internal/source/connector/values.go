package connector

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/segsync/segsync/internal/profile/attrjson"
)

// appendValue appends the canonical JSON value of a column's text as its
// type says; a value that does not fit the type is kept as a string.
func appendValue(dst []byte, typ string, text []byte) []byte {
	switch typ {
	case TypeNumber:
		if n, ok := attrjson.CanonicalNumber(string(text)); ok {
			return append(dst, n...)
		}
	case TypeBoolean:
		switch string(text) {
		case "t", "true", "TRUE", "1", "\x01":
			return append(dst, "true"...)
		case "f", "false", "FALSE", "0", "\x00":
			return append(dst, "false"...)
		}
	case TypeDate:
		if d, ok := attrjson.NormalizeDate(string(text)); ok {
			return attrjson.AppendString(dst, d)
		}
	}
	return attrjson.AppendStringBytes(dst, text)
}

// jsonValue decodes a canonical value for display.
func jsonValue(v []byte) any {
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return string(v)
	}
	return x
}

// mark is a high-water mark: the largest cursor value read, typed.
type mark struct {
	Type  string `json:"t"`
	Value string `json:"v"`
}

// encodeMark returns a Mark for a cursor value given as canonical JSON.
func encodeMark(typ string, value []byte) string {
	var v any
	_ = json.Unmarshal(value, &v)
	s := ""
	switch x := v.(type) {
	case string:
		s = x
	case float64:
		s = string(value)
	case bool:
		s = strconv.FormatBool(x)
	}
	b, _ := json.Marshal(mark{Type: typ, Value: s})
	return string(b)
}

func decodeMark(s string) (mark, bool) {
	var m mark
	if s == "" || json.Unmarshal([]byte(s), &m) != nil || m.Value == "" {
		return m, false
	}
	return m, true
}

// greater compares two cursor values of one type: a > b.
func greater(typ string, a, b []byte) bool {
	if typ == TypeNumber {
		x, err1 := strconv.ParseFloat(string(a), 64)
		y, err2 := strconv.ParseFloat(string(b), 64)
		if err1 == nil && err2 == nil {
			return x > y
		}
	}
	if typ == TypeDate {
		var sa, sb string
		_ = json.Unmarshal(a, &sa)
		_ = json.Unmarshal(b, &sb)
		ta, e1 := parseDate(sa)
		tb, e2 := parseDate(sb)
		if e1 == nil && e2 == nil {
			return ta.After(tb)
		}
	}
	return string(a) > string(b)
}

func parseDate(s string) (time.Time, error) {
	if len(s) == 10 {
		return time.Parse(time.DateOnly, s)
	}
	return time.Parse(time.RFC3339, s)
}
