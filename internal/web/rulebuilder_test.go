package web

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

var catalogue = map[string]string{"orders": "number", "country": "string", "vip": "boolean", "signed_up": "date"}

func TestBuilderMakesRules(t *testing.T) {
	tests := []struct {
		name string
		form url.Values
		want string
	}{
		{"one condition, typed by the catalogue",
			url.Values{"g0.match": {"all"}, "g0.c0.attr": {"orders"}, "g0.c0.op": {"gte"}, "g0.c0.value": {"3"}},
			`{"all":[{"attribute":"orders","op":"gte","value":3}]}`},
		{"any of several, text and booleans",
			url.Values{"g0.match": {"any"}, "g0.c0.attr": {"country"}, "g0.c0.op": {"eq"}, "g0.c0.value": {" NL "},
				"g0.c1.attr": {"vip"}, "g0.c1.op": {"eq"}, "g0.c1.value": {"yes"}},
			`{"any":[{"attribute":"country","op":"eq","value":"NL"},{"attribute":"vip","op":"eq","value":true}]}`},
		{"lists, between and no value",
			url.Values{"g0.match": {"all"}, "g0.c0.attr": {"country"}, "g0.c0.op": {"in"}, "g0.c0.value": {"NL, BE,DE"},
				"g0.c1.attr": {"orders"}, "g0.c1.op": {"between"}, "g0.c1.value": {"2 and 10"},
				"g0.c2.attr": {"signed_up"}, "g0.c2.op": {"is_not_empty"}, "g0.c2.value": {"ignored"}},
			`{"all":[{"attribute":"country","op":"in","value":["NL","BE","DE"]},{"attribute":"orders","op":"between","value":[2,10]},{"attribute":"signed_up","op":"is_not_empty"}]}`},
		{"groups combined",
			url.Values{"match": {"any"}, "g0.match": {"all"}, "g0.c0.attr": {"country"}, "g0.c0.op": {"eq"}, "g0.c0.value": {"NL"},
				"g1.match": {"all"}, "g1.c0.attr": {"orders"}, "g1.c0.op": {"gt"}, "g1.c0.value": {"9.5"}},
			`{"any":[{"all":[{"attribute":"country","op":"eq","value":"NL"}]},{"all":[{"attribute":"orders","op":"gt","value":9.5}]}]}`},
		{"JSON editor passes the rule through",
			url.Values{"editor": {"json"}, "rule_json": {`{"not":{"attribute":"vip","op":"eq","value":true}}`}},
			`{"not":{"attribute":"vip","op":"eq","value":true}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, _, err := ruleFormFrom(tc.form).rule(catalogue)
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != tc.want {
				t.Errorf("rule\n got %s\nwant %s", raw, tc.want)
			}
		})
	}
}

func TestBuilderRefusesValuesItCannotType(t *testing.T) {
	tests := []struct {
		op, attr, value, field, words string
	}{
		{"gte", "orders", "three", "g0.c0.value", "number"},
		{"eq", "vip", "maybe", "g0.c0.value", "yes or no"},
		{"lt", "signed_up", "last year", "g0.c0.value", "YYYY-MM-DD"},
		{"between", "orders", "5", "g0.c0.value", "two values"},
		{"in", "country", " , ", "g0.c0.value", "one or more"},
		{"gt", "orders", "", "g0.c0.value", "enter a value"},
		// Go parses these as numbers, JSON does not (they were a 500).
		{"gt", "orders", "NaN", "g0.c0.value", "number"},
		{"gt", "orders", "+1", "g0.c0.value", "number"},
		{"in", "orders", "1, 0x10", "g0.c0.value", "number"},
		{"lt", "signed_up", "2024-02-30", "g0.c0.value", "YYYY-MM-DD"},
		{"like", "country", "NL", "g0.c0.op", "operator"},
	}
	for _, tc := range tests {
		f := ruleFormFrom(url.Values{"g0.match": {"all"}, "g0.c0.attr": {tc.attr}, "g0.c0.op": {tc.op}, "g0.c0.value": {tc.value}})
		_, _, err := f.rule(catalogue)
		ff, ok := err.(formFault)
		if !ok {
			t.Errorf("%s %s %q: error %v, want a form fault", tc.attr, tc.op, tc.value, err)
			continue
		}
		if msg := ff[tc.field]; !strings.Contains(strings.ToLower(msg), strings.ToLower(tc.words)) {
			t.Errorf("%s %s %q: message %q does not say %q", tc.attr, tc.op, tc.value, msg, tc.words)
		}
	}
	if _, _, err := ruleFormFrom(url.Values{"editor": {"json"}, "rule_json": {"{oops"}}).rule(nil); err == nil {
		t.Error("broken JSON was accepted")
	}
}

// TestBuilderTakesEveryDateTheRulesTake: a date with an offset of hours
// only, or a lower-case t, is a date to package segment and so to the
// builder (its own pattern refused them).
func TestBuilderTakesEveryDateTheRulesTake(t *testing.T) {
	for _, d := range []string{"2024-03-01", "2024-03-01T10:00+01", "2024-03-01t10:00:00Z", "2024-03-01 10:00"} {
		raw, _, err := ruleFormFrom(url.Values{"g0.match": {"all"}, "g0.c0.attr": {"signed_up"}, "g0.c0.op": {"gte"}, "g0.c0.value": {d}}).rule(catalogue)
		if err != nil || !strings.Contains(string(raw), `"value":"`+d+`"`) {
			t.Errorf("%s: %s, %v", d, raw, err)
		}
	}
}

func TestBuilderLoadsWhatItWrites(t *testing.T) {
	rules := []string{
		`{"all":[{"attribute":"orders","op":"gte","value":3}]}`,
		`{"any":[{"attribute":"country","op":"in","value":["NL","BE"]},{"attribute":"vip","op":"eq","value":true}]}`,
		`{"all":[{"any":[{"attribute":"country","op":"eq","value":"NL"},{"attribute":"country","op":"eq","value":"BE"}]},{"all":[{"attribute":"orders","op":"between","value":[2,10]}]}]}`,
	}
	for _, r := range rules {
		f, ok := builderFromJSON([]byte(r))
		if !ok || f.Editor != "builder" {
			t.Errorf("%s: not loaded into the builder", r)
			continue
		}
		out, _, err := f.rule(catalogue)
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if !sameJSON(t, out, []byte(r)) {
			t.Errorf("round trip\n got %s\nwant %s", out, r)
		}
	}
	// Shapes beyond groups of conditions stay JSON.
	for _, r := range []string{`{"not":{"attribute":"vip","op":"eq","value":true}}`, `{"all":[{"any":[{"all":[{"attribute":"a","op":"is_empty"}]}]}]}`} {
		if f, ok := builderFromJSON([]byte(r)); ok || f.Editor != "json" || !strings.Contains(f.JSON, "\n") {
			t.Errorf("%s: editor %s, want indented JSON", r, f.Editor)
		}
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func TestAPIErrorsLandOnTheirFields(t *testing.T) {
	one := ruleFormFrom(url.Values{"g0.match": {"all"}, "g0.c0.op": {"is_empty"}, "g0.c1.op": {"is_empty"}})
	two := ruleFormFrom(url.Values{"match": {"any"}, "g0.match": {"all"}, "g0.c0.op": {"is_empty"}, "g1.match": {"any"}, "g1.c0.op": {"is_empty"}, "g1.c1.op": {"is_empty"}})
	tests := []struct {
		f           ruleForm
		field, want string
	}{
		{one, "rule.all[1].attribute", "g0.c1.attr"},
		{one, "rule.all[0].op", "g0.c0.op"},
		{one, "rule.all[1].value[0]", "g0.c1.value"},
		{two, "rule.any[1].any[1].value", "g1.c1.value"},
		{two, "rule.any[0].all[0].attribute", "g0.c0.attr"},
		{two, "rule.any[1]", "g1"},
		{two, "name", "name"},
	}
	for _, tc := range tests {
		_, paths, err := tc.f.rule(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := ruleFieldOf(tc.f, paths)(tc.field); got != tc.want {
			t.Errorf("%s → %s, want %s", tc.field, got, tc.want)
		}
	}
}

func TestBuilderButtons(t *testing.T) {
	f := newRuleForm()
	for _, do := range []string{"add-cond-0", "add-group", "add-cond-1", "del-cond-0-0"} {
		if !f.apply(do) {
			t.Fatalf("%s not handled", do)
		}
	}
	if len(f.Groups) != 2 || len(f.Groups[0].Conds) != 1 || len(f.Groups[1].Conds) != 2 || f.Groups[1].Conds[1].Key != "g1.c1" {
		t.Fatalf("after the buttons: %+v", f.Groups)
	}
	f.apply("del-group-0")
	f.apply("del-cond-0-0")
	f.apply("del-cond-0-0")
	if len(f.Groups) != 1 || len(f.Groups[0].Conds) != 1 {
		t.Errorf("removing everything should leave one empty condition: %+v", f.Groups)
	}
	if f.apply("save") {
		t.Error("save is not a builder button")
	}
}

func TestDescribeRule(t *testing.T) {
	tests := map[string]string{
		`{"all":[{"attribute":"orders","op":"gte","value":3}]}`: "orders is at least 3",
		`{"any":[{"attribute":"country","op":"in","value":["NL","BE"]},{"all":[{"attribute":"vip","op":"eq","value":true},{"attribute":"email","op":"is_not_empty"}]}]}`: "country is one of NL, BE or (vip is yes and email is not empty)",
		`{"not":{"attribute":"orders","op":"between","value":[1,2]}}`: "not orders is between 1 and 2",
		`{"all":[]}`: "everyone",
	}
	for in, want := range tests {
		if got := describeRule([]byte(in)); got != want {
			t.Errorf("%s\n got %q\nwant %q", in, got, want)
		}
	}
}

func TestFormatting(t *testing.T) {
	nums := map[any]string{0: "0", int64(999): "999", 1000: "1,000", int64(1234567): "1,234,567", -45678: "-45,678", json.Number("10000000"): "10,000,000"}
	for in, want := range nums {
		if got := formatNum(in); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", in, got, want)
		}
	}
	msgs := map[string]string{"required": "Please fill this in.", "must be true or false": "Must be true or false.", "Done!": "Done!", "": ""}
	for in, want := range msgs {
		if got := friendly(in); got != want {
			t.Errorf("friendly(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"connection.create": "Connection created", "session.login": "User signed in", "run.cancel": "Run cancelled", "odd": "Odd", "export.reticulate": "Export reticulate",
		"profile.import": "Profile imported", "profile.erase": "Profile erasure requested"} {
		if got := actionText(in); got != want {
			t.Errorf("actionText(%q) = %q, want %q", in, got, want)
		}
	}
	if p := percent(3, 4); p != 75 {
		t.Errorf("percent(3, 4) = %d", p)
	}
	if p := percent(5, 0); p != 0 {
		t.Errorf("percent(5, 0) = %d", p)
	}
	for in, want := range map[string]string{"": "/", "/exports": "/exports", "//evil.example": "/", "https://evil.example": "/", "/\\evil": "/"} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}
