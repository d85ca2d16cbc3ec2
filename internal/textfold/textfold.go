// Package textfold is the one definition of how segsync compares text:
// NFC-normalised, then simple case folding rune by rune (Unicode's
// CaseFolding.txt, statuses C and S: a 1:1 mapping of code points). Segment
// rules fold their values with Fold; SQLite calls Fold as segsync_fold;
// PostgreSQL has the same mapping as a translate() in a generated migration
// (see Migration), so both databases agree with Go and with each other,
// whatever their locale or collation provider.
//
// Simple folding equates exactly what strings.EqualFold equates: "Émile",
// "ÉMILE" and "émile"; "Σ", "σ" and the final "ς"; "ǅ", "Ǆ" and "ǆ". It does
// not equate "Straße" with "STRASSE" (that is full folding, one rune to two),
// nor the Turkish dotless ı with i, nor İ with i (those are language rules).
package textfold

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Fold returns s in its comparable form: NFC, then each rune folded.
func Fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii { // fast path: NFC is the identity, folding is lowering A–Z
		for i := 0; i < len(s); i++ {
			if 'A' <= s[i] && s[i] <= 'Z' {
				return strings.Map(foldASCII, s)
			}
		}
		return s
	}
	s = norm.NFC.String(s)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(Rune(r))
	}
	return b.String()
}

func foldASCII(r rune) rune {
	if 'A' <= r && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}

// Rune folds one code point: to the member of its simple-folding orbit
// (the runes unicode.SimpleFold cycles through) that lowercasing its
// uppercase gives, which is the lowercase letter for every cased script;
// a rune without case folds to itself.
func Rune(r rune) rune {
	if r < utf8.RuneSelf {
		return foldASCII(r)
	}
	c := unicode.ToLower(unicode.ToUpper(r))
	if c == r {
		return r
	}
	for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
		if o == c {
			return c
		}
	}
	// c is outside r's orbit (İ lowers to i, which folds with I, not İ):
	// the orbit's smallest member stands for it.
	m := r
	for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
		m = min(m, o)
	}
	return m
}
