package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
)

// Source reads segments and streams their members; *sqldb.DB implements it.
type Source interface {
	GetSegment(ctx context.Context, id int64) (store.Segment, error)
	// StreamMembersByHash streams the profiles matching any of rules in
	// ascending subscriber-hash order of attribute emailAttr, with bit i of
	// Segments set for rules[i] and at least the attributes names in Attrs
	// (see store.SegmentStore).
	StreamMembersByHash(ctx context.Context, rules []*segment.Rule, emailAttr string, names []string, fn func(store.HashedMember) error) error
}

// desiredContact is one Mailchimp contact the export wants: the merge of
// every profile with the same address.
type desiredContact struct {
	hash       string
	email      string
	customerID string
	updatedAt  time.Time
	// fields are the merge values (tag -> value converted to the merge
	// field's type) as mapFields encodes them; fieldsEmpty says one is "".
	fields      json.RawMessage
	fieldsEmpty bool
	fieldsHash  string
	tags        uint64 // wanted tag bits
	merged      int    // profiles merged into the contact
}

// fieldSpec maps one attribute to one merge tag of a given merge type.
type fieldSpec struct {
	attr, tag, typ string
}

// mappedFields are the merge fields the mapping fills, without their
// types, in the order of a run's field specs (prepareFields adds the
// types).
func mappedFields(m store.Mapping) []fieldSpec {
	var out []fieldSpec
	if m.FirstName != "" {
		out = append(out, fieldSpec{attr: m.FirstName, tag: "FNAME"})
	}
	if m.LastName != "" {
		out = append(out, fieldSpec{attr: m.LastName, tag: "LNAME"})
	}
	for _, a := range m.Attributes {
		out = append(out, fieldSpec{attr: a.Attribute, tag: a.MergeTag})
	}
	return out
}

// memberAttrs lists the attributes a contact is made of: the address,
// then each spec's attribute. pickAttrs decodes them at these places, and
// they are all a run asks the member stream for (memberNames).
func memberAttrs(emailAttr string, specs []fieldSpec) []string {
	names := []string{emailAttr}
	for _, sp := range specs {
		names = append(names, sp.attr)
	}
	return names
}

// memberNames are the attributes the run reads of each segment member:
// memberAttrs of its mapping, known before prepareFields has made the
// specs (a first run's member sort starts meanwhile).
func (r *runner) memberNames() []string {
	return memberAttrs(r.exp.Mapping.Email, mappedFields(r.exp.Mapping))
}

// desiredCounts are gathered while streaming the desired state.
type desiredCounts struct {
	profiles, invalid, duplicates, contacts int64
}

var errStop = errors.New("stop")

// profileRow is one streamed profile, decoded.
type profileRow struct {
	hash, customerID, email string
	updatedAt               time.Time
	attrs                   []any // the address, then each spec's attribute (pickAttrs)
	tags                    uint64
}

// desiredStream turns the segments' member stream (in hash order) into
// contacts: invalid addresses are skipped and counted, and the profiles of
// one address are merged: the most recently updated profile's fields win
// (ties: the smallest customer_id) and the memberships are united. Memory
// holds the profiles of one address.
//
// members streams the segments' members (all of them, or those of some
// addresses: see diff).
func desiredStream(members func(fn func(store.HashedMember) error) error, bits []uint64, emailAttr string, specs []fieldSpec, cnt *desiredCounts) iter.Seq2[*desiredContact, error] {
	names := memberAttrs(emailAttr, specs)
	order := fieldOrder(specs)
	return func(yield func(*desiredContact, error) bool) {
		var group []profileRow
		lastValid := ""
		stopped := false
		emit := func() bool {
			if len(group) == 0 {
				return true
			}
			defer func() { group = group[:0] }()
			cnt.profiles += int64(len(group))
			// The store hashed the address with emailaddr.Hash; a
			// valid address's hash is also Mailchimp's.
			if !emailaddr.Valid(group[0].email) {
				cnt.invalid += int64(len(group))
				return true
			}
			h := group[0].hash
			if h < lastValid {
				stopped = true
				yield(nil, fmt.Errorf("segment members are not in subscriber-hash order (%s after %s)", h, lastValid))
				return false
			}
			lastValid = h
			cnt.duplicates += int64(len(group) - 1)
			cnt.contacts++
			win := 0
			var tags uint64
			for i, p := range group {
				tags |= p.tags
				w := group[win]
				if p.updatedAt.After(w.updatedAt) || (p.updatedAt.Equal(w.updatedAt) && p.customerID < w.customerID) {
					win = i
				}
			}
			p := group[win]
			d := &desiredContact{hash: h, email: emailaddr.Normalize(p.email), customerID: p.customerID,
				updatedAt: p.updatedAt, tags: tags, merged: len(group)}
			d.fields, d.fieldsEmpty, d.fieldsHash = mapFields(p.attrs[1:], specs, order)
			if !yield(d, nil) {
				stopped = true
				return false
			}
			return true
		}
		var scratch []attrjson.Member
		err := members(func(m store.HashedMember) error {
			if m.Hash == "" { // no usable address at all
				cnt.profiles++
				cnt.invalid++
				return nil
			}
			if len(group) > 0 && group[0].hash != m.Hash && !emit() {
				return errStop
			}
			attrs := make([]any, len(names))
			var err error
			if scratch, err = pickAttrs(m.Attrs, names, attrs, scratch); err != nil {
				return fmt.Errorf("profile %s: attributes: %w", m.CustomerID, err)
			}
			row := profileRow{hash: m.Hash, customerID: m.CustomerID, updatedAt: m.UpdatedAt, attrs: attrs}
			if v, ok := attrs[0].(string); ok { // the address
				row.email = v
			}
			for i := range bits {
				if m.Segments&(1<<i) != 0 {
					row.tags |= bits[i]
				}
			}
			group = append(group, row)
			return nil
		})
		if stopped {
			return
		}
		if err != nil {
			yield(nil, fmt.Errorf("streaming the export's segments: %w", err))
			return
		}
		emit()
	}
}

// pickAttrs decodes only the named attributes of a profile's attribute
// object into out, each at its name's place in names (a name twice: at
// both; nil when missing, null or not a scalar). A slice instead of a map
// per profile, since a contact needs a handful of its attributes (a tenth
// of a 1M first run's allocations were these maps and the merge values').
// The stream's bytes are reused, so nothing may point into them.
func pickAttrs(obj []byte, names []string, out []any, scratch []attrjson.Member) ([]attrjson.Member, error) {
	members, err := attrjson.Split(scratch[:0], obj)
	if err != nil {
		return members, err
	}
	for _, m := range members {
		if len(m.Value) == 0 || !slices.Contains(names, string(m.Name)) {
			continue
		}
		var v any
		switch m.Value[0] {
		case '"':
			str, ok := attrjson.StringValue(m.Value)
			if !ok {
				return members, fmt.Errorf("attribute %s: a string that does not decode", m.Name)
			}
			v = str
		case 't':
			v = true
		case 'f':
			v = false
		case 'n':
			v = nil
		case '{', '[':
			continue // not a scalar: never mapped
		default:
			v = json.Number(string(m.Value))
		}
		for i, n := range names {
			if n == string(m.Name) {
				out[i] = v
			}
		}
	}
	return members, nil
}

// fieldMap decodes the contact's merge values, for the calls that take them
// as a map (numbers come back as the float64 they were).
func (d *desiredContact) fieldMap() map[string]any {
	var m map[string]any
	if len(d.fields) > 0 {
		if err := json.Unmarshal(d.fields, &m); err != nil {
			panic(fmt.Sprintf("syncer: merge values %s that mapFields wrote do not decode: %v", d.fields, err))
		}
	}
	return m
}

// convert turns an attribute value into the merge field type's form:
// numbers as numbers, dates as YYYY-MM-DD (birthdays MM/DD), the rest text.
func convert(v any, typ string) any {
	if v == nil {
		return ""
	}
	switch typ {
	case mailchimp.MergeNumber:
		switch x := v.(type) {
		case json.Number:
			if f, err := x.Float64(); err == nil && !math.IsInf(f, 0) {
				return f
			}
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f
			}
		}
		return ""
	case mailchimp.MergeDate, mailchimp.MergeBirthday:
		s, ok := v.(string)
		if !ok || len(s) < 10 {
			return ""
		}
		d, err := time.Parse("2006-01-02", s[:10])
		if err != nil {
			return ""
		}
		if typ == mailchimp.MergeBirthday {
			return d.Format("01/02")
		}
		return d.Format("2006-01-02")
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}
