package attrjson

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
)

// isReserved is Reserved for a raw member name.
func isReserved(name []byte) bool { return bytes.HasPrefix(name, []byte(ReservedPrefix)) }

// reservedMark is how a reserved member's name starts in an object.
var reservedMark = []byte(`"` + ReservedPrefix)

// MergeLayers merges canonical attribute objects, highest priority first:
// each attribute comes from the first layer that has it. No layer's
// reserved attributes are taken (sources and imports refuse them; Mailchimp's
// statuses live apart, in the store's profile_statuses). It returns the
// merged canonical object.
func MergeLayers(layers [][]byte) ([]byte, error) {
	// The common case, a profile fed by one source: that layer is the
	// profile (a canonical object).
	if len(layers) == 1 && !bytes.Contains(layers[0], reservedMark) {
		return bytes.Clone(layers[0]), nil
	}
	type member struct {
		Member
		layer int
	}
	var all []member
	var mm []Member
	var err error
	for i, l := range layers {
		if mm, err = Split(mm[:0], l); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		for _, m := range mm {
			if !isReserved(m.Name) {
				all = append(all, member{m, i})
			}
		}
	}
	// By name, then by layer: the first of each name wins.
	slices.SortFunc(all, func(a, b member) int {
		return cmp.Or(bytes.Compare(a.Name, b.Name), cmp.Compare(a.layer, b.layer))
	})
	out := make([]Member, 0, len(all))
	for i, m := range all {
		if i == 0 || !bytes.Equal(m.Name, all[i-1].Name) {
			out = append(out, m.Member)
		}
	}
	return encode(nil, out), nil
}

// Object encodes members (canonical values, valid names, distinct) as a
// canonical object; it sorts mm by name.
func Object(mm []Member) []byte { return AppendObject(nil, mm) }

// AppendObject is Object appending to dst.
func AppendObject(dst []byte, mm []Member) []byte {
	slices.SortFunc(mm, func(a, b Member) int { return bytes.Compare(a.Name, b.Name) })
	return encode(dst, mm)
}

// AppendMembers encodes mm as an object in the order given, names and
// values as they are (AppendObject sorts them first), appending to dst.
func AppendMembers(dst []byte, mm []Member) []byte { return encode(dst, mm) }
