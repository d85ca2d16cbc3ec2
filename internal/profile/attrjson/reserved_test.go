package attrjson

import "testing"

func TestReserved(t *testing.T) {
	tests := []struct {
		name            string
		reserved, valid bool
	}{
		{"mailchimp.abc123.status", true, true},
		{"mailchimp.abc123.status_changed_at", true, true},
		{"mailchimp.abc123.other", true, false},
		{"mailchimp.ab\"c.status", true, false},
		{"mailchimp.", true, false},
		{"mailchimp_status", false, false},
		{"email", false, false},
	}
	for _, tc := range tests {
		if Reserved(tc.name) != tc.reserved || ValidReserved(tc.name) != tc.valid {
			t.Errorf("%q: Reserved %v ValidReserved %v, want %v %v", tc.name, Reserved(tc.name), ValidReserved(tc.name), tc.reserved, tc.valid)
		}
	}
	if a, f, ok := ParseReserved(StatusChangedAttr("x1")); !ok || a != "x1" || f != "status_changed_at" {
		t.Errorf("ParseReserved: %q %q %v", a, f, ok)
	}
}
