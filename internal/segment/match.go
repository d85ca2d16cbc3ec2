package segment

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/textfold"
)

// ErrStatusRule is NewMatcher's answer for a rule on Mailchimp's statuses
// (the reserved attributes): they live in the table profile_statuses, not
// in a profile's attributes, so only the SQL of Compile can evaluate it.
var ErrStatusRule = errors.New("segment: the rule reads Mailchimp's statuses, which are not in a profile's attributes")

// Matcher evaluates a rule on one profile's stored attribute object, in Go,
// with the meaning Compile gives it in SQL (the package doc): the JSON
// types, dates at each value's granularity, text in textfold.Fold's form,
// missing attributes, not as the exact complement. A member read on SQLite
// evaluates its rules with it instead of running JSON functions in the
// database on every profile (issue 15). Numbers compare as SQLite compares
// them (64-bit integers, or floats, an integer and a float exactly), so a
// Matcher agrees with SQLite's SQL, and like it may differ from
// PostgreSQL's exact decimals on values beyond 15 significant digits.
// TestRandomRulesAgree checks the agreement. A Matcher is safe for
// concurrent use.
type Matcher struct{ root matchNode }

// matchNode is a rule node made ready for evaluation: values parsed and
// folded once.
type matchNode struct {
	kind   Kind
	kids   []matchNode
	attr   string
	op     Op
	vals   []matchValue
	needle string // contains, starts_with, ends_with: the folded value
}

// matchValue is a condition's value in the form it compares in.
type matchValue struct {
	typ     Type
	num     number
	key     string // Text: folded; Date: the day or instant key; Bool: "true" or "false"
	hasTime bool
}

// NewMatcher makes a rule ready for Match. It refuses what Compile
// refuses, and a rule on a reserved attribute (ErrStatusRule).
func NewMatcher(r *Rule) (*Matcher, error) {
	root, err := newMatchNode(r, 1)
	if err != nil {
		return nil, err
	}
	return &Matcher{root: root}, nil
}

func newMatchNode(r *Rule, depth int) (matchNode, error) {
	if r == nil {
		return matchNode{}, fmt.Errorf("segment: nil rule")
	}
	if depth > MaxDepth {
		return matchNode{}, fmt.Errorf("segment: rule nested deeper than %d levels", MaxDepth)
	}
	n := matchNode{kind: r.Kind}
	switch r.Kind {
	case All, Any, Not:
		if r.Kind == Not && len(r.Rules) != 1 {
			return matchNode{}, fmt.Errorf("segment: a not rule needs exactly one child")
		}
		for _, ch := range r.Rules {
			k, err := newMatchNode(ch, depth+1)
			if err != nil {
				return matchNode{}, err
			}
			n.kids = append(n.kids, k)
		}
		return n, nil
	case Condition:
		return newMatchCondition(r)
	}
	return matchNode{}, fmt.Errorf("segment: unknown rule kind %d", r.Kind)
}

func newMatchCondition(r *Rule) (matchNode, error) {
	if !ValidAttributeName(r.Attribute) {
		return matchNode{}, fmt.Errorf("segment: invalid attribute name %q", r.Attribute)
	}
	if _, _, reserved := attrjson.ParseReserved(r.Attribute); reserved {
		return matchNode{}, ErrStatusRule
	}
	if err := checkCondition(r); err != nil {
		return matchNode{}, err
	}
	n := matchNode{kind: Condition, attr: r.Attribute, op: r.Op}
	switch r.Op {
	case IsEmpty, IsNotEmpty:
		return n, nil
	case Contains, StartsWith, EndsWith:
		n.needle = textfold.Fold(r.Values[0].Raw)
		return n, nil
	}
	var err error
	n.vals, err = matchValues(r.Values)
	return n, err
}

// matchValues parses values as Compile binds them (compiler.param).
func matchValues(vals []Value) ([]matchValue, error) {
	out := make([]matchValue, len(vals))
	for i, v := range vals {
		m := matchValue{typ: v.Type, hasTime: v.HasTime}
		switch v.Type {
		case Number:
			num, ok := parseNumber(v.Raw)
			if !ok {
				return nil, fmt.Errorf("segment: number %q", v.Raw)
			}
			m.num = num
		case Text:
			m.key = textfold.Fold(v.Raw)
		case Bool:
			if v.Raw != "true" && v.Raw != "false" {
				return nil, fmt.Errorf("segment: boolean %q", v.Raw)
			}
			m.key = v.Raw
		case Date:
			day, instant, ok := DateKeys(v.Raw)
			if !ok {
				return nil, fmt.Errorf("segment: invalid date %q", v.Raw)
			}
			m.key = day
			if v.HasTime {
				m.key = instant
			}
		default:
			return nil, fmt.Errorf("segment: value of unknown type %d", v.Type)
		}
		out[i] = m
	}
	return out, nil
}

// Match reports whether the profile whose attribute object was split into
// attrs (attrjson.Split) matches the rule.
func (m *Matcher) Match(attrs []attrjson.Member) bool { return m.root.match(attrs) }

func (n *matchNode) match(attrs []attrjson.Member) bool {
	switch n.kind {
	case All:
		for i := range n.kids {
			if !n.kids[i].match(attrs) {
				return false
			}
		}
		return true
	case Any:
		for i := range n.kids {
			if n.kids[i].match(attrs) {
				return true
			}
		}
		return false
	case Not:
		return !n.kids[0].match(attrs)
	}
	raw := attrjson.Find(attrs, n.attr)
	missing := raw == nil || string(raw) == "null"
	switch n.op {
	case IsEmpty:
		return missing || string(raw) == `""`
	case IsNotEmpty:
		return !missing && string(raw) != `""`
	case Contains, StartsWith, EndsWith:
		s, ok := attrjson.StringValue(raw)
		if !ok {
			return false
		}
		s = textfold.Fold(s)
		switch n.op {
		case Contains:
			return strings.Contains(s, n.needle)
		case StartsWith:
			return strings.HasPrefix(s, n.needle)
		}
		return strings.HasSuffix(s, n.needle)
	case Neq:
		if missing {
			return true
		}
		c, ok := n.vals[0].compare(raw)
		return ok && c != 0
	case Between:
		lo, ok1 := n.vals[0].compare(raw)
		hi, ok2 := n.vals[1].compare(raw)
		return ok1 && ok2 && lo >= 0 && hi <= 0
	case In, NotIn:
		if missing {
			return n.op == NotIn
		}
		for i := range n.vals {
			c, ok := n.vals[i].compare(raw)
			if !ok { // a wrongly typed attribute matches neither
				return false
			}
			if c == 0 {
				return n.op == In
			}
		}
		return n.op == NotIn
	}
	c, ok := n.vals[0].compare(raw)
	if !ok {
		return false
	}
	switch n.op {
	case Eq:
		return c == 0
	case Lt:
		return c < 0
	case Lte:
		return c <= 0
	case Gt:
		return c > 0
	}
	return c >= 0 // Gte
}

// compare compares a stored attribute value (raw JSON) with v; ok is false
// when the stored value does not have v's type (absent and null included).
func (v *matchValue) compare(raw []byte) (c int, ok bool) {
	if len(raw) == 0 {
		return 0, false
	}
	switch v.typ {
	case Number:
		if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
			return 0, false
		}
		num, ok := parseNumber(string(raw))
		if !ok {
			return 0, false
		}
		return num.compare(v.num), true
	case Bool:
		if s := string(raw); s != "true" && s != "false" {
			return 0, false
		} else if s == v.key {
			return 0, true
		}
		return 1, true
	case Date:
		s, ok := attrjson.StringBytes(raw)
		if !ok {
			return 0, false
		}
		t, ok := dateInstant(string(s))
		if !ok {
			return 0, false
		}
		if v.hasTime {
			return strings.Compare(instantKey(t), v.key), true
		}
		return compareBytes(s[:10], v.key), true
	}
	s, ok := attrjson.StringValue(raw)
	if !ok {
		return 0, false
	}
	return strings.Compare(textfold.Fold(s), v.key), true
}

// number is a JSON number as SQLite reads it: a 64-bit integer when the
// text is one and fits, else a float.
type number struct {
	isInt bool
	i     int64
	f     float64
}

func parseNumber(s string) (number, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return number{isInt: true, i: i}, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) { // out of range: ±Inf, as SQLite reads it
		return number{}, false
	}
	return number{f: f}, true
}

// compare is SQLite's numeric comparison: integers and floats among
// themselves, an integer and a float exactly (sqlite3IntFloatCompare).
func (a number) compare(b number) int {
	switch {
	case a.isInt && b.isInt:
		return cmp.Compare(a.i, b.i)
	case !a.isInt && !b.isInt:
		return cmp.Compare(a.f, b.f)
	case a.isInt:
		return intFloatCompare(a.i, b.f)
	}
	return -intFloatCompare(b.i, a.f)
}

func intFloatCompare(i int64, r float64) int {
	if r < -9223372036854775808.0 {
		return 1
	}
	if r >= 9223372036854775808.0 {
		return -1
	}
	if y := int64(r); i != y {
		return cmp.Compare(i, y)
	}
	return cmp.Compare(float64(i), r)
}

// compareBytes is strings.Compare(string(b), s) without allocating.
func compareBytes(b []byte, s string) int {
	switch {
	case string(b) < s:
		return -1
	case string(b) > s:
		return 1
	}
	return 0
}
