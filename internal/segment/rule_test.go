package segment

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/fielderr"
)

func TestParseValid(t *testing.T) {
	t.Parallel()
	known := KnownSet("age", "country", "born", "vip", "name")
	tests := []struct {
		in, canonical string
	}{
		{`{"attribute":"age","op":"gt","value":30}`, ``},
		{` {"value": 1.50, "op": "eq", "attribute": "age"} `, `{"attribute":"age","op":"eq","value":1.50}`},
		{`{"attribute":"country","op":"in","value":["NL","BE"]}`, ``},
		{`{"attribute":"born","op":"between","value":["2024-01-01","2024-12-31T23:59:59Z"]}`, ``},
		{`{"attribute":"born","op":"between","value":["2024-01-01T10:00:00+02:00","2024-01-01T08:00Z"]}`,
			`{"attribute":"born","op":"between","value":["2024-01-01T08:00:00Z","2024-01-01T08:00:00Z"]}`},
		{`{"attribute":"born","op":"in","value":["2024-03-01 10:00","2024-03-01t10:00:30.5+0200","2024-03-01T10:00-05"]}`,
			`{"attribute":"born","op":"in","value":["2024-03-01T10:00:00Z","2024-03-01T08:00:30Z","2024-03-01T15:00:00Z"]}`},
		{`{"attribute":"name","op":"eq","value":"2024-03-01 meeting"}`, ``},
		{`{"attribute":"name","op":"eq","value":"2024-03-01x"}`, ``},
		{`{"attribute":"age","op":"between","value":[0e5,0.0]}`, ``},
		{`{"attribute":"age","op":"eq","value":4.9e-324}`, ``},
		{`{"attribute":"vip","op":"eq","value":true}`, ``},
		{`{"attribute":"name","op":"is_empty"}`, ``},
		{`{"attribute":"name","op":"is_not_empty","value":null}`, `{"attribute":"name","op":"is_not_empty"}`},
		{`{"attribute":"name","op":"contains","value":"2024-01-01"}`, ``},
		{`{"all":[]}`, ``},
		{`{"any":[{"not":{"attribute":"age","op":"lte","value":-1e3}},{"all":[{"attribute":"name","op":"ends_with","value":"\"é\u0001"}]}]}`, ``},
	}
	for _, tc := range tests {
		r, err := Parse([]byte(tc.in), known)
		if err != nil {
			t.Errorf("Parse(%s): %v", tc.in, err)
			continue
		}
		want := tc.canonical
		if want == "" {
			want = tc.in
		}
		b, err := json.Marshal(r)
		if err != nil || string(b) != want {
			t.Errorf("Marshal(Parse(%s)) = %s, %v; want %s", tc.in, b, err, want)
		}
		var again Rule
		if err := json.Unmarshal(b, &again); err != nil || again.String() != string(b) {
			t.Errorf("round trip of %s: %s, %v", b, again.String(), err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	known := KnownSet("age", "country", "born", "vip")
	deep := strings.Repeat(`{"not":`, 16) + `{"attribute":"age","op":"is_empty"}` + strings.Repeat(`}`, 16)
	tests := []struct {
		in   string
		want []string // "field: message fragment"
	}{
		{`nope`, []string{"rule: not valid JSON"}},
		{``, []string{"rule: is required"}},
		{` null `, []string{"rule: is required"}},
		{`{} {}`, []string{"rule: not valid JSON"}},
		{`[]`, []string{"rule: must be an object"}},
		{`{}`, []string{"rule: must have one of"}},
		{`{"all":[],"any":[]}`, []string{"rule: must be one rule"}},
		{`{"all":{}}`, []string{"rule.all: must be an array"}},
		{`{"all":[],"x":1}`, []string{"rule.x: unknown field"}},
		{`{"all":[{"attribute":"age","op":"gt","value":1},{"attribute":"age","op":"gt","value":1},{"attribute":"age","op":"like","value":1}]}`,
			[]string{"rule.all[2].op: unknown operator \"like\""}},
		{`{"any":[{"attribute":"height","op":"gt","value":1}]}`, []string{`rule.any[0].attribute: unknown attribute "height"`}},
		{`{"attribute":"9x","op":"gt","value":1}`, []string{"rule.attribute: must be an attribute name"}},
		{`{"attribute":"age","op":"gt"}`, []string{"rule.value: is required"}},
		{`{"op":"gt","value":1}`, []string{"rule.attribute: is required"}},
		{`{"attribute":"age","value":1}`, []string{"rule.op: is required"}},
		{`{"attribute":"age","op":"gt","value":1,"extra":2}`, []string{"rule.extra: unknown field"}},
		{`{"attribute":"vip","op":"gt","value":true}`, []string{"rule.value: a boolean value does not fit"}},
		{`{"attribute":"age","op":"eq","value":[1]}`, []string{"rule.value: must be a number, string or boolean"}},
		{`{"attribute":"age","op":"eq","value":{"a":1}}`, []string{"rule.value: must be a number, string or boolean"}},
		{`{"attribute":"age","op":"eq","value":1e999}`, []string{"rule.value: number out of range"}},
		{`{"attribute":"born","op":"eq","value":"2024-02-30"}`, []string{"rule.value: \"2024-02-30\" is not a valid date"}},
		{`{"attribute":"age","op":"in","value":[]}`, []string{"rule.value: in takes an array of 1 to 1000"}},
		{`{"attribute":"age","op":"in","value":5}`, []string{"rule.value: in takes an array"}},
		{`{"attribute":"age","op":"in","value":[1,"a",true]}`, []string{"rule.value[1]: is text, but rule.value[0] is number", "rule.value[2]: is boolean"}},
		{`{"attribute":"age","op":"between","value":[1]}`, []string{"rule.value: between takes [low, high]"}},
		{`{"attribute":"age","op":"between","value":[true,false]}`, []string{"rule.value[0]: a boolean value", "rule.value[1]: a boolean value"}},
		{`{"attribute":"age","op":"contains","value":""}`, []string{"rule.value: contains takes a non-empty string"}},
		{`{"attribute":"age","op":"starts_with","value":1}`, []string{"rule.value: starts_with takes a non-empty string"}},
		{`{"attribute":"age","op":"is_empty","value":1}`, []string{"rule.value: is_empty takes no value"}},
		{`{"not":[]}`, []string{"rule.not: must be an object"}},
		{`{"attribute":"age","op":"eq","value":1e-400}`, []string{"rule.value: number out of range"}},
		{`{"attribute":"born","op":"eq","value":"2024-03-01 25:00"}`, []string{"rule.value: \"2024-03-01 25:00\" is not a valid date"}},
		{`{"attribute":"born","op":"eq","value":"2024-03-01T10:00+24:00"}`, []string{"rule.value: is not a valid date"}},
		{`{"attribute":"born","op":"eq","value":"0999-12-31"}`, []string{"rule.value: \"0999-12-31\" is outside the years 1000 to 9999"}},
		{`{"attribute":"age","op":"between","value":[5,4.5]}`, []string{"rule.value: low is greater than high"}},
		{`{"attribute":"age","op":"between","value":["b","A"]}`, []string{"rule.value: low is greater than high"}},
		{`{"attribute":"born","op":"between","value":["2024-01-02","2024-01-01"]}`, []string{"rule.value: low is greater than high"}},
		{`{"attribute":"born","op":"between","value":["2024-01-01T10:00:00+02:00","2024-01-01T07:59Z"]}`, []string{"rule.value: low is greater than high"}},
		{`{"attribute":"age","op":"in","value":["a\u0000"]}`, []string{"rule.value[0]: must not contain the NUL character"}},
		{`{"attribute":"age","op":"contains","value":"\u0000"}`, []string{"rule.value: must not contain the NUL character"}},
		{deep, []string{"rule" + strings.Repeat(".not", 16) + ": rules may nest at most 16 levels"}},
		{`{"all":[{"attribute":"x","op":"eq","value":1},{"attribute":"age","op":"nope"},{"not":{"attribute":"age","op":"eq"}}]}`,
			[]string{`rule.all[0].attribute: unknown attribute "x"`, "rule.all[1].op: unknown operator", "rule.all[2].not.value: is required"}},
	}
	for _, tc := range tests {
		r, err := Parse([]byte(tc.in), known)
		var list fielderr.List
		if r != nil || !errors.As(err, &list) {
			t.Errorf("Parse(%s) = %v, %v; want a fielderr.List", tc.in, r, err)
			continue
		}
		if len(list) != len(tc.want) {
			t.Errorf("Parse(%s): %d faults %v, want %d %v", tc.in, len(list), list, len(tc.want), tc.want)
			continue
		}
		for i, w := range tc.want {
			field, msg, _ := strings.Cut(w, ": ")
			if list[i].Field != field || !strings.Contains(list[i].Message, msg) {
				t.Errorf("Parse(%s) fault %d = %q: %q, want %q: …%q…", tc.in, i, list[i].Field, list[i].Message, field, msg)
			}
		}
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	ok := strings.Repeat(`{"not":`, 15) + `{"attribute":"a","op":"is_empty"}` + strings.Repeat(`}`, 15)
	if _, err := Parse([]byte(ok), nil); err != nil {
		t.Errorf("16 levels: %v", err)
	}
	conds := make([]string, MaxConditions+1)
	for i := range conds {
		conds[i] = `{"attribute":"a","op":"is_empty"}`
	}
	if _, err := Parse([]byte(`{"any":[`+strings.Join(conds[1:], ",")+`]}`), nil); err != nil {
		t.Errorf("%d conditions: %v", MaxConditions, err)
	}
	_, err := Parse([]byte(`{"any":[`+strings.Join(conds, ",")+`]}`), nil)
	if err == nil || !strings.Contains(err.Error(), "rule.any[1000]: a rule may hold at most 1000 conditions") {
		t.Errorf("%d conditions: %v", MaxConditions+1, err)
	}
}

func TestParseValueLimit(t *testing.T) {
	t.Parallel()
	list := func(n int) string {
		vs := make([]string, n)
		for i := range vs {
			vs[i] = strconv.Itoa(i)
		}
		return `{"attribute":"a","op":"in","value":[` + strings.Join(vs, ",") + `]}`
	}
	five := strings.TrimSuffix(strings.Repeat(list(1000)+",", 5), ",")
	if _, err := Parse([]byte(`{"any":[`+five+`]}`), nil); err != nil {
		t.Errorf("%d values: %v", MaxTotalValues, err)
	}
	_, err := Parse([]byte(`{"any":[`+five+`,`+list(1)+`,`+list(2)+`]}`), nil)
	if err == nil || err.Error() != "rule.any[5].value: a rule may hold at most 5000 in/not_in values in all" {
		t.Errorf("%d values: %v", MaxTotalValues+3, err)
	}
}

func TestAttributes(t *testing.T) {
	t.Parallel()
	r, err := Parse([]byte(`{"all":[{"attribute":"b","op":"is_empty"},{"not":{"attribute":"a","op":"eq","value":1}},{"attribute":"b","op":"eq","value":2}]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Attributes(), ","); got != "a,b" {
		t.Errorf("Attributes = %s", got)
	}
}

func TestDateKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, day, instant string
	}{
		{"2024-03-01", "2024-03-01", "2024-03-01T00:00:00"},
		{"2024-02-29T23:30:00+05:00", "2024-02-29", "2024-02-29T18:30:00"},
		{"2024-03-01T22:00-03:00", "2024-03-01", "2024-03-02T01:00:00"},
		{"2024-03-01T10:00:59.999Z", "2024-03-01", "2024-03-01T10:00:59"},
		{"1000-01-01T00:30:00+01:00", "1000-01-01", "0999-12-31T23:30:00"},
		{"2023-02-29", "", ""},
		{"2024-04-31", "", ""},
		{"2024-03-01T24:00", "", ""},
		{"2024-03-01T10:00:00+16:00", "", ""},
		{"2024-03-01 10:00", "", ""},
		{"0999-01-01", "", ""},
		{"2024-03-01T10:00:00.", "", ""},
	}
	for _, tc := range tests {
		day, instant, ok := DateKeys(tc.in)
		if ok != (tc.day != "") || day != tc.day || instant != tc.instant {
			t.Errorf("DateKeys(%q) = %q, %q, %v; want %q, %q", tc.in, day, instant, ok, tc.day, tc.instant)
		}
	}
}

// TestOperatorsDescribeEveryOp keeps the operator metadata complete and
// consistent with what Parse accepts.
func TestOperatorsDescribeEveryOp(t *testing.T) {
	if len(Operators) != len(Ops) {
		t.Fatalf("%d operators described, %d exist", len(Operators), len(Ops))
	}
	for _, op := range Ops {
		d, ok := op.Describe()
		if !ok || d.Label == "" {
			t.Errorf("%s is not described", op)
			continue
		}
		// A rule with as many values as the arity says parses.
		value := map[Arity]string{NoValue: ``, OneValue: `,"value":"x"`, TwoValues: `,"value":["a","b"]`, ValueList: `,"value":["a"]`}[d.Arity]
		if _, err := Parse([]byte(`{"attribute":"a","op":"`+string(op)+`"`+value+`}`), nil); err != nil {
			t.Errorf("%s with arity %d: %v", op, d.Arity, err)
		}
		if d.TextOnly != (op == Contains || op == StartsWith || op == EndsWith) {
			t.Errorf("%s: TextOnly %v", op, d.TextOnly)
		}
	}
	if _, ok := Op("like").Describe(); ok {
		t.Error("an unknown operator is described")
	}
}

func TestIsDate(t *testing.T) {
	for s, want := range map[string]bool{
		"2024-02-29": true, "2024-02-30": false, "2024-03-01T10:00:00Z": true, "2024-03-01 10:00": true,
		"2024-03-01T10:00+01": true, "2024-03-01t10:00:00+0130": true, "0999-12-31": false, "2024-3-1": false, "soon": false,
	} {
		if got := IsDate(s); got != want {
			t.Errorf("IsDate(%q) = %v, want %v", s, got, want)
		}
	}
}
