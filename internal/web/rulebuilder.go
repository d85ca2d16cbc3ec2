package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/segsync/segsync/internal/store"
)

// The rule builder edits a rule of two levels: groups of conditions, each
// group matching all or any of its conditions, and the groups combined by
// all or any. Rules of another shape (with "not", or nested deeper) are
// edited as JSON. The builder only translates between form fields and the
// rule format of SPEC section 8; the API validates the rule.

// opChoice is an operator as the builder offers it.
type opChoice struct {
	Op, Label string
	Values    int // 0: no value, 1: one, 2: two (between), -1: a list
}

var ops = []opChoice{
	{"eq", "is", 1}, {"neq", "is not", 1},
	{"contains", "contains", 1}, {"starts_with", "starts with", 1}, {"ends_with", "ends with", 1},
	{"gt", "is greater than", 1}, {"gte", "is at least", 1}, {"lt", "is less than", 1}, {"lte", "is at most", 1},
	{"between", "is between", 2}, {"in", "is one of", -1}, {"not_in", "is none of", -1},
	{"is_empty", "is empty", 0}, {"is_not_empty", "is not empty", 0},
}

func opOf(op string) (opChoice, bool) {
	for _, o := range ops {
		if o.Op == op {
			return o, true
		}
	}
	return opChoice{}, false
}

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
	var groups []any
	var groupPaths []string
	for _, g := range f.Groups {
		var conds []any
		for _, c := range g.Conds {
			cond, err := c.condition(types)
			if err != nil {
				faults[c.Key+".value"] = err.Error()
				continue
			}
			conds = append(conds, cond)
		}
		groups = append(groups, map[string]any{g.Match: conds})
		groupPaths = append(groupPaths, g.Key)
	}
	if len(faults) > 0 {
		return nil, nil, faults
	}
	var rule any
	mapGroup := func(prefix string, gi int) {
		g := f.Groups[gi]
		paths[prefix] = g.Key
		for j, c := range g.Conds {
			paths[fmt.Sprintf("%s.%s[%d]", prefix, g.Match, j)] = c.Key
		}
	}
	if len(groups) == 1 {
		rule = groups[0]
		mapGroup("rule", 0)
	} else {
		rule = map[string]any{f.Match: groups}
		for i := range groups {
			mapGroup(fmt.Sprintf("rule.%s[%d]", f.Match, i), i)
		}
	}
	_ = groupPaths
	b, err := json.Marshal(rule)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the rule: %w", err)
	}
	return b, paths, nil
}

// formFault is a set of form errors found by the UI itself.
type formFault map[string]string

func (f formFault) Error() string { return "the form has errors" }

// condition builds one condition, typing the value by the attribute's type
// in the catalogue.
func (c condForm) condition(types map[string]string) (map[string]any, error) {
	cond := map[string]any{"attribute": strings.TrimSpace(c.Attr), "op": c.Op}
	o, ok := opOf(c.Op)
	if !ok {
		return cond, nil // the API names the unknown operator
	}
	typ := types[strings.TrimSpace(c.Attr)]
	raw := strings.TrimSpace(c.Value)
	switch o.Values {
	case 0:
		return cond, nil
	case 1:
		if raw == "" && typ != "string" {
			return nil, fmt.Errorf("Please enter a value.")
		}
		v, err := typedValue(raw, typ, c.Op)
		if err != nil {
			return nil, err
		}
		cond["value"] = v
	case 2:
		parts := splitList(raw, true)
		if len(parts) != 2 {
			return nil, fmt.Errorf("Enter two values separated by “and”, e.g. 10 and 20.")
		}
		lo, err := typedValue(parts[0], typ, c.Op)
		if err != nil {
			return nil, err
		}
		hi, err := typedValue(parts[1], typ, c.Op)
		if err != nil {
			return nil, err
		}
		cond["value"] = []any{lo, hi}
	default:
		parts := splitList(raw, false)
		if len(parts) == 0 {
			return nil, fmt.Errorf("Enter one or more values separated by commas.")
		}
		vals := make([]any, 0, len(parts))
		for _, p := range parts {
			v, err := typedValue(p, typ, c.Op)
			if err != nil {
				return nil, err
			}
			vals = append(vals, v)
		}
		cond["value"] = vals
	}
	return cond, nil
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

// typedValue turns text into the JSON value the attribute's type compares
// with: numbers for number attributes, true/false for booleans, text (which
// compares as a date when it looks like one) for the rest. Text operators
// always take text.
func typedValue(s, typ, op string) (any, error) {
	if op == "contains" || op == "starts_with" || op == "ends_with" {
		return s, nil
	}
	switch typ {
	case "number":
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return nil, fmt.Errorf("Enter a number, like 42 or 9.95.")
		}
		return json.Number(s), nil
	case "boolean", "bool":
		switch strings.ToLower(s) {
		case "true", "yes":
			return true, nil
		case "false", "no":
			return false, nil
		}
		return nil, fmt.Errorf("Enter yes or no.")
	case "date":
		if !dateRE.MatchString(s) {
			return nil, fmt.Errorf("Enter a date as YYYY-MM-DD, like 2024-12-31.")
		}
	}
	return s, nil
}

var dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$`)

// valueText writes a rule value back into the builder's text box.
func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = valueText(e)
		}
		return strings.Join(parts, ", ")
	case bool:
		if x {
			return "yes"
		}
		return "no"
	}
	return fmt.Sprint(v)
}

// decodeRule reads rule JSON into maps, keeping numbers exact.
func decodeRule(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// builderFromJSON loads a rule into the builder when its shape fits;
// otherwise the builder shows it as JSON.
func builderFromJSON(raw []byte) (ruleForm, bool) {
	f := ruleForm{Editor: "json", Match: "all", JSON: indentJSON(raw)}
	v, err := decodeRule(raw)
	if err != nil {
		return f, false
	}
	m, k, items, ok := combinator(v)
	_ = m
	if !ok {
		if c, ok := condOf(v); ok {
			f.Editor, f.Groups = "builder", []groupForm{{Match: "all", Conds: []condForm{c}}}
			return f.numbered(), true
		}
		return f, false
	}
	// One group: {all: [conditions]}.
	if conds, ok := condsOf(items); ok {
		f.Editor, f.Groups = "builder", []groupForm{{Match: k, Conds: conds}}
		return f.numbered(), true
	}
	// Groups: {all: [{any: [conditions]}, condition, …]}.
	b := ruleForm{Editor: "builder", Match: k, JSON: f.JSON}
	for _, it := range items {
		if c, ok := condOf(it); ok {
			b.Groups = append(b.Groups, groupForm{Match: "all", Conds: []condForm{c}})
			continue
		}
		_, gk, gitems, ok := combinator(it)
		if !ok {
			return f, false
		}
		conds, ok := condsOf(gitems)
		if !ok || len(conds) == 0 {
			return f, false
		}
		b.Groups = append(b.Groups, groupForm{Match: gk, Conds: conds})
	}
	if len(b.Groups) == 0 {
		return f, false
	}
	return b.numbered(), true
}

func combinator(v any) (map[string]any, string, []any, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, "", nil, false
	}
	for _, k := range []string{"all", "any"} {
		if items, ok := m[k].([]any); ok {
			return m, k, items, true
		}
	}
	return nil, "", nil, false
}

func condOf(v any) (condForm, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return condForm{}, false
	}
	attr, ok1 := m["attribute"].(string)
	op, ok2 := m["op"].(string)
	if !ok1 || !ok2 {
		return condForm{}, false
	}
	return condForm{Attr: attr, Op: op, Value: valueText(m["value"])}, true
}

func condsOf(items []any) ([]condForm, bool) {
	out := make([]condForm, 0, len(items))
	for _, it := range items {
		c, ok := condOf(it)
		if !ok {
			return nil, false
		}
		out = append(out, c)
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
// or vip is yes).
func describeRule(raw []byte) string {
	v, err := decodeRule(raw)
	if err != nil {
		return string(raw)
	}
	return describe(v, true)
}

func describe(v any, top bool) string {
	if c, ok := condOf(v); ok {
		o, known := opOf(c.Op)
		word := c.Op
		if known {
			word = o.Label
		}
		switch {
		case known && o.Values == 0:
			return c.Attr + " " + word
		case c.Op == "between":
			if vals, ok := v.(map[string]any)["value"].([]any); ok && len(vals) == 2 {
				return fmt.Sprintf("%s %s %s and %s", c.Attr, word, valueText(vals[0]), valueText(vals[1]))
			}
		}
		return c.Attr + " " + word + " " + c.Value
	}
	if m, k, items, ok := combinator(v); ok && m != nil {
		if len(items) == 0 {
			return map[string]string{"all": "everyone", "any": "no one"}[k]
		}
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = describe(it, false)
		}
		s := strings.Join(parts, map[string]string{"all": " and ", "any": " or "}[k])
		if !top && len(items) > 1 {
			s = "(" + s + ")"
		}
		return s
	}
	if m, ok := v.(map[string]any); ok {
		if inner, ok := m["not"]; ok {
			return "not " + describe(inner, false)
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// attrTypes maps attribute names to their catalogue type.
func attrTypes(attrs []store.AttributeInfo) map[string]string {
	m := make(map[string]string, len(attrs))
	for _, a := range attrs {
		m[a.Name] = a.Type
	}
	return m
}
