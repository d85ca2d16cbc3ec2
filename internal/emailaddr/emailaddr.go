// Package emailaddr is the identity of a contact's e-mail address, the one
// definition that the engine, the store's SQL functions, webhooks, the
// Mailchimp client and user accounts share: the normalised form, whether an
// address is valid, and Mailchimp's subscriber hash.
//
// Mailchimp identifies a contact by the MD5 of its lower-cased address.
// segsync lowers the ASCII letters only (as SQLite's lower() and
// PostgreSQL's lower(x COLLATE "C") do, so the databases compute the same
// hash) and counts an address valid only when it is plain ASCII: for every
// valid address, whether Mailchimp lower-cases other letters too makes no
// difference to the hash.
package emailaddr

import (
	"crypto/md5"
	"encoding/hex"
	"strings"
)

// Normalize trims ASCII white space from both ends and lowers the ASCII
// letters A–Z; every other byte is kept as it is.
func Normalize(addr string) string {
	const space = " \t\n\v\f\r"
	i, j := 0, len(addr)
	for i < j && strings.IndexByte(space, addr[i]) >= 0 {
		i++
	}
	for j > i && strings.IndexByte(space, addr[j-1]) >= 0 {
		j--
	}
	addr = addr[i:j]
	for k := 0; k < len(addr); k++ {
		if c := addr[k]; c >= 'A' && c <= 'Z' {
			b := []byte(addr)
			for ; k < len(b); k++ {
				if c := b[k]; c >= 'A' && c <= 'Z' {
					b[k] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return addr
}

// Hash is Mailchimp's subscriber hash of the address: the lowercase hex MD5
// of its normalised form.
func Hash(addr string) string {
	sum := md5.Sum([]byte(Normalize(addr)))
	return hex.EncodeToString(sum[:])
}

// Valid reports whether the address, normalised, is one segsync sends to
// Mailchimp and accepts as a user's name: local@domain.tld in plain ASCII,
// with a dot-atom local part of at most 64 bytes, a domain of
// letter/digit/hyphen labels and an alphabetic (or xn-- punycode) top-level
// label, at most 254 bytes in all. It does not try to catch what Mailchimp
// calls "looks fake"; Mailchimp refuses those per contact itself.
func Valid(addr string) bool {
	e := Normalize(addr)
	if len(e) > 254 {
		return false
	}
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || at == len(e)-1 {
		return false
	}
	return validLocal(e[:at]) && validDomain(e[at+1:])
}

func validLocal(s string) bool {
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

func validDomain(s string) bool {
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
