package emulator

import (
	"crypto/md5"
	"encoding/hex"
	"strconv"
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

// appendMember encodes m as Mailchimp's member object.
func (l *list) appendMember(b []byte, m *member, h [16]byte) []byte {
	var id [32]byte
	hex.Encode(id[:], h[:])
	cid := md5.Sum(append([]byte(l.id), id[:]...))
	var cidHex [32]byte
	hex.Encode(cidHex[:], cid[:])

	b = append(b, `{"id":"`...)
	b = append(b, id[:]...)
	b = append(b, `","email_address":`...)
	b = appendString(b, m.email)
	b = append(b, `,"unique_email_id":"`...)
	b = append(b, cidHex[:10]...)
	b = append(b, `","contact_id":"`...)
	b = append(b, cidHex[:]...)
	b = append(b, `","full_name":`...)
	b = appendString(b, l.fullName(m))
	b = append(b, `,"web_id":`...)
	b = strconv.AppendInt(b, int64(cid[0])<<24|int64(cid[1])<<16|int64(cid[2])<<8|int64(cid[3]), 10)
	if m.flags&flagTextEmail != 0 {
		b = append(b, `,"email_type":"text"`...)
	} else {
		b = append(b, `,"email_type":"html"`...)
	}
	b = append(b, `,"status":"`...)
	b = append(b, m.status.String()...)
	b = append(b, `","consents_to_one_to_one_messaging":true,"merge_fields":{`...)
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
	b = append(b, `},"stats":{"avg_open_rate":0,"avg_click_rate":0},"ip_signup":`...)
	var ext memberExt
	if m.ext != nil {
		ext = *m.ext
	}
	b = appendString(b, ext.ipSignup)
	b = append(b, `,"timestamp_signup":"`...)
	b = append(b, isoTime(m.signupAt)...)
	b = append(b, `","ip_opt":`...)
	b = appendString(b, ext.ipOpt)
	b = append(b, `,"timestamp_opt":"`...)
	b = append(b, isoTime(m.optAt)...)
	b = append(b, `","member_rating":2,"last_changed":"`...)
	b = append(b, isoTime(m.lastChanged)...)
	b = append(b, `","language":`...)
	b = appendString(b, ext.language)
	b = append(b, `,"vip":`...)
	b = strconv.AppendBool(b, m.flags&flagVIP != 0)
	b = append(b, `,"email_client":"","location":{"latitude":0,"longitude":0,"gmtoff":0,"dstoff":0,"country_code":"","timezone":"","region":""},"source":"API - Generic","tags_count":`...)
	b = strconv.AppendInt(b, int64(len(m.tags)), 10)
	b = append(b, `,"tags":[`...)
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
	b = append(b, `],"list_id":"`...)
	b = append(b, l.id...)
	b = append(b, `"}`...)
	return b
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
