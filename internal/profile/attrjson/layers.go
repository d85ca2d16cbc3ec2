package attrjson

import (
	"bytes"
	"fmt"
	"slices"
)

// ReservedPrefix starts the names of attributes that segsync itself keeps
// on profiles (Mailchimp's statuses, SPEC section 12): no source or import
// sets them, and merging sources keeps them as they are.
const ReservedPrefix = "mailchimp."

// IsReserved reports whether an attribute name is reserved for segsync.
func IsReserved(name []byte) bool { return bytes.HasPrefix(name, []byte(ReservedPrefix)) }

// MergeLayers merges canonical attribute objects, highest priority first:
// each attribute comes from the first layer that has it. The reserved
// attributes of keep (the profile's stored object) are carried over; no
// layer's reserved attributes are taken. It returns the merged canonical
// object and, for each attribute, the index of the layer it came from (-1
// for carried-over reserved attributes), in the object's order.
func MergeLayers(keep []byte, layers [][]byte) (merged []byte, from []int, err error) {
	type member struct {
		Member
		layer int
	}
	var all []member
	var mm []Member
	seen := map[string]bool{}
	for i, l := range layers {
		if mm, err = Split(mm[:0], l); err != nil {
			return nil, nil, fmt.Errorf("layer %d: %w", i, err)
		}
		for _, m := range mm {
			if IsReserved(m.Name) || seen[string(m.Name)] {
				continue
			}
			seen[string(m.Name)] = true
			all = append(all, member{m, i})
		}
	}
	if len(keep) > 0 {
		if mm, err = Split(mm[:0], keep); err != nil {
			return nil, nil, fmt.Errorf("stored attributes: %w", err)
		}
		for _, m := range mm {
			if IsReserved(m.Name) {
				all = append(all, member{m, -1})
			}
		}
	}
	slices.SortFunc(all, func(a, b member) int { return bytes.Compare(a.Name, b.Name) })
	out := make([]Member, len(all))
	from = make([]int, len(all))
	for i, m := range all {
		out[i], from[i] = m.Member, m.layer
	}
	return encode(nil, out), from, nil
}

// OnlyReserved reports whether obj holds reserved attributes only (or none).
func OnlyReserved(obj []byte) bool {
	mm, err := Split(nil, obj)
	if err != nil {
		return false
	}
	for _, m := range mm {
		if !IsReserved(m.Name) {
			return false
		}
	}
	return true
}

// Object encodes members (canonical values, valid names, distinct) as a
// canonical object; it sorts mm by name.
func Object(mm []Member) []byte {
	slices.SortFunc(mm, func(a, b Member) int { return bytes.Compare(a.Name, b.Name) })
	return encode(nil, mm)
}
