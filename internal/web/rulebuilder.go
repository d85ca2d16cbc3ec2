package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
)

// The rule builder edits a rule of two levels: groups of conditions, each
// group matching all or any of its conditions, and the groups combined by
// all or any. Rules of another shape (with "not", or nested deeper) are
// edited as JSON. The builder only translates between form fields and the
// rule format of SPEC section 8; the API validates the rule.

// ops are the operators the builder offers, in package segment's order.
var ops = segment.Operators

type condForm struct {
	Key             string // form field prefix, e.g. g0.c1
	Attr, Op, Value string
}

type groupForm struct {
	Key   string // g0
	Match string
	Conds []condForm
}

// ruleForm is the builder's state.
type ruleForm struct {
	Editor string // "builder" or "json"
	Match  string
	Groups []groupForm
	JSON   string
}

func newRuleForm() ruleForm {
	return ruleForm{Editor: "builder", Match: "all", Groups: []groupForm{{Match: "all", Conds: []condForm{{Op: "eq"}}}}}.numbered()
}

// numbered sets the field keys from the positions.
func (f ruleForm) numbered() ruleForm {
	for i := range f.Groups {
		g := &f.Groups[i]
		g.Key = "g" + strconv.Itoa(i)
		for j := range g.Conds {
			g.Conds[j].Key = g.Key + ".c" + strconv.Itoa(j)
		}
	}
	return f
}

func matchOf(v string) string {
	if v == "any" {
		return "any"
	}
	return "all"
}

// ruleFormFrom reads the builder's fields.
func ruleFormFrom(v url.Values) ruleForm {
	f := ruleForm{Editor: v.Get("editor"), Match: matchOf(v.Get("match")), JSON: v.Get("rule_json")}
	if f.Editor != "json" {
		f.Editor = "builder"
	}
	for i := 0; i < 100; i++ {
		gk := "g" + strconv.Itoa(i)
		if !v.Has(gk + ".match") {
			break
		}
		g := groupForm{Match: matchOf(v.Get(gk + ".match"))}
		for j := 0; j < 200; j++ {
			ck := gk + ".c" + strconv.Itoa(j)
			if !v.Has(ck + ".op") {
				break
			}
			g.Conds = append(g.Conds, condForm{Attr: v.Get(ck + ".attr"), Op: v.Get(ck + ".op"), Value: v.Get(ck + ".value")})
		}
		f.Groups = append(f.Groups, g)
	}
	return f.numbered()
}

var actionRE = regexp.MustCompile(`^(add-cond|del-group|del-cond)-(\d+)(?:-(\d+))?$`)

// apply performs a builder button (add or remove a row or a group); it
// reports whether do was such a button.
func (f *ruleForm) apply(do string) bool {
	switch do {
	case "add-group":
		f.Groups = append(f.Groups, groupForm{Match: "all", Conds: []condForm{{Op: "eq"}}})
		*f = f.numbered()
		return true
	case "to-json":
		if b, _, err := f.rule(nil); err == nil {
			f.JSON = indentJSON(b)
		}
		f.Editor = "json"
		return true
	case "to-builder":
		if g, ok := builderFromJSON([]byte(f.JSON)); ok {
			*f = g
		}
		return true
	}
	m := actionRE.FindStringSubmatch(do)
	if m == nil {
		return false
	}
	gi, _ := strconv.Atoi(m[2])
	if gi >= len(f.Groups) {
		return true
	}
	switch m[1] {
	case "add-cond":
		f.Groups[gi].Conds = append(f.Groups[gi].Conds, condForm{Op: "eq"})
	case "del-group":
		f.Groups = append(f.Groups[:gi], f.Groups[gi+1:]...)
	case "del-cond":
		ci, _ := strconv.Atoi(m[3])
		if c := f.Groups[gi].Conds; ci < len(c) {
			f.Groups[gi].Conds = append(c[:ci], c[ci+1:]...)
		}
		if len(f.Groups[gi].Conds) == 0 {
			f.Groups = append(f.Groups[:gi], f.Groups[gi+1:]...)
		}
	}
	if len(f.Groups) == 0 {
		*f = newRuleForm()
	}
	*f = f.numbered()
	return true
}

// rule builds the rule JSON from the form. paths maps the rule paths the API
// may name in its errors (rule.all[0].any[1].value) to form fields
// (g0.c1.value). A value the builder cannot turn into what the attribute
// holds is a form error, keyed by field.
func (f ruleForm) rule(types map[string]string) (json.RawMessage, map[string]string, error) {
	paths := map[string]string{}
	if f.Editor == "json" {
		raw := bytes.TrimSpace([]byte(f.JSON))
		if len(raw) == 0 || !json.Valid(raw) {
			return nil, nil, formFault{"rule_json": "This is not valid JSON. Check brackets, quotes and commas."}
		}
		return raw, paths, nil
	}
	faults := formFault{}
	groups := make([]*segment.Rule, 0, len(f.Groups))
	for _, g := range f.Groups {
		group := &segment.Rule{Kind: kindOf(g.Match), Rules: []*segment.Rule{}}
		for _, c := range g.Conds {
			cond, field, err := c.condition(types)
			if err != nil {
				faults[c.Key+"."+field] = err.Error()
				continue
			}
			group.Rules = append(group.Rules, cond)
		}
		groups = append(groups, group)
	}
	if len(faults) > 0 {
		return nil, nil, faults
	}
	mapGroup := func(prefix string, gi int) {
		g := f.Groups[gi]
		paths[prefix] = g.Key
		for j, c := range g.Conds {
			paths[fmt.Sprintf("%s.%s[%d]", prefix, g.Match, j)] = c.Key
		}
	}
	var rule *segment.Rule
	if len(groups) == 1 {
		rule = groups[0]
		mapGroup("rule", 0)
	} else {
		rule = &segment.Rule{Kind: kindOf(f.Match), Rules: groups}
		for i := range groups {
			mapGroup(fmt.Sprintf("rule.%s[%d]", f.Match, i), i)
		}
	}
	b, err := rule.MarshalJSON()
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the rule: %w", err)
	}
	return b, paths, nil
}

// kindOf is the rule kind of a group's match ("all" or "any").
func kindOf(match string) segment.Kind {
	if match == "any" {
		return segment.Any
	}
	return segment.All
}

// formFault is a set of form errors found by the UI itself.
type formFault map[string]string

func (f formFault) Error() string { return "the form has errors" }

// condition builds one condition, typing the value by the attribute's type
// in the catalogue. A fault names the condition's field it concerns (op or
// value).
func (c condForm) condition(types map[string]string) (*segment.Rule, string, error) {
	cond := &segment.Rule{Kind: segment.Condition, Attribute: strings.TrimSpace(c.Attr), Op: segment.Op(c.Op)}
	o, ok := cond.Op.Describe()
	if !ok {
		return nil, "op", fmt.Errorf("Choose an operator.")
	}
	typ := types[cond.Attribute]
	raw := strings.TrimSpace(c.Value)
	var texts []string
	switch o.Arity {
	case segment.NoValue:
	case segment.OneValue:
		if raw == "" && typ != "string" {
			return nil, "value", fmt.Errorf("Please enter a value.")
		}
		texts = []string{raw}
	case segment.TwoValues:
		if texts = splitList(raw, true); len(texts) != 2 {
			return nil, "value", fmt.Errorf("Enter two values separated by “and”, e.g. 10 and 20.")
		}
	default:
		if texts = splitList(raw, false); len(texts) == 0 {
			return nil, "value", fmt.Errorf("Enter one or more values separated by commas.")
		}
	}
	for _, s := range texts {
		v, err := typedValue(s, typ, o)
		if err != nil {
			return nil, "value", err
		}
		cond.Values = append(cond.Values, v)
	}
	return cond, "", nil
}

// splitList splits "a, b, c" (or "10 and 20" for between).
func splitList(s string, between bool) []string {
	if between {
		if lo, hi, ok := strings.Cut(s, " and "); ok {
			return []string{strings.TrimSpace(lo), strings.TrimSpace(hi)}
		}
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// typedValue turns text into the value the attribute's type compares
// with: numbers for number attributes, true/false for booleans, text (which
// compares as a date when it is one) for the rest. Text operators always
// take text.
func typedValue(s, typ string, o segment.Operator) (segment.Value, error) {
	if o.TextOnly {
		return segment.Value{Type: segment.Text, Raw: s}, nil
	}
	switch typ {
	case "number":
		// A JSON number (not +1, 0x10 or NaN, which Go would also parse).
		if _, err := strconv.ParseFloat(s, 64); err != nil || !json.Valid([]byte(s)) {
			return segment.Value{}, fmt.Errorf("Enter a number, like 42 or 9.95.")
		}
		return segment.Value{Type: segment.Number, Raw: s}, nil
	case "boolean", "bool":
		switch strings.ToLower(s) {
		case "true", "yes":
			return segment.Value{Type: segment.Bool, Raw: "true"}, nil
		case "false", "no":
			return segment.Value{Type: segment.Bool, Raw: "false"}, nil
		}
		return segment.Value{}, fmt.Errorf("Enter yes or no.")
	case "date":
		if !segment.IsDate(s) {
			return segment.Value{}, fmt.Errorf("Enter a date as YYYY-MM-DD, like 2024-12-31.")
		}
	}
	if segment.IsDate(s) {
		return segment.Value{Type: segment.Date, Raw: s}, nil
	}
	return segment.Value{Type: segment.Text, Raw: s}, nil
}

// valueText writes rule values back into the builder's text box.
func valueText(vs []segment.Value) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.Raw
		if v.Type == segment.Bool {
			parts[i] = map[string]string{"true": "yes", "false": "no"}[v.Raw]
		}
	}
	return strings.Join(parts, ", ")
}

// builderFromJSON loads a rule into the builder when its shape fits;
// otherwise (or when it is not a valid rule) the builder shows it as JSON.
func builderFromJSON(raw []byte) (ruleForm, bool) {
	f := ruleForm{Editor: "json", Match: "all", JSON: indentJSON(raw)}
	r, err := segment.Parse(raw, nil)
	if err != nil {
		return f, false
	}
	switch r.Kind {
	case segment.Condition:
		f.Editor, f.Groups = "builder", []groupForm{{Match: "all", Conds: []condForm{condOf(r)}}}
		return f.numbered(), true
	case segment.All, segment.Any:
	default:
		return f, false
	}
	// One group: {all: [conditions]}.
	if conds, ok := condsOf(r.Rules); ok {
		f.Editor, f.Groups = "builder", []groupForm{{Match: matchName(r.Kind), Conds: conds}}
		return f.numbered(), true
	}
	// Groups: {all: [{any: [conditions]}, condition, …]}.
	b := ruleForm{Editor: "builder", Match: matchName(r.Kind), JSON: f.JSON}
	for _, it := range r.Rules {
		if it.Kind == segment.Condition {
			b.Groups = append(b.Groups, groupForm{Match: "all", Conds: []condForm{condOf(it)}})
			continue
		}
		if it.Kind != segment.All && it.Kind != segment.Any {
			return f, false
		}
		conds, ok := condsOf(it.Rules)
		if !ok || len(conds) == 0 {
			return f, false
		}
		b.Groups = append(b.Groups, groupForm{Match: matchName(it.Kind), Conds: conds})
	}
	if len(b.Groups) == 0 {
		return f, false
	}
	return b.numbered(), true
}

// matchName is the builder's word for All and Any.
func matchName(k segment.Kind) string {
	if k == segment.Any {
		return "any"
	}
	return "all"
}

func condOf(r *segment.Rule) condForm {
	return condForm{Attr: r.Attribute, Op: string(r.Op), Value: valueText(r.Values)}
}

// condsOf is rules as conditions, when every one is a condition.
func condsOf(rules []*segment.Rule) ([]condForm, bool) {
	out := make([]condForm, 0, len(rules))
	for _, r := range rules {
		if r.Kind != segment.Condition {
			return nil, false
		}
		out = append(out, condOf(r))
	}
	return out, true
}

func indentJSON(raw []byte) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

// describeRule writes a rule in words: country is NL and (age is at least 18
// or vip is yes). What is not a valid rule is shown as it is.
func describeRule(raw []byte) string {
	r, err := segment.Parse(raw, nil)
	if err != nil {
		return string(raw)
	}
	return describe(r, true)
}

func describe(r *segment.Rule, top bool) string {
	switch r.Kind {
	case segment.Condition:
		o, _ := r.Op.Describe()
		switch o.Arity {
		case segment.NoValue:
			return r.Attribute + " " + o.Label
		case segment.TwoValues:
			return fmt.Sprintf("%s %s %s and %s", r.Attribute, o.Label, valueText(r.Values[:1]), valueText(r.Values[1:]))
		}
		return r.Attribute + " " + o.Label + " " + valueText(r.Values)
	case segment.Not:
		return "not " + describe(r.Rules[0], false)
	}
	if len(r.Rules) == 0 {
		return map[segment.Kind]string{segment.All: "everyone", segment.Any: "no one"}[r.Kind]
	}
	parts := make([]string, len(r.Rules))
	for i, c := range r.Rules {
		parts[i] = describe(c, false)
	}
	s := strings.Join(parts, map[segment.Kind]string{segment.All: " and ", segment.Any: " or "}[r.Kind])
	if !top && len(r.Rules) > 1 {
		s = "(" + s + ")"
	}
	return s
}

// attrTypes maps attribute names to their catalogue type.
func attrTypes(attrs []store.AttributeInfo) map[string]string {
	m := make(map[string]string, len(attrs))
	for _, a := range attrs {
		m[a.Name] = a.Type
	}
	return m
}
