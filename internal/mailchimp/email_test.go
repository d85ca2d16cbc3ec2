package mailchimp

import (
	"strings"
	"testing"
)

func TestSubscriberHash(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		// The example of Mailchimp's tag guide.
		{"Urist.McVankab@freddiesjokes.com", "62eeb292278cc15f5817cb78f7790b08"},
		{"  urist.mcvankab@FREDDIESJOKES.com\t", "62eeb292278cc15f5817cb78f7790b08"},
		{"", "d41d8cd98f00b204e9800998ecf8427e"},
	}
	for _, tt := range tests {
		if got := SubscriberHash(tt.in); got != tt.want {
			t.Errorf("SubscriberHash(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	if got := NormalizeEmail("  Ann.Lee@Example.ORG \n"); got != "ann.lee@example.org" {
		t.Errorf("NormalizeEmail = %q", got)
	}
}

func TestPlausibleEmail(t *testing.T) {
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
		{strings.Repeat("a", 65) + "@shop.org", false},
		{strings.Repeat("a", 64) + "@shop.org", true},
		{"a@" + strings.Repeat("b", 64) + ".org", false},
		{"a@" + strings.Repeat(strings.Repeat("b", 60)+".", 5) + "org", false}, // > 254
	}
	for _, tt := range tests {
		if got := PlausibleEmail(tt.in); got != tt.want {
			t.Errorf("PlausibleEmail(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzPlausibleEmail(f *testing.F) {
	for _, s := range []string{"ann@shop.org", "a@b", "x@xn--p1ai.xn--p1ai", "@", ".."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ok := PlausibleEmail(s)
		if ok != PlausibleEmail(NormalizeEmail(s)) {
			t.Fatalf("normalization changes the verdict on %q", s)
		}
		if ok && strings.Count(NormalizeEmail(s), "@") != 1 {
			t.Fatalf("accepted %q with more than one @", s)
		}
		if len(SubscriberHash(s)) != 32 {
			t.Fatalf("hash of %q is not 32 hex digits", s)
		}
	})
}
