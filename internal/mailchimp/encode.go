package mailchimp

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
)

// AppendMergeFields appends merge values as json.Marshal encodes the map
// (keys sorted), byte for byte, without its reflection: a first export
// encodes a million of them for its batch bodies, and package syncer
// hashes the same bytes into every contact's stored fields hash, which
// must not change. Values its fast paths do not cover (any but plain
// ASCII strings and ordinary floats) are encoded by json.Marshal itself;
// err is json.Marshal's, when it fails on a value (NaN, say).
func AppendMergeFields(b []byte, fields map[string]any) ([]byte, error) {
	var keys [16]string
	ks := keys[:0]
	for k := range fields {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	b = append(b, '{')
	for i, k := range ks {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendJSONValue(b, fields[k]); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// appendJSONValue appends v as json.Marshal encodes it.
func appendJSONValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return appendJSONString(b, x), nil
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

// bodyAppender is a request body that encodes itself as json.Marshal
// would encode it, without reflection.
type bodyAppender interface {
	appendJSON(b []byte) ([]byte, error)
}

// batchBody is the body of a batch subscribe.
type batchBody struct {
	members        []BatchMember
	updateExisting bool
}

func (x batchBody) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"members":[`...)
	for i, m := range x.members {
		if i > 0 {
			b = append(b, ',')
		}
		if m.EmailType != "" || m.Language != "" || m.VIP != nil {
			enc, err := json.Marshal(m) // fields segsync does not send
			if err != nil {
				return b, err
			}
			b = append(b, enc...)
			continue
		}
		b = append(b, `{"email_address":`...)
		b = appendJSONString(b, m.EmailAddress)
		b = append(b, `,"status":`...)
		b = appendJSONString(b, m.Status)
		if len(m.MergeFields) > 0 {
			b = append(b, `,"merge_fields":`...)
			var err error
			if b, err = AppendMergeFields(b, m.MergeFields); err != nil {
				return b, err
			}
		}
		b = append(b, '}')
	}
	b = append(b, `],"update_existing":`...)
	return append(strconv.AppendBool(b, x.updateExisting), '}'), nil
}

// segmentBody is the body of a static segment's update: both arrays are
// present, empty rather than null.
type segmentBody struct{ add, remove []string }

func (x segmentBody) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"members_to_add":`...)
	b = appendJSONStrings(b, x.add)
	b = append(b, `,"members_to_remove":`...)
	return append(appendJSONStrings(b, x.remove), '}'), nil
}

func appendJSONStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}
