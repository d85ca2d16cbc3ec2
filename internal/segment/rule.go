package segment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/profile/attrjson"

	"github.com/segsync/segsync/internal/textfold"
)

// Limits on a rule's size.
const (
	MaxDepth      = 16   // levels of nesting, the root being level 1
	MaxConditions = 1000 // conditions in one rule
	MaxValues     = 1000 // values of one in/not_in
	// MaxTotalValues bounds the values of all in/not_in of one rule, so a
	// rule's SQL stays far below the databases' parameter limits (SQLite
	// 32766, PostgreSQL 65535).
	MaxTotalValues = 5000
)

// Kind is the kind of a rule node.
type Kind uint8

const (
	All       Kind = iota + 1 // every child matches
	Any                       // at least one child matches
	Not                       // the one child does not match
	Condition                 // attribute op value
)

// Op is a condition's operator.
type Op string

const (
	Eq         Op = "eq"
	Neq        Op = "neq"
	Lt         Op = "lt"
	Lte        Op = "lte"
	Gt         Op = "gt"
	Gte        Op = "gte"
	Between    Op = "between"
	In         Op = "in"
	NotIn      Op = "not_in"
	Contains   Op = "contains"
	StartsWith Op = "starts_with"
	EndsWith   Op = "ends_with"
	IsEmpty    Op = "is_empty"
	IsNotEmpty Op = "is_not_empty"
)

// Ops lists every operator in the order of SPEC section 8.
var Ops = []Op{Eq, Neq, Lt, Lte, Gt, Gte, Between, In, NotIn, Contains, StartsWith, EndsWith, IsEmpty, IsNotEmpty}

// Arity is how many values an operator takes.
type Arity int8

const (
	NoValue   Arity = 0  // is_empty, is_not_empty
	OneValue  Arity = 1  // eq, lt, contains, …
	TwoValues Arity = 2  // between: [low, high]
	ValueList Arity = -1 // in, not_in: one or more
)

// Operator describes an operator for the people who choose it.
type Operator struct {
	Op    Op
	Label string // in words: "is at least"
	Arity Arity
	// TextOnly operators compare text, whatever the value looks like.
	TextOnly bool
}

// Operators describes every operator of Ops, in the order a person picks
// them from a list: equality, text, order, ranges and lists, emptiness.
var Operators = []Operator{
	{Eq, "is", OneValue, false}, {Neq, "is not", OneValue, false},
	{Contains, "contains", OneValue, true}, {StartsWith, "starts with", OneValue, true}, {EndsWith, "ends with", OneValue, true},
	{Gt, "is greater than", OneValue, false}, {Gte, "is at least", OneValue, false},
	{Lt, "is less than", OneValue, false}, {Lte, "is at most", OneValue, false},
	{Between, "is between", TwoValues, false}, {In, "is one of", ValueList, false}, {NotIn, "is none of", ValueList, false},
	{IsEmpty, "is empty", NoValue, false}, {IsNotEmpty, "is not empty", NoValue, false},
}

// Describe returns the description of o; false for an unknown operator.
func (o Op) Describe() (Operator, bool) {
	for _, d := range Operators {
		if d.Op == o {
			return d, true
		}
	}
	return Operator{}, false
}

func (o Op) valid() bool {
	for _, x := range Ops {
		if o == x {
			return true
		}
	}
	return false
}

// Type is how a value compares.
type Type uint8

const (
	Number Type = iota + 1
	Date        // YYYY-MM-DD, or with a time when Value.HasTime
	Bool
	Text
)

func (t Type) String() string {
	switch t {
	case Number:
		return "number"
	case Date:
		return "date"
	case Bool:
		return "boolean"
	case Text:
		return "text"
	}
	return "unknown"
}

// Value is one scalar of a condition.
type Value struct {
	Type Type
	// Raw is the value as given: the number's JSON text, the date or text
	// string; for booleans "true" or "false".
	Raw string
	// HasTime is set for dates with a time of day.
	HasTime bool
}

// Rule is a node of a rule tree. All and Any have Rules (possibly none), Not
// has exactly one, Condition has Attribute, Op and Values (none for
// is_empty/is_not_empty, two for between, one or more for in/not_in, one
// otherwise).
type Rule struct {
	Kind      Kind
	Rules     []*Rule
	Attribute string
	Op        Op
	Values    []Value
}

// Known says whether an attribute name is in the catalogue; nil accepts any
// well-formed name.
type Known func(name string) bool

// KnownSet returns a Known over a fixed list of names.
func KnownSet(names ...string) Known {
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		set[n] = struct{}{}
	}
	return func(name string) bool { _, ok := set[name]; return ok }
}

var attrName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ValidAttributeName reports whether name is a well-formed attribute name:
// attrjson.NamePattern, or one of the reserved names segsync writes
// (attrjson.ReservedPattern, e.g. mailchimp.<audience>.status).
func ValidAttributeName(name string) bool {
	return attrName.MatchString(name) || attrjson.ValidReserved(name)
}

// Parse decodes and validates a rule. Faults are returned together as a
// fielderr.List whose paths start with "rule". known checks attribute names
// against the catalogue (nil: any well-formed name).
func Parse(data []byte, known Known) (*Rule, error) {
	return ParseAt("rule", data, known)
}

// ParseAt is Parse with another root path, e.g. "segments[3].rule".
func ParseAt(path string, data []byte, known Known) (*Rule, error) {
	if t := bytes.TrimSpace(data); len(t) == 0 || string(t) == "null" {
		return nil, fielderr.New(path, "is required")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fielderr.New(path, "not valid JSON: "+err.Error())
	}
	if dec.More() {
		return nil, fielderr.New(path, "not valid JSON: data after the rule")
	}
	p := parser{known: known}
	r := p.rule(path, v, 1)
	if err := p.errs.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

// UnmarshalJSON parses a rule without a catalogue (any well-formed attribute
// name is accepted); used to read rules back from storage.
func (r *Rule) UnmarshalJSON(data []byte) error {
	parsed, err := Parse(data, nil)
	if err != nil {
		return err
	}
	*r = *parsed
	return nil
}

type parser struct {
	known      Known
	errs       fielderr.List
	conditions int
	listValues int // values of every in/not_in so far
}

func (p *parser) rule(path string, v any, depth int) *Rule {
	if depth > MaxDepth {
		p.errs.Add(path, fmt.Sprintf("rules may nest at most %d levels", MaxDepth))
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		p.errs.Add(path, "must be an object: {\"all\": […]}, {\"any\": […]}, {\"not\": …} or {\"attribute\", \"op\", \"value\"}")
		return nil
	}
	var kinds []string
	for _, k := range []string{"all", "any", "not"} {
		if _, ok := obj[k]; ok {
			kinds = append(kinds, k)
		}
	}
	_, hasAttr := obj["attribute"]
	_, hasOp := obj["op"]
	if hasAttr || hasOp {
		kinds = append(kinds, "condition")
	}
	if len(kinds) != 1 {
		if len(kinds) == 0 {
			p.errs.Add(path, "must have one of \"all\", \"any\", \"not\" or \"attribute\" and \"op\"")
		} else {
			p.errs.Add(path, fmt.Sprintf("must be one rule, not several (%v)", kinds))
		}
		return nil
	}
	switch kinds[0] {
	case "all", "any":
		key := kinds[0]
		p.unknownKeys(path, obj, key)
		list, ok := obj[key].([]any)
		if !ok {
			p.errs.Add(path+"."+key, "must be an array of rules")
			return nil
		}
		r := &Rule{Kind: All, Rules: make([]*Rule, 0, len(list))}
		if key == "any" {
			r.Kind = Any
		}
		for i, c := range list {
			r.Rules = append(r.Rules, p.rule(fmt.Sprintf("%s.%s[%d]", path, key, i), c, depth+1))
		}
		return r
	case "not":
		p.unknownKeys(path, obj, "not")
		child := p.rule(path+".not", obj["not"], depth+1)
		return &Rule{Kind: Not, Rules: []*Rule{child}}
	}
	return p.condition(path, obj)
}

func (p *parser) unknownKeys(path string, obj map[string]any, allowed ...string) {
	var extra []string
outer:
	for k := range obj {
		for _, a := range allowed {
			if k == a {
				continue outer
			}
		}
		extra = append(extra, k)
	}
	sort.Strings(extra)
	for _, k := range extra {
		p.errs.Add(path+"."+k, "unknown field")
	}
}

func (p *parser) condition(path string, obj map[string]any) *Rule {
	p.unknownKeys(path, obj, "attribute", "op", "value")
	p.conditions++
	if p.conditions == MaxConditions+1 {
		p.errs.Add(path, fmt.Sprintf("a rule may hold at most %d conditions", MaxConditions))
	}
	r := &Rule{Kind: Condition}
	ok := true
	switch name, isStr := obj["attribute"].(string); {
	case obj["attribute"] == nil:
		p.errs.Add(path+".attribute", "is required")
		ok = false
	case !isStr || !ValidAttributeName(name):
		p.errs.Add(path+".attribute", "must be an attribute name: a letter or _, then up to 63 letters, digits or _ (or mailchimp.<audience id>.status / .status_changed_at)")
		ok = false
	case p.known != nil && !p.known(name):
		p.errs.Add(path+".attribute", fmt.Sprintf("unknown attribute %q", name))
		r.Attribute = name
	default:
		r.Attribute = name
	}
	op, isStr := obj["op"].(string)
	switch {
	case obj["op"] == nil:
		p.errs.Add(path+".op", "is required")
		return nil
	case !isStr || !Op(op).valid():
		p.errs.Add(path+".op", fmt.Sprintf("unknown operator %s; one of %v", describe(obj["op"]), Ops))
		return nil
	}
	r.Op = Op(op)
	raw, hasValue := obj["value"]
	vpath := path + ".value"
	switch r.Op {
	case IsEmpty, IsNotEmpty:
		if hasValue && raw != nil {
			p.errs.Add(vpath, string(r.Op)+" takes no value")
			ok = false
		}
	case In, NotIn:
		list, isList := raw.([]any)
		if !isList || len(list) == 0 || len(list) > MaxValues {
			p.errs.Add(vpath, fmt.Sprintf("%s takes an array of 1 to %d values", r.Op, MaxValues))
			return nil
		}
		if p.listValues += len(list); p.listValues > MaxTotalValues && p.listValues-len(list) <= MaxTotalValues {
			p.errs.Add(vpath, fmt.Sprintf("a rule may hold at most %d in/not_in values in all", MaxTotalValues))
			ok = false
		}
		r.Values = p.values(vpath, list, Number, Date, Bool, Text)
		ok = ok && r.Values != nil
	case Between:
		list, isList := raw.([]any)
		if !isList || len(list) != 2 {
			p.errs.Add(vpath, "between takes [low, high]")
			return nil
		}
		r.Values = p.values(vpath, list, Number, Date, Text)
		ok = ok && r.Values != nil
		if r.Values != nil && inverted(r.Values[0], r.Values[1]) {
			p.errs.Add(vpath, "low is greater than high: nothing can match")
			ok = false
		}
	case Contains, StartsWith, EndsWith:
		s, isStr := raw.(string)
		if !isStr || s == "" {
			p.errs.Add(vpath, string(r.Op)+" takes a non-empty string")
			return nil
		}
		if strings.ContainsRune(s, 0) {
			p.errs.Add(vpath, "must not contain the NUL character")
			return nil
		}
		r.Values = []Value{{Type: Text, Raw: s}}
	default:
		allowed := []Type{Number, Date, Bool, Text}
		if r.Op != Eq && r.Op != Neq {
			allowed = []Type{Number, Date, Text} // no order among booleans
		}
		v, good := p.scalar(vpath, raw, allowed...)
		if !good {
			return nil
		}
		r.Values = []Value{v}
	}
	if !ok {
		return nil
	}
	return r
}

// values parses the elements of an in/not_in/between array: all of one type.
func (p *parser) values(path string, list []any, allowed ...Type) []Value {
	out := make([]Value, 0, len(list))
	good := true
	for i, x := range list {
		v, ok := p.scalar(fmt.Sprintf("%s[%d]", path, i), x, allowed...)
		if !ok {
			good = false
			continue
		}
		if len(out) > 0 && out[0].Type != v.Type {
			p.errs.Add(fmt.Sprintf("%s[%d]", path, i), fmt.Sprintf("is %s, but %s[0] is %s: values must be of one type", v.Type, path, out[0].Type))
			good = false
			continue
		}
		out = append(out, v)
	}
	if !good {
		return nil
	}
	return out
}

func (p *parser) scalar(path string, x any, allowed ...Type) (Value, bool) {
	var v Value
	switch t := x.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if mantissa, _, _ := strings.Cut(strings.ToLower(string(t)), "e"); err != nil ||
			(f == 0 && strings.ContainsAny(mantissa, "123456789")) {
			p.errs.Add(path, "number out of range")
			return v, false
		}
		v = Value{Type: Number, Raw: string(t)}
	case bool:
		v = Value{Type: Bool, Raw: strconv.FormatBool(t)}
	case string:
		if strings.ContainsRune(t, 0) {
			// PostgreSQL text cannot hold NUL, nor can stored attributes.
			p.errs.Add(path, "must not contain the NUL character")
			return v, false
		}
		switch norm, isDate := attrjson.NormalizeDate(t); {
		case isDate:
			// The importer's forms and normalisation, so a rule value
			// compares with the stored profile values it was typed like.
			if _, _, ok := DateKeys(norm); !ok {
				p.errs.Add(path, fmt.Sprintf("%q is outside the years 1000 to 9999", t))
				return v, false
			}
			v = Value{Type: Date, Raw: norm, HasTime: len(norm) > 10}
		case looksLikeDate(t):
			p.errs.Add(path, fmt.Sprintf("%q is not a valid date (YYYY-MM-DD, optionally with a time such as T10:30:00Z)", t))
			return v, false
		default:
			v = Value{Type: Text, Raw: t}
		}
	case nil:
		p.errs.Add(path, "is required")
		return v, false
	default:
		p.errs.Add(path, "must be a number, string or boolean")
		return v, false
	}
	for _, a := range allowed {
		if v.Type == a {
			return v, true
		}
	}
	p.errs.Add(path, fmt.Sprintf("a %s value does not fit this operator", v.Type))
	return v, false
}

// inverted reports whether between's bounds are in the wrong order, where
// that can be told from the values alone.
func inverted(lo, hi Value) bool {
	switch {
	case lo.Type == Number:
		a, _ := strconv.ParseFloat(lo.Raw, 64)
		b, _ := strconv.ParseFloat(hi.Raw, 64)
		return a > b
	case lo.Type == Text:
		return textfold.Fold(lo.Raw) > textfold.Fold(hi.Raw)
	case lo.Type == Date && lo.HasTime == hi.HasTime:
		ld, li, _ := DateKeys(lo.Raw)
		hd, hi2, _ := DateKeys(hi.Raw)
		if lo.HasTime {
			return li > hi2
		}
		return ld > hd
	}
	return false
}

func describe(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return string(b)
}

// MarshalJSON writes the rule in the form Parse reads.
func (r *Rule) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if err := r.write(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (r *Rule) write(b *bytes.Buffer) error {
	if r == nil {
		return fmt.Errorf("segment: nil rule")
	}
	switch r.Kind {
	case All, Any:
		if r.Kind == All {
			b.WriteString(`{"all":[`)
		} else {
			b.WriteString(`{"any":[`)
		}
		for i, c := range r.Rules {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := c.write(b); err != nil {
				return err
			}
		}
		b.WriteString("]}")
	case Not:
		if len(r.Rules) != 1 {
			return fmt.Errorf("segment: a not rule needs exactly one child")
		}
		b.WriteString(`{"not":`)
		if err := r.Rules[0].write(b); err != nil {
			return err
		}
		b.WriteByte('}')
	case Condition:
		name, _ := json.Marshal(r.Attribute)
		op, _ := json.Marshal(string(r.Op))
		b.WriteString(`{"attribute":`)
		b.Write(name)
		b.WriteString(`,"op":`)
		b.Write(op)
		switch r.Op {
		case IsEmpty, IsNotEmpty:
		case In, NotIn, Between:
			b.WriteString(`,"value":[`)
			for i, v := range r.Values {
				if i > 0 {
					b.WriteByte(',')
				}
				v.write(b)
			}
			b.WriteByte(']')
		default:
			if len(r.Values) != 1 {
				return fmt.Errorf("segment: %s needs one value", r.Op)
			}
			b.WriteString(`,"value":`)
			r.Values[0].write(b)
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("segment: unknown rule kind %d", r.Kind)
	}
	return nil
}

func (v Value) write(b *bytes.Buffer) {
	switch v.Type {
	case Number, Bool:
		b.WriteString(v.Raw)
	default:
		s, _ := json.Marshal(v.Raw)
		b.Write(s)
	}
}

// String is the rule's JSON form.
func (r *Rule) String() string {
	b, err := r.MarshalJSON()
	if err != nil {
		return "<invalid rule: " + err.Error() + ">"
	}
	return string(b)
}

// Attributes lists the attribute names the rule reads, sorted, once each.
func (r *Rule) Attributes() []string {
	set := map[string]struct{}{}
	var walk func(*Rule)
	walk = func(n *Rule) {
		if n == nil {
			return
		}
		if n.Kind == Condition {
			set[n.Attribute] = struct{}{}
		}
		for _, c := range n.Rules {
			walk(c)
		}
	}
	walk(r)
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
