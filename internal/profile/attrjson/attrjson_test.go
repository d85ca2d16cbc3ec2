package attrjson

import (
	"fmt"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	tests := map[string]bool{
		"a": true, "_": true, "customer_id": true, "A9_b": true, strings.Repeat("x", 64): true,
		"": false, "9a": false, "first name": false, "a-b": false, "é": false, "a.b": false,
		strings.Repeat("x", 65): false, "a'": false,
	}
	for name, want := range tests {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestNormalizeDate(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"2024-02-29", "2024-02-29", true},
		{"2023-02-29", "", false},
		{"2024-13-01", "", false},
		{"2024-1-01", "", false},
		{"2024-01-02T03:04", "2024-01-02T03:04:00Z", true},
		{"2024-01-02 03:04:05", "2024-01-02T03:04:05Z", true},
		{"2024-01-02T03:04:05.999Z", "2024-01-02T03:04:05Z", true},
		{"2024-01-02T00:30:00+01:00", "2024-01-01T23:30:00Z", true},
		{"2024-01-02T23:30:00-0130", "2024-01-03T01:00:00Z", true},
		{"2024-01-02T23:30:00+05", "2024-01-02T18:30:00Z", true},
		{"2024-01-02T24:00", "", false},
		{"2024-01-02T03:04:05.", "", false},
		{"2024-01-02X", "", false},
		{"2024-01-02T03:04:05 UTC", "", false},
		{"20240102", "", false},
	}
	for _, tt := range tests {
		got, ok := NormalizeDate(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("NormalizeDate(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCanonicalNumber(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"0", "0", true}, {"-0", "0", true}, {"-0.00", "0.00", true}, {"1.50", "1.50", true},
		{"-12", "-12", true}, {"1e3", "1000", true}, {"1.5E-3", "0.0015", true}, {"-0e5", "0", true},
		{"007", "", false}, {"1.", "", false}, {".5", "", false}, {"+1", "", false}, {"1e400", "", false},
		{"abc", "", false}, {"", "", false},
	}
	for _, tt := range tests {
		got, ok := CanonicalNumber(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CanonicalNumber(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestAppendString(t *testing.T) {
	tests := map[string]string{
		"plain":       `"plain"`,
		`q"b\`:        `"q\"b\\"`,
		"\n\r\t\b\f":  `"\n\r\t\b\f"`,
		"\x01\x1f":    `"\u0001\u001f"`,
		"\x00":        `"` + "\uFFFD" + `"`,
		"bad\xffutf":  `"bad` + "\uFFFD" + `utf"`,
		"é</>&\u2028": `"é</>&` + "\u2028" + `"`,
	}
	for in, want := range tests {
		if got := string(AppendString(nil, in)); got != want {
			t.Errorf("AppendString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestMerge(t *testing.T) {
	type change = string
	tests := []struct {
		name, old, patch, want string
		changed                bool
		changes                []change
	}{
		{"new", ``, `{"a":1,"b":"x","n":null}`, `{"a":1,"b":"x"}`, true, []change{"a:-number", "b:-string"}},
		{"new empty", ``, `{}`, `{}`, false, nil},
		{"same", `{"a":1,"b":"x"}`, `{"a":1,"b":"x"}`, `{"a":1,"b":"x"}`, false, nil},
		{"subset", `{"a":1,"b":"x"}`, `{"b":"x"}`, `{"a":1,"b":"x"}`, false, nil},
		{"update", `{"a":1,"b":"x"}`, `{"b":"y","c":true}`, `{"a":1,"b":"y","c":true}`, true, []change{"c:-boolean"}},
		{"type change", `{"a":1}`, `{"a":"2024-01-01"}`, `{"a":"2024-01-01"}`, true, []change{"a:number-date"}},
		{"remove", `{"a":1,"b":2}`, `{"a":null,"z":null}`, `{"b":2}`, true, []change{"a:number-"}},
		{"unsorted patch, later wins", `{}`, `{"b":1,"a":2,"b":3}`, `{"a":2,"b":3}`, true, []change{"a:-number", "b:-number"}},
		// What PostgreSQL's jsonb prints: other order, spaces, its escapes.
		{"jsonb text", `{"b": "x\"y", "aa": 1.50, "c": "\u0001é"}`, `{"aa":1.50,"b":"x\"y","c":"\u0001é"}`, `{"aa":1.50,"b":"x\"y","c":"\u0001é"}`, false, nil},
		{"jsonb numbers differ", `{"a": 1.50}`, `{"a":1.5}`, `{"a":1.5}`, true, nil},
	}
	var m Merger
	for _, tt := range tests {
		var changes []change
		got, changed, err := m.Merge([]byte(tt.old), []byte(tt.patch), func(c Change) {
			changes = append(changes, fmt.Sprintf("%s:%s-%s", c.Name, c.Old, c.New))
		})
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if string(got) != tt.want || changed != tt.changed || fmt.Sprint(changes) != fmt.Sprint(tt.changes) {
			t.Errorf("%s: Merge = %s, %v, %v; want %s, %v, %v", tt.name, got, changed, changes, tt.want, tt.changed, tt.changes)
		}
	}
	if _, _, err := m.Merge([]byte(`[1]`), []byte(`{}`), nil); err == nil {
		t.Errorf("merging into an array: no error")
	}
}

func TestTypeOf(t *testing.T) {
	tests := map[string]string{
		`"x"`: TypeString, `"2024-01-02"`: TypeDate, `"2024-01-02T03:04:05Z"`: TypeDate,
		`"2024-01-02T03:04"`: TypeString, `1.5`: TypeNumber, `-3`: TypeNumber, `true`: TypeBoolean, `false`: TypeBoolean,
		`null`: "",
	}
	for in, want := range tests {
		if got := TypeOf([]byte(in)); got != want {
			t.Errorf("TypeOf(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestAppendStringNFC(t *testing.T) {
	for in, want := range map[string]string{"E\u0301mile": `"\u00c9mile"`, "A\u030angstro\u0308m": `"\u00c5ngstr\u00f6m"`, "bad\xffé": `"bad\ufffd\u00e9"`} {
		if got := string(AppendString(nil, in)); got != strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(want, `\u00c9`, "É"), `\u00c5`, "Å"), `\u00f6`, "ö"), `\ufffd`, "\uFFFD"), `\u00e9`, "é") {
			t.Errorf("AppendString(%q) = %s", in, got)
		}
	}
}
