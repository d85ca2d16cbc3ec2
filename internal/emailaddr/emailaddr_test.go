package emailaddr

import (
	"crypto/md5"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestHash(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		// The example of Mailchimp's tag guide.
		{"Urist.McVankab@freddiesjokes.com", "62eeb292278cc15f5817cb78f7790b08"},
		{"  urist.mcvankab@FREDDIESJOKES.com\t", "62eeb292278cc15f5817cb78f7790b08"},
		{"foo@example.com", "b48def645758b95537d4424c84d1a9ff"},
		{"\tFOO@EXAMPLE.COM\v\f\r ", "b48def645758b95537d4424c84d1a9ff"},
		{"", "d41d8cd98f00b204e9800998ecf8427e"},
	}
	for _, tt := range tests {
		if got := Hash(tt.in); got != tt.want {
			t.Errorf("Hash(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	// Only ASCII letters are lowered, as the databases' lower() does.
	if Hash("É@example.com") == Hash("é@example.com") {
		t.Error("non-ASCII letters must not be folded")
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"  Ann.Lee@Example.ORG \n": "ann.lee@example.org",
		"ann@shop.org":             "ann@shop.org",
		"\u00a0Ann@Shop.org":       "\u00a0ann@shop.org", // not ASCII space: kept (and invalid)
		"\u212Aate@Shop.org":       "\u212Aate@shop.org", // Kelvin sign: not an ASCII letter
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"ann@shop.org", true},
		{" Ann.Lee+news@Mail.Shop.CO.uk ", true},
		{"o'brien@sub-domain.example.net", true},
		{"x@xn--bcher-kva.xn--p1ai", true},
		{"a_b-c@d1.io", true},
		{"", false},
		{"ann", false},
		{"@shop.org", false},
		{"ann@", false},
		{"ann@shop", false},
		{"ann@shop.o", false},
		{"ann@shop.123", false},
		{"ann@@shop.org", false},
		{"ann lee@shop.org", false},
		{".ann@shop.org", false},
		{"ann.@shop.org", false},
		{"an..n@shop.org", false},
		{"ann@-shop.org", false},
		{"ann@shop-.org", false},
		{"ann@shop..org", false},
		{"ann@sh_op.org", false},
		{"\"ann\"@shop.org", false},
		{"ann@shop.org.", false},
		{"jörg@shop.de", false},
		// Letters whose Unicode lower case is ASCII: Mailchimp's hash of
		// them is unknown, and segsync's is not the one of the ASCII
		// spelling, so they are not addresses.
		{"\u212Aate@shop.org", false}, // KELVIN SIGN, lower case k
		{"\u0130nfo@shop.org", false}, // LATIN CAPITAL I WITH DOT ABOVE, lower case i
		{"ann@shop.org\u00a0", false}, // NO-BREAK SPACE is not trimmed
		{"ann@shop.org\u2028", false},
		{strings.Repeat("a", 65) + "@shop.org", false},
		{strings.Repeat("a", 64) + "@shop.org", true},
		{"a@" + strings.Repeat("b", 64) + ".org", false},
		{"a@" + strings.Repeat(strings.Repeat("b", 60)+".", 5) + "org", false}, // > 254
	}
	for _, tt := range tests {
		if got := Valid(tt.in); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// mailchimpHash is the subscriber hash as Mailchimp defines it: the MD5 of
// the lower-cased address (here lower-cased in the Unicode sense, the
// widest reading of "lower-cased").
func mailchimpHash(s string) string {
	sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(s))))
	return hex.EncodeToString(sum[:])
}

// swapASCIICase turns a's into A's and back, leaving other bytes alone.
func swapASCIICase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c >= 'A' && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

// FuzzIdentity: Normalize is idempotent; the hash and the verdict are
// those of the normalised address and do not depend on letter case; and
// for every valid address the hash is Mailchimp's however Mailchimp
// lower-cases, so segsync and Mailchimp name the same contact.
func FuzzIdentity(f *testing.F) {
	for _, s := range []string{"ann@shop.org", " Ann.Lee@Shop.ORG\n", "a@b", "x@xn--p1ai.xn--p1ai", "@", "..",
		"\u212Aate@shop.org", "\u0130nfo@shop.org", "ann@shop.org\u00a0", "ſam@shop.org", "É@example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := Normalize(s)
		if Normalize(n) != n {
			t.Fatalf("Normalize is not idempotent on %q: %q, then %q", s, n, Normalize(n))
		}
		h := Hash(s)
		if len(h) != 32 || h != Hash(n) {
			t.Fatalf("Hash(%q) = %q, Hash of its normal form %q", s, h, Hash(n))
		}
		for _, v := range []string{swapASCIICase(s), " " + s + "\t"} {
			if Hash(v) != h {
				t.Fatalf("Hash(%q) = %s differs from Hash(%q) = %s", v, Hash(v), s, h)
			}
		}
		ok := Valid(s)
		if ok != Valid(n) || ok != Valid(swapASCIICase(s)) {
			t.Fatalf("the verdict on %q changes with normalisation or letter case", s)
		}
		if !ok {
			return
		}
		for i := 0; i < len(n); i++ {
			if n[i] >= utf8.RuneSelf || n[i] >= 'A' && n[i] <= 'Z' {
				t.Fatalf("valid %q normalises to %q, not lower-case ASCII", s, n)
			}
		}
		if strings.Count(n, "@") != 1 {
			t.Fatalf("accepted %q with more than one @", s)
		}
		for _, v := range []string{s, strings.ToUpper(s), strings.ToLower(s)} {
			if mailchimpHash(v) != h || !Valid(v) {
				t.Fatalf("valid %q: Mailchimp's hash of %q is %s, segsync's %s", s, v, mailchimpHash(v), h)
			}
		}
	})
}
