package syncer

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"

	"github.com/segsync/segsync/internal/jsonenc"
)

// fieldOrder returns the places of specs in the order of their merge tags,
// of a tag given twice the last place only: the order in which json.Marshal
// writes a map of the tags (keys sorted, a later value replacing an
// earlier one).
func fieldOrder(specs []fieldSpec) []int {
	order := make([]int, 0, len(specs))
	for i := range specs {
		order = append(order, i)
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(specs[a].tag, specs[b].tag) })
	out := order[:0]
	for k, i := range order {
		if k+1 < len(order) && specs[order[k+1]].tag == specs[i].tag {
			continue
		}
		out = append(out, i)
	}
	return out
}

// mapFields converts the mapped attributes (values[i] is specs[i]'s) to
// merge values and encodes them, in order (fieldOrder), as json.Marshal
// encodes a map of them: what a create or a bulk update sends, and the
// bytes of the fields hash (synced.fields_hash), which must not change: the
// first 16 bytes of their SHA-256, in hex. A contact keeps these bytes
// instead of a map (a third of a first export's allocations went to those
// maps and to encoding them again for the calls). empty says some value
// is "" (a missing or unconvertible value, which clears the field).
// convert gives strings and finite numbers, which always encode; if one
// did not, the hash would be of nothing, as json.Marshal's failure made it.
func mapFields(values []any, specs []fieldSpec, order []int) (enc json.RawMessage, empty bool, hash string) {
	var buf [512]byte
	b := append(buf[:0], '{')
	for k, i := range order {
		v := convert(values[i], specs[i].typ)
		empty = empty || v == ""
		if k > 0 {
			b = append(b, ',')
		}
		b = jsonenc.String(b, specs[i].tag)
		b = append(b, ':')
		var err error
		if b, err = jsonenc.Value(b, v); err != nil {
			return nil, empty, hash16(nil)
		}
	}
	b = append(b, '}')
	return bytes.Clone(b), empty, hash16(b)
}

// hash16 is the hex of the first 16 bytes of b's SHA-256.
func hash16(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
