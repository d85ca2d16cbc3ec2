// Package jsonenc appends JSON exactly as encoding/json's Marshal writes
// it, without its reflection, for the few values segsync encodes by the
// million (request bodies of a first export, create intents, fields
// hashes). Whatever its fast paths do not cover is encoded by json.Marshal
// itself, so the bytes are always Marshal's.
package jsonenc

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
)

// String appends s as json.Marshal encodes a string: a printable ASCII
// string without quotes, backslashes or HTML's <, > and & is its own text;
// anything else is json.Marshal's.
func String(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plain[s[i]] {
			enc, _ := json.Marshal(s)
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plain marks the bytes json.Marshal writes as they are: printable ASCII
// but quotes, backslashes and HTML's <, > and &. A table, not a chain of
// comparisons: String reads every byte of a million addresses in a first
// export.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`"\<>&`, rune(c))
	}
	return t
}()

// Strings appends ss as json.Marshal encodes a non-nil []string.
func Strings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = String(b, s)
	}
	return append(b, ']')
}

// Value appends v as json.Marshal encodes it; err is json.Marshal's when it
// fails on v (NaN, say).
func Value(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return String(b, x), nil
	case float64:
		// json.Marshal writes these with 'f' and the shortest digits; other
		// magnitudes take its exponent form, and NaN or infinities fail.
		if a := math.Abs(x); a == 0 || (a >= 1e-6 && a < 1e21) {
			return strconv.AppendFloat(b, x, 'f', -1, 64), nil
		}
	}
	enc, err := json.Marshal(v)
	return append(b, enc...), err
}

// Map appends m as json.Marshal encodes it (keys sorted); err is
// json.Marshal's when it fails on a value.
func Map(b []byte, m map[string]any) ([]byte, error) {
	var keys [16]string
	ks := keys[:0]
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	b = append(b, '{')
	for i, k := range ks {
		if i > 0 {
			b = append(b, ',')
		}
		b = String(b, k)
		b = append(b, ':')
		var err error
		if b, err = Value(b, m[k]); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}
