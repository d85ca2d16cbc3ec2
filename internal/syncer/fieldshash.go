package syncer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"
	"strconv"
)

// fieldsHash is the hash of a contact's merge values (what synced.fields_hash
// holds): the first 16 bytes of the SHA-256 of their JSON as json.Marshal
// writes a map (keys sorted). It is written here without reflection (half
// of mapFields' CPU in a 1M first run went to json.Marshal), byte for byte
// as json.Marshal would, or every stored hash would change and every
// contact be updated again: values that its fast paths do not cover (any
// but plain ASCII strings and ordinary floats) are encoded by json.Marshal
// itself.
func fieldsHash(fields map[string]any) string {
	var keys [16]string
	ks := keys[:0]
	for k := range fields {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	var buf [512]byte
	b := append(buf[:0], '{')
	for i, k := range ks {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		var ok bool
		if b, ok = appendJSONValue(b, fields[k]); !ok {
			return hash16(nil) // json.Marshal failed, and the hash was of nothing
		}
	}
	return hash16(append(b, '}'))
}

// hash16 is the hex of the first 16 bytes of b's SHA-256.
func hash16(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// appendJSONValue appends v as json.Marshal encodes it; !ok when
// json.Marshal fails on it.
func appendJSONValue(b []byte, v any) (_ []byte, ok bool) {
	switch x := v.(type) {
	case string:
		return appendJSONString(b, x), true
	case float64:
		// json.Marshal writes these with 'f' and the shortest digits; other
		// magnitudes take its exponent form, and NaN or infinities fail.
		if a := math.Abs(x); a == 0 || (a >= 1e-6 && a < 1e21) {
			return strconv.AppendFloat(b, x, 'f', -1, 64), true
		}
	}
	enc, err := json.Marshal(v)
	return append(b, enc...), err == nil
}

// appendJSONString appends s as json.Marshal encodes a string: a printable
// ASCII string without quotes, backslashes or HTML's <, > and & is its own
// text; anything else is json.Marshal's.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s)
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
