package attrjson

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Find returns the raw value of the member called name, or nil when the
// object has none.
func Find(mm []Member, name string) []byte {
	for _, m := range mm {
		if string(m.Name) == name {
			return m.Value
		}
	}
	return nil
}

// StringValue returns the text of a raw JSON string value; ok is false for
// any other value (absent, null, a number, a boolean, an object, an array)
// and for a string that does not decode.
func StringValue(raw []byte) (s string, ok bool) {
	b, ok := StringBytes(raw)
	return string(b), ok
}

// StringBytes is StringValue as bytes: for a string without escapes (most
// of them) a slice of raw itself, so that reading a value allocates
// nothing.
func StringBytes(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	// Without an escape, a (valid UTF-8) JSON string is its text.
	if in := raw[1 : len(raw)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return in, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}
