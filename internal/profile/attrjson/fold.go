package attrjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/segsync/segsync/internal/textfold"
)

// FoldShadow returns the folded shadow of a canonical attribute object: an
// object holding, for each string attribute whose value has a byte outside
// ASCII, textfold.Fold of that value; nil when there is no such attribute.
// The store keeps it beside the attributes (profiles.attrs_fold) and
// segment rules read it instead of folding every row: an ASCII value folds
// by ASCII lowering, which every database has, so only the other values
// need their fold stored. Canonical strings never escape a rune outside
// ASCII, so an ASCII-only object, the common case, is recognised by one
// byte scan and costs no allocation.
func FoldShadow(obj []byte) ([]byte, error) {
	if asciiOnly(obj) {
		return nil, nil
	}
	var arr [32]Member
	mm, err := Split(arr[:0], obj)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, m := range mm {
		v := m.Value
		if len(v) < 2 || v[0] != '"' || asciiOnly(v) {
			continue
		}
		s := string(v[1 : len(v)-1])
		if bytes.IndexByte(v, '\\') >= 0 {
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("attrjson: bad string %s: %w", v, err)
			}
		}
		if out == nil {
			out = append(make([]byte, 0, len(obj)), '{')
		} else {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, m.Name...)
		out = append(out, '"', ':')
		out = AppendString(out, textfold.Fold(s))
	}
	if out == nil {
		return nil, nil
	}
	return append(out, '}'), nil
}

func asciiOnly(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
