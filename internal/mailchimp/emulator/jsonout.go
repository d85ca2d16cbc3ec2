package emulator

import (
	"crypto/md5"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The member encoder is hand-written: batch calls and listings encode up to
// 1000 members per call, and encoding/json with maps would dominate the
// emulator's CPU time.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendKey(b []byte, k string) []byte {
	b = append(b, '"')
	b = append(b, k...)
	return append(b, '"', ':')
}

// uniqueEmailID is the unique_email_id of the address with hash h (the
// data[id] of webhook events).
func (l *list) uniqueEmailID(h [16]byte) string {
	id := hashHex(h)
	sum := md5.Sum([]byte(l.id + id))
	return hex.EncodeToString(sum[:5])
}

// appendMember encodes m as Mailchimp's member object.
func (l *list) appendMember(b []byte, m *member, h [16]byte) []byte {
	return l.appendMemberP(b, m, h, nil)
}

// appendMemberP encodes the keys of m that p selects (all when p is nil).
func (l *list) appendMemberP(b []byte, m *member, h [16]byte, p *projection) []byte {
	var id [32]byte
	hex.Encode(id[:], h[:])
	var cidHex, uidHex [32]byte
	var cid [16]byte
	if p.wants("unique_email_id") || p.wants("contact_id") || p.wants("web_id") {
		cid = md5.Sum(append([]byte(l.id), id[:]...))
		hex.Encode(uidHex[:], cid[:])
		if m.ext != nil && m.ext.moved {
			// contact_id and web_id stay those of the contact's first
			// address; unique_email_id follows the address.
			var first [32]byte
			hex.Encode(first[:], m.ext.firstHash[:])
			cid = md5.Sum(append([]byte(l.id), first[:]...))
		}
		hex.Encode(cidHex[:], cid[:])
	}
	var ext memberExt
	if m.ext != nil {
		ext = *m.ext
	}
	b = append(b, '{')
	n := 0
	key := func(k string) bool {
		if !p.wants(k) {
			return false
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = appendKey(b, k)
		return true
	}
	if key("id") {
		b = append(b, '"')
		b = append(b, id[:]...)
		b = append(b, '"')
	}
	if key("email_address") {
		b = appendString(b, m.email)
	}
	if key("unique_email_id") {
		b = append(b, '"')
		b = append(b, uidHex[:10]...)
		b = append(b, '"')
	}
	if key("contact_id") {
		b = append(b, '"')
		b = append(b, cidHex[:]...)
		b = append(b, '"')
	}
	if key("full_name") {
		b = appendString(b, l.fullName(m))
	}
	if key("web_id") {
		b = strconv.AppendInt(b, int64(cid[0])<<24|int64(cid[1])<<16|int64(cid[2])<<8|int64(cid[3]), 10)
	}
	if key("email_type") {
		if m.flags&flagTextEmail != 0 {
			b = append(b, `"text"`...)
		} else {
			b = append(b, `"html"`...)
		}
	}
	if key("status") {
		b = append(b, '"')
		b = append(b, m.status.String()...)
		b = append(b, '"')
	}
	if key("consents_to_one_to_one_messaging") {
		b = append(b, "true"...)
	}
	if key("merge_fields") {
		b = append(b, '{')
		first := true
		for slot, f := range l.fields {
			if f.deleted {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, f.tag)
			b = append(b, ':')
			v := ""
			if slot < len(m.merge) {
				v = m.merge[slot]
			}
			if v != "" && (f.typ == "number" || f.typ == "address") {
				b = append(b, v...)
			} else {
				b = appendString(b, v)
			}
		}
		b = append(b, '}')
	}
	if key("stats") {
		b = append(b, `{"avg_open_rate":0,"avg_click_rate":0}`...)
	}
	if key("ip_signup") {
		b = appendString(b, ext.ipSignup)
	}
	if key("timestamp_signup") {
		b = appendString(b, isoTime(m.signupAt))
	}
	if key("ip_opt") {
		b = appendString(b, ext.ipOpt)
	}
	if key("timestamp_opt") {
		b = appendString(b, isoTime(m.optAt))
	}
	if key("member_rating") {
		b = append(b, '2')
	}
	if key("last_changed") {
		b = appendString(b, isoTime(m.lastChanged))
	}
	if key("language") {
		b = appendString(b, ext.language)
	}
	if key("vip") {
		b = strconv.AppendBool(b, m.flags&flagVIP != 0)
	}
	if key("email_client") {
		b = append(b, `""`...)
	}
	if key("location") {
		b = append(b, `{"latitude":0,"longitude":0,"gmtoff":0,"dstoff":0,"country_code":"","timezone":"","region":""}`...)
	}
	if key("source") {
		b = append(b, `"API - Generic"`...)
	}
	if key("tags_count") {
		b = strconv.AppendInt(b, int64(len(m.tags)), 10)
	}
	if key("tags") {
		b = append(b, '[')
		for i, r := range m.tags {
			if i > 0 {
				b = append(b, ',')
			}
			t := l.tags[r.idx]
			b = append(b, `{"id":`...)
			b = strconv.AppendInt(b, int64(t.id), 10)
			b = append(b, `,"name":`...)
			b = appendString(b, t.name)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if key("list_id") {
		b = append(b, '"')
		b = append(b, l.id...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// projection is a fields / exclude_fields selection that the member
// encoders apply directly: top-level keys of the response and keys of each
// member object. Selections deeper than that fall back to filterFields.
type projection struct {
	top, member         map[string]bool // fields: keys to keep (nil: all)
	dropTop, dropMember map[string]bool // exclude_fields
	wholeMembers        bool            // "members" itself was selected
}

// parseProjection reads fields and exclude_fields for a response whose
// member array is under arrayKey. It returns nil when there is nothing to
// project, and ok=false when the selection is too deep for the fast path.
func parseProjection(fields, exclude, arrayKey string) (p *projection, ok bool) {
	if fields == "" && exclude == "" {
		return nil, true
	}
	p = &projection{}
	parse := func(s string, top, member *map[string]bool) bool {
		if s == "" {
			return true
		}
		*top, *member = map[string]bool{}, map[string]bool{}
		for _, path := range strings.Split(s, ",") {
			path = strings.TrimSpace(path)
			if path == "" {
				continue
			}
			parts := strings.Split(path, ".")
			switch {
			case len(parts) == 1:
				(*top)[parts[0]] = true
			case len(parts) == 2 && parts[0] == arrayKey:
				(*member)[parts[1]] = true
			default:
				return false
			}
		}
		return true
	}
	if !parse(fields, &p.top, &p.member) || !parse(exclude, &p.dropTop, &p.dropMember) {
		return nil, false
	}
	if p.top != nil {
		p.wholeMembers = p.top[arrayKey]
		if len(p.member) > 0 {
			p.top[arrayKey] = true
		}
	}
	return p, true
}

// wantsTop says whether a top-level key of the response is emitted.
func (p *projection) wantsTop(k string) bool {
	if p == nil {
		return true
	}
	if p.top != nil && !p.top[k] {
		return false
	}
	return !p.dropTop[k]
}

// wants says whether a key of a member object is emitted.
func (p *projection) wants(k string) bool {
	if p == nil {
		return true
	}
	if p.top != nil && !p.wholeMembers && !p.member[k] {
		return false
	}
	return !p.dropMember[k]
}

func (l *list) fullName(m *member) string {
	var first, last string
	for slot, f := range l.fields {
		if f.deleted || slot >= len(m.merge) {
			continue
		}
		switch f.tag {
		case "FNAME":
			first = m.merge[slot]
		case "LNAME":
			last = m.merge[slot]
		}
	}
	switch {
	case first == "":
		return last
	case last == "":
		return first
	}
	return first + " " + last
}
