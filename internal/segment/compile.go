package segment

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/textfold"
)

// Dialect is the SQL flavour Compile writes for.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Compile turns a rule into a boolean SQL expression over the attrs column
// of the profiles table and its folded shadow attrs_fold (see textClass),
// and for Mailchimp's statuses the table profile_statuses (see condition),
// with '?' placeholders and their arguments. The expression is never NULL,
// so NOT and OR compose as expected.
func Compile(r *Rule, d Dialect) (where string, args []any, err error) {
	return CompileColumn(r, d, "attrs")
}

// CompileColumn is Compile over another column expression, e.g. "p.attrs"
// when the profiles table is aliased; the shadow is column + "_fold"
// ("p.attrs_fold"). column comes from the caller's code, never from a rule.
func CompileColumn(r *Rule, d Dialect, column string) (where string, args []any, err error) {
	if d != SQLite && d != Postgres {
		return "", nil, fmt.Errorf("segment: unknown SQL dialect %q", d)
	}
	c := compiler{d: d, base: column}
	if err := c.rule(r, 1); err != nil {
		return "", nil, err
	}
	return c.b.String(), c.args, nil
}

// HashExpr is an SQL expression for the subscriber hash (emailaddr.Hash)
// of an attribute, with its arguments: lowercase hex, or NULL when the
// attribute is not a string or is blank. Compare and order it with COLLATE
// "C" on PostgreSQL (BINARY is SQLite's default).
func HashExpr(d Dialect, column, attribute string) (expr string, args []any, err error) {
	if !ValidAttributeName(attribute) {
		return "", nil, fmt.Errorf("segment: invalid attribute name %q", attribute)
	}
	switch d {
	case SQLite:
		return "segsync_hash(json_extract(" + column + ", ?))", []any{sqlitePath(attribute)}, nil
	case Postgres:
		return "segsync_hash(" + column + " -> CAST(? AS text))", []any{attribute}, nil
	}
	return "", nil, fmt.Errorf("segment: unknown SQL dialect %q", d)
}

type compiler struct {
	d Dialect
	// base is the attrs column; col and fold are the JSON object the
	// condition being written reads its attribute from, and that object's
	// folded shadow (see condition).
	base, col, fold string
	// text classifies the values of the condition being written.
	text textClass
	b    strings.Builder
	args []any
}

func (c *compiler) rule(r *Rule, depth int) error {
	if r == nil {
		return fmt.Errorf("segment: nil rule")
	}
	if depth > MaxDepth {
		return fmt.Errorf("segment: rule nested deeper than %d levels", MaxDepth)
	}
	switch r.Kind {
	case All, Any:
		if len(r.Rules) == 0 {
			if r.Kind == All {
				c.b.WriteString("(1 = 1)")
			} else {
				c.b.WriteString("(1 = 0)")
			}
			return nil
		}
		join := " AND "
		if r.Kind == Any {
			join = " OR "
		}
		c.b.WriteByte('(')
		for i, ch := range r.Rules {
			if i > 0 {
				c.b.WriteString(join)
			}
			if err := c.rule(ch, depth+1); err != nil {
				return err
			}
		}
		c.b.WriteByte(')')
		return nil
	case Not:
		if len(r.Rules) != 1 {
			return fmt.Errorf("segment: a not rule needs exactly one child")
		}
		c.b.WriteString("(NOT ")
		if err := c.rule(r.Rules[0], depth+1); err != nil {
			return err
		}
		c.b.WriteByte(')')
		return nil
	case Condition:
		if !ValidAttributeName(r.Attribute) {
			return fmt.Errorf("segment: invalid attribute name %q", r.Attribute)
		}
		c.b.WriteString("COALESCE((")
		if err := c.condition(r); err != nil {
			return err
		}
		c.b.WriteString("), FALSE)")
		return nil
	}
	return fmt.Errorf("segment: unknown rule kind %d", r.Kind)
}

// condition writes a condition. One on a reserved attribute (Mailchimp's
// word, mailchimp.<audience>.status and .status_changed_at) reads the
// profile's row of profile_statuses for the audience: a profile with a row
// matches as if the attribute were stored on it, one without as if it were
// missing. The values are ASCII and need no folded shadow. The audience id
// is inlined: ReservedPattern allows letters and digits only.
// profile_statuses names its column customer, so that customer_id is the
// outer query's, whatever it calls the profiles table.
func (c *compiler) condition(r *Rule) error {
	audience, field, reserved := attrjson.ParseReserved(r.Attribute)
	if !reserved {
		c.col, c.fold = c.base, c.base+"_fold"
		return c.attrCondition(r)
	}
	obj, null := "json_object", "NULL"
	if c.d == Postgres {
		obj, null = "jsonb_build_object", "CAST(NULL AS jsonb)"
	}
	column := "status"
	if field == "status_changed_at" {
		column = "changed_at"
	}
	onRow := func() error { // the condition on a row's value
		c.col, c.fold = obj+"('"+r.Attribute+"', ps."+column+")", null
		c.add("(")
		if err := c.attrCondition(r); err != nil {
			return err
		}
		c.add(")")
		return nil
	}
	onMissing := func() error { // the condition on a missing attribute
		c.col, c.fold = null, null
		c.add("COALESCE((")
		if err := c.attrCondition(r); err != nil {
			return err
		}
		c.add("), FALSE)")
		return nil
	}
	customer := strings.TrimSuffix(c.base, "attrs") + "customer_id"
	statuses := " FROM profile_statuses ps WHERE ps.audience_id = '" + audience + "' AND "
	if c.d == Postgres && field == "status" {
		// A semi-join: PostgreSQL hashes the audience's matching rows once
		// (a correlated lookup per profile took 3.5–6× as long over 1M
		// profiles); which set a profile is looked up in depends on
		// whether a missing status matches. Not for status_changed_at,
		// whose date function dominates and ran slower this way
		// (BenchmarkCountStatus, docs/benchmarks.md).
		c.add("CASE WHEN ")
		if err := onMissing(); err != nil {
			return err
		}
		c.add(" THEN " + customer + " NOT IN (SELECT ps.customer" + statuses)
		if err := onRow(); err != nil {
			return err
		}
		c.add(" IS NOT TRUE) ELSE " + customer + " IN (SELECT ps.customer" + statuses)
		if err := onRow(); err != nil {
			return err
		}
		c.add(" IS TRUE) END")
		return nil
	}
	// The row is looked up once: its answer (never NULL when it exists)
	// or, without one, the answer for a missing attribute.
	c.add("COALESCE((SELECT COALESCE(")
	if err := onRow(); err != nil {
		return err
	}
	c.add(", FALSE)" + statuses + "ps.customer = " + customer + "), ")
	if err := onMissing(); err != nil {
		return err
	}
	c.add(")")
	return nil
}

// checkCondition reports what makes a condition impossible to evaluate: a
// wrong number of values, an empty substring, a boolean where order
// counts, an in list mixing kinds of value, an unknown operator. Parse
// refuses such conditions; Compile and NewMatcher check again, for rules
// built in code.
func checkCondition(r *Rule) error {
	vals := r.Values
	need := func(n int) error {
		if len(vals) != n {
			return fmt.Errorf("segment: %s on %q needs %d value(s), has %d", r.Op, r.Attribute, n, len(vals))
		}
		return nil
	}
	noBool := func() error {
		for _, v := range vals {
			if v.Type == Bool {
				return fmt.Errorf("segment: %s does not apply to booleans", r.Op)
			}
		}
		return nil
	}
	switch r.Op {
	case IsEmpty, IsNotEmpty:
		return nil
	case Contains, StartsWith, EndsWith:
		if err := need(1); err != nil {
			return err
		}
		if textfold.Fold(vals[0].Raw) == "" {
			return fmt.Errorf("segment: %s on %q needs a non-empty string", r.Op, r.Attribute)
		}
		return nil
	case Eq, Neq:
		return need(1)
	case Lt, Lte, Gt, Gte:
		if err := need(1); err != nil {
			return err
		}
		return noBool()
	case Between:
		if err := need(2); err != nil {
			return err
		}
		return noBool()
	case In, NotIn:
		if len(vals) == 0 {
			return fmt.Errorf("segment: %s on %q needs values", r.Op, r.Attribute)
		}
		for _, v := range vals {
			if v.Type != vals[0].Type { // dates with and without time are both Date
				return fmt.Errorf("segment: values of in on %q must be of one type", r.Attribute)
			}
		}
		return nil
	}
	return fmt.Errorf("segment: unknown operator %q", r.Op)
}

// attrCondition writes a condition on an attribute of the object c.col.
func (c *compiler) attrCondition(r *Rule) error {
	if err := checkCondition(r); err != nil {
		return err
	}
	vals := r.Values
	c.text = classifyText(r.Op, vals)
	defer func() { c.text = textClass{} }()
	switch r.Op {
	case IsEmpty:
		c.empty(r.Attribute)
	case IsNotEmpty:
		c.b.WriteString("NOT (")
		c.empty(r.Attribute)
		c.b.WriteByte(')')
	case Contains, StartsWith, EndsWith:
		c.textSearch(r.Op, r.Attribute, textfold.Fold(vals[0].Raw))
	case Eq, Neq, Lt, Lte, Gt, Gte:
		if r.Op == Neq {
			c.missing(r.Attribute)
			c.b.WriteString(" OR ")
		}
		return c.compare(r.Attribute, r.Op, vals[0])
	case Between:
		if err := c.compare(r.Attribute, Gte, vals[0]); err != nil {
			return err
		}
		c.b.WriteString(" AND ")
		return c.compare(r.Attribute, Lte, vals[1])
	case In:
		return c.in(r.Attribute, vals, true)
	case NotIn:
		c.missing(r.Attribute)
		c.b.WriteString(" OR NOT (")
		// NOT needs the type-checking accessor: it must stay NULL (no
		// match) for a wrongly typed attribute.
		if err := c.in(r.Attribute, vals, false); err != nil {
			return err
		}
		c.b.WriteByte(')')
	}
	return nil
}

// in writes attr IN (…), or for dates a disjunction of equalities (each
// value at its own granularity). A wrongly typed attribute gives NULL,
// which COALESCE turns into false even under NOT; only when positive (not
// negated by not_in) may the cheaper equality form, which gives FALSE
// there, be used.
func (c *compiler) in(attr string, vals []Value, positive bool) error {
	if vals[0].Type == Date {
		c.b.WriteByte('(')
		for i, v := range vals {
			if i > 0 {
				c.b.WriteString(" OR ")
			}
			if err := c.compare(attr, Eq, v); err != nil {
				return err
			}
		}
		c.b.WriteByte(')')
		return nil
	}
	if !positive || !c.equality(attr, vals[0]) {
		if err := c.accessor(attr, vals[0]); err != nil {
			return err
		}
	}
	c.b.WriteString(" IN (")
	for i, v := range vals {
		if i > 0 {
			c.b.WriteString(", ")
		}
		if err := c.param(v); err != nil {
			return err
		}
	}
	c.b.WriteByte(')')
	return nil
}

var sqlOps = map[Op]string{Eq: " = ", Neq: " <> ", Lt: " < ", Lte: " <= ", Gt: " > ", Gte: " >= "}

// compare writes accessor op value.
func (c *compiler) compare(attr string, op Op, v Value) error {
	if op != Eq || !c.equality(attr, v) {
		if err := c.accessor(attr, v); err != nil {
			return err
		}
	}
	c.b.WriteString(sqlOps[op])
	return c.param(v)
}

// textClass says how a condition's values let text be compared. Every
// form below compares exactly as textfold.Fold does; they differ in cost.
//
// ascii: the condition compares text for (in)equality or substrings
// against values that all fold to ASCII ("Amsterdam", "GOLD"). Against
// such values the ASCII lowering every database has natively compares
// exactly as textfold.Fold does, provided the long s (ſ) is first replaced
// by s: in NFC text (segsync stores text NFC) ſ is the only rune outside
// ASCII that folds into ASCII (the Kelvin sign, the other one, is not
// NFC), so at every other position both sides are a rune outside ASCII,
// which no ASCII value or substring of one can match. That keeps the
// common case as fast as it was before Unicode folding.
//
// accented: the condition tests equality (eq, in) or a substring
// against values that all fold to text outside ASCII ("Émile"). Only a
// stored value outside ASCII can fold to such text, and the folded shadow
// (attrjson.FoldShadow, the column <column>_fold) holds the fold of
// exactly those values, so these conditions read the shadow alone: a
// profile without it (NULL) cannot match.
//
// negated: neq or not_in against such values. A string attribute that
// the shadow does not hold folds to ASCII text, which equals none of the
// values, as the empty string does: ” stands in for it.
//
// None of these (ordering, an in mixing both kinds of value): the shadow
// where it holds the attribute, else the ASCII lowering of the attribute,
// which is then ASCII (see folded).
//
// noS: no value holds an s, so the long s cannot matter and the replace
// can go. numeric: a value reads as a number (see equality).
type textClass struct{ ascii, accented, negated, noS, numeric bool }

func classifyText(op Op, vals []Value) textClass {
	switch op {
	case Eq, Neq, In, NotIn, Contains, StartsWith, EndsWith:
	default:
		return textClass{}
	}
	positive := op != Neq && op != NotIn
	tc := textClass{ascii: len(vals) > 0, accented: len(vals) > 0 && positive, negated: len(vals) > 0 && !positive, noS: true}
	for _, v := range vals {
		if v.Type != Text {
			return textClass{}
		}
		folded := textfold.Fold(v.Raw)
		if isASCII(folded) {
			tc.accented, tc.negated = false, false
		} else {
			tc.ascii = false
		}
		tc.noS = tc.noS && !strings.Contains(folded, "s")
		if _, err := strconv.ParseFloat(folded, 64); err == nil {
			tc.numeric = true
		}
	}
	return tc
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// equality writes, where one exists, a cheaper left-hand side that is only
// good for = and IN, and reports whether it did. On SQLite every JSON
// function call looks the row's JSON up again, so equality on text and
// booleans uses one call instead of a type test plus an extraction:
//
//   - text: see the cases below and textClass.
//   - booleans: json_type(…) is 'true' or 'false' only for booleans.
func (c *compiler) equality(attr string, v Value) bool {
	if c.d != SQLite {
		return false
	}
	switch v.Type {
	case Text:
		switch {
		case c.text.ascii && c.text.noS:
			// Without an s among the values, the long s cannot matter
			// (see textClass) and NOCASE folds exactly A–Z; a number or
			// boolean (INTEGER or REAL) never equals a TEXT value.
			c.add("json_extract(" + c.col + ", ?) COLLATE NOCASE")
		case c.text.ascii && !c.text.numeric:
			// replace() turns a number into its text, which no value that
			// does not read as a number can equal.
			c.add("lower(replace(json_extract(" + c.col + ", ?), 'ſ', 's'))")
		case c.text.accented:
			// The shadow holds strings only.
			c.add("json_extract(" + c.fold + ", ?)")
		default:
			return false
		}
	case Bool:
		c.add("json_type(" + c.col + ", ?)")
	default:
		return false
	}
	c.key(attr)
	return true
}

// accessor writes an expression that is the attribute's comparable form for
// values of v's type, or NULL when the stored value does not have that type.
func (c *compiler) accessor(attr string, v Value) error {
	pg := c.d == Postgres
	switch v.Type {
	case Number:
		if pg {
			c.add("(CASE WHEN jsonb_typeof(" + c.col + " -> CAST(? AS text)) = 'number' THEN CAST(" + c.col + " ->> CAST(? AS text) AS numeric) END)")
		} else {
			c.add("(CASE WHEN json_type(" + c.col + ", ?) IN ('integer', 'real') THEN json_extract(" + c.col + ", ?) END)")
		}
		c.key(attr)
		c.key(attr)
	case Text:
		c.textAccessor(attr)
	case Bool:
		if pg {
			c.add("(CASE WHEN jsonb_typeof(" + c.col + " -> CAST(? AS text)) = 'boolean' THEN " + c.col + " ->> CAST(? AS text) END)")
		} else {
			c.add("(CASE WHEN json_type(" + c.col + ", ?) IN ('true', 'false') THEN json_type(" + c.col + ", ?) END)")
		}
		c.key(attr)
		c.key(attr)
	case Date:
		fn := "segsync_date"
		if v.HasTime {
			fn = "segsync_instant"
		}
		if pg {
			c.add(fn + "(" + c.col + " -> CAST(? AS text))")
		} else {
			c.add(fn + "(json_extract(" + c.col + ", ?))")
		}
		c.key(attr)
	default:
		return fmt.Errorf("segment: value of unknown type %d", v.Type)
	}
	return nil
}

// textAccessor writes the attribute's folded text (textfold.Fold), or NULL
// when it is not a string, in the form c.text allows (see textClass); on
// PostgreSQL ordered by code point, whatever the database's collation.
func (c *compiler) textAccessor(attr string) {
	pg := c.d == Postgres
	switch {
	case c.text.accented && pg:
		c.add("(" + c.fold + ` ->> CAST(? AS text) COLLATE "C")`)
		c.key(attr)
		return
	case c.text.accented:
		c.add("json_extract(" + c.fold + ", ?)")
		c.key(attr)
		return
	case c.text.negated && pg:
		c.add("(CASE WHEN jsonb_typeof(" + c.col + " -> CAST(? AS text)) = 'string' THEN COALESCE(" + c.fold + ` ->> CAST(? AS text), '') END COLLATE "C")`)
		c.key(attr)
		c.key(attr)
		return
	case c.text.negated:
		c.add("(CASE WHEN json_type(" + c.col + ", ?) = 'text' THEN COALESCE(json_extract(" + c.fold + ", ?), '') END)")
		c.key(attr)
		c.key(attr)
		return
	case !c.text.ascii:
		c.folded(attr)
		return
	}
	// ASCII values: lowered (on PostgreSQL under "C": A–Z only, whatever
	// the locale), the long s replaced first unless noS.
	arg, coll := "json_extract("+c.col+", ?)", ""
	if pg {
		arg, coll = c.col+" ->> CAST(? AS text)", ` COLLATE "C"`
	}
	if !c.text.noS {
		arg = "replace(" + arg + ", 'ſ', 's')"
	}
	if pg {
		c.add("(CASE WHEN jsonb_typeof(" + c.col + " -> CAST(? AS text)) = 'string' THEN lower(" + arg + coll + ") END)")
	} else {
		c.add("(CASE WHEN json_type(" + c.col + ", ?) = 'text' THEN lower(" + arg + ") END)")
	}
	c.key(attr)
	c.key(attr)
}

// folded writes the attribute's folded text for any value: the shadow's
// entry where it has one, else the attribute lowered in ASCII when it is a
// string. A string without an entry in the shadow is ASCII, for which
// that lowering (under "C" on PostgreSQL: A–Z only, whatever the locale)
// is textfold.Fold.
func (c *compiler) folded(attr string) {
	if c.d == Postgres {
		c.add("(COALESCE(" + c.fold + " ->> CAST(? AS text), CASE WHEN jsonb_typeof(" + c.col + " -> CAST(? AS text)) = 'string' THEN lower(" +
			c.col + ` ->> CAST(? AS text) COLLATE "C") END) COLLATE "C")`)
	} else {
		c.add("COALESCE(json_extract(" + c.fold + ", ?), CASE WHEN json_type(" + c.col + ", ?) = 'text' THEN lower(json_extract(" + c.col + ", ?)) END)")
	}
	c.key(attr)
	c.key(attr)
	c.key(attr)
}

// param writes the placeholder of a value in its comparable form.
func (c *compiler) param(v Value) error {
	switch v.Type {
	case Number:
		if c.d == Postgres {
			// Bound as text and cast, so PostgreSQL compares exact numerics.
			c.b.WriteString("CAST(CAST(? AS text) AS numeric)")
			c.args = append(c.args, v.Raw)
			return nil
		}
		c.b.WriteByte('?')
		if i, err := strconv.ParseInt(v.Raw, 10, 64); err == nil {
			c.args = append(c.args, i)
			return nil
		}
		f, err := strconv.ParseFloat(v.Raw, 64)
		if err != nil {
			return fmt.Errorf("segment: number %q: %w", v.Raw, err)
		}
		c.args = append(c.args, f)
	case Text:
		c.b.WriteByte('?')
		c.args = append(c.args, textfold.Fold(v.Raw))
	case Bool:
		if v.Raw != "true" && v.Raw != "false" {
			return fmt.Errorf("segment: boolean %q", v.Raw)
		}
		c.b.WriteByte('?')
		c.args = append(c.args, v.Raw)
	case Date:
		day, instant, ok := DateKeys(v.Raw)
		if !ok {
			return fmt.Errorf("segment: invalid date %q", v.Raw)
		}
		c.b.WriteByte('?')
		if v.HasTime {
			c.args = append(c.args, instant)
		} else {
			c.args = append(c.args, day)
		}
	default:
		return fmt.Errorf("segment: value of unknown type %d", v.Type)
	}
	return nil
}

// missing writes "the attribute is absent or JSON null".
func (c *compiler) missing(attr string) {
	if c.d == Postgres {
		c.add("COALESCE(jsonb_typeof(" + c.col + " -> CAST(? AS text)), 'null') = 'null'")
	} else {
		c.add("COALESCE(json_type(" + c.col + ", ?), 'null') = 'null'")
	}
	c.key(attr)
}

// empty writes "missing or the empty string".
func (c *compiler) empty(attr string) {
	if c.d == Postgres {
		c.add("COALESCE(" + c.col + " ->> CAST(? AS text), '') = ''")
	} else {
		// json_extract gives NULL for absent and null; a number or boolean
		// is never equal to the text ''.
		c.add("COALESCE(json_extract(" + c.col + ", ?), '') = ''")
	}
	c.key(attr)
}

// textSearch writes a substring test on the folded text of the attribute.
func (c *compiler) textSearch(op Op, attr, needle string) {
	var pre, post string
	pg := c.d == Postgres
	switch {
	case op == Contains && pg:
		pre, post = "strpos(", ", ?) > 0"
	case op == Contains:
		pre, post = "instr(", ", ?) > 0"
	case op == StartsWith && pg:
		pre, post = "strpos(", ", ?) = 1"
	case op == StartsWith:
		pre, post = "instr(", ", ?) = 1"
	case op == EndsWith && pg:
		pre, post = "right(", ", length(?)) = ?"
	default:
		pre, post = "substr(", ", -length(?)) = ?"
	}
	c.b.WriteString(pre)
	_ = c.accessor(attr, Value{Type: Text}) // never fails for Text
	c.b.WriteString(post)
	c.args = append(c.args, needle)
	if op == EndsWith {
		c.args = append(c.args, needle)
	}
}

// add writes SQL text.
func (c *compiler) add(sql string) { c.b.WriteString(sql) }

// key binds an attribute name as the dialect's JSON path.
func (c *compiler) key(attr string) {
	if c.d == Postgres {
		c.args = append(c.args, attr)
	} else {
		c.args = append(c.args, sqlitePath(attr))
	}
}

// sqlitePath is the JSON path of an attribute on SQLite. Reserved names
// hold dots (which a path would read as nesting) and are quoted; valid
// names hold no quote or backslash (attrjson.NamePattern, ReservedPattern).
func sqlitePath(attr string) string {
	if strings.ContainsRune(attr, '.') {
		return `$."` + attr + `"`
	}
	return "$." + attr
}
