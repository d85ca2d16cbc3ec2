package attrjson

import (
	"regexp"
	"strings"
)

// Reserved attributes are written by segsync itself, never by imports or
// sources: Mailchimp's word on each profile (SPEC section 12). Every name
// starting with ReservedPrefix is reserved (an import column of such a name
// is refused); the names segsync writes match ReservedPattern, which
// segment rules accept besides NamePattern. They hold no quote or
// backslash, so the segment compiler can quote them as JSON path keys.
const (
	ReservedPrefix  = "mailchimp."
	ReservedPattern = `^mailchimp\.[A-Za-z0-9]{1,32}\.(status|status_changed_at)$`
)

var reservedName = regexp.MustCompile(ReservedPattern)

// Reserved reports whether name is reserved for segsync (ReservedPrefix).
func Reserved(name string) bool { return strings.HasPrefix(name, ReservedPrefix) }

// ValidReserved reports whether name is one of the reserved attributes
// segsync writes (ReservedPattern).
func ValidReserved(name string) bool { return reservedName.MatchString(name) }

// StatusAttr and StatusChangedAttr name the attributes that hold a
// profile's Mailchimp status in an audience and when it last changed
// (a date with time, UTC).
func StatusAttr(audienceID string) string { return ReservedPrefix + audienceID + ".status" }

func StatusChangedAttr(audienceID string) string {
	return ReservedPrefix + audienceID + ".status_changed_at"
}

// ParseReserved splits a reserved attribute name into its audience id and
// field ("status" or "status_changed_at").
func ParseReserved(name string) (audienceID, field string, ok bool) {
	if !ValidReserved(name) {
		return "", "", false
	}
	rest := strings.TrimPrefix(name, ReservedPrefix)
	i := strings.IndexByte(rest, '.')
	return rest[:i], rest[i+1:], true
}
