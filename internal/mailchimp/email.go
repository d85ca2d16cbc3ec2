package mailchimp

import (
	"crypto/md5"
	"encoding/hex"
	"strings"
)

// NormalizeEmail returns the address as Mailchimp identifies a contact by it:
// trimmed and lowercased.
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// SubscriberHash is Mailchimp's member id: the hex MD5 of the normalized
// address.
func SubscriberHash(email string) string {
	sum := md5.Sum([]byte(NormalizeEmail(email)))
	return hex.EncodeToString(sum[:])
}

// PlausibleEmail reports whether the address (after normalization) looks
// like one Mailchimp would accept as a recipient: local@domain.tld with a
// dot-atom local part of at most 64 bytes, a domain of letter/digit/hyphen
// labels and an alphabetic top-level label, at most 254 bytes in all. It does
// not try to catch what Mailchimp calls "looks fake"; those are rejected
// per contact by Mailchimp itself.
func PlausibleEmail(email string) bool {
	e := NormalizeEmail(email)
	if len(e) > 254 {
		return false
	}
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || at == len(e)-1 {
		return false
	}
	return plausibleLocal(e[:at]) && plausibleDomain(e[at+1:])
}

func plausibleLocal(s string) bool {
	if len(s) > 64 || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.':
		case strings.IndexByte("!#$%&'*+/=?^_`{|}~-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func plausibleDomain(s string) bool {
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	if len(tld) < 2 {
		return false
	}
	for i := 0; i < len(tld); i++ {
		if tld[i] < 'a' || tld[i] > 'z' {
			// Punycode TLDs (xn--…) are the one non-alphabetic form in use.
			return strings.HasPrefix(tld, "xn--")
		}
	}
	return true
}
