package segment_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/textfold"
)

// fuzzProfiles are the rows fuzzed rules run against: attributes a–e with
// numbers, text, dates, booleans, blanks, nulls and mixtures.
var fuzzProfiles = []string{
	`{}`,
	`{"a":1,"b":"x","c":"2024-03-01","d":true,"e":null}`,
	`{"a":-2.5,"b":"X%_y","c":"2024-03-01T23:30:00+05:00","d":false,"e":"2024-02-30"}`,
	`{"a":1e3,"b":"","c":"2024-02-29T00:00Z","d":"true","e":7}`,
	`{"a":"1","b":"Émile","c":"not a date","d":1,"e":"2024-01-01T10:00"}`,
	`{"a":0,"b":"ÉMILE zoë","c":1,"d":null,"e":false}`,
}

type fuzzDB struct {
	name  string
	db    *sqldb.DB
	total int64
}

func openFuzzDBs(f testing.TB) []fuzzDB { return openDBsWith(f, fuzzProfiles) }

// openDBsWith opens SQLite, and PostgreSQL when configured, each holding
// the given profiles (ids c0, c1, …) written directly, as they are, with
// their folded shadow as the store writes it (attrjson.FoldShadow).
func openDBsWith(f testing.TB, profiles []string) []fuzzDB {
	dbs := []fuzzDB{{name: "sqlite", db: dbtest.SQLite(f)}}
	if os.Getenv("SEGSYNC_TEST_POSTGRES_URL") != "" {
		dbs = append(dbs, fuzzDB{name: "postgres", db: dbtest.Postgres(f)})
	}
	for _, d := range dbs {
		for i, attrs := range profiles {
			shadow, err := attrjson.FoldShadow([]byte(attrs))
			if err != nil {
				f.Fatalf("fixture %s: %v", attrs, err)
			}
			var fold any
			if shadow != nil {
				fold = string(shadow)
			}
			if _, err := d.db.W.Exec(d.db.Q(`INSERT INTO profiles (customer_id, attrs, attrs_fold, updated_at) VALUES (?, ?, ?, 0)`),
				fmt.Sprintf("c%d", i), attrs, fold); err != nil {
				f.Fatalf("%s: inserting fixture: %v", d.name, err)
			}
		}
	}
	for i := range dbs {
		dbs[i].total = int64(len(profiles))
	}
	return dbs
}

// FuzzParseRule parses arbitrary input as a rule. A rule that parses must
// marshal to a form that parses to the same rule, compile on both dialects
// to SQL whose text does not depend on attribute names or values (nothing
// of the rule is pasted into SQL), and run: on SQLite always and on
// PostgreSQL when configured, giving the same count on both, and a rule and
// its negation must split the profiles exactly.
func FuzzParseRule(f *testing.F) {
	dbs := openFuzzDBs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := segment.Parse(data, nil)
		if err != nil {
			if r != nil {
				t.Fatalf("Parse returned a rule and an error: %v", err)
			}
			return
		}
		canon := r.String()
		again, err := segment.Parse([]byte(canon), nil)
		if err != nil || again.String() != canon {
			t.Fatalf("canonical form %s does not round-trip: %v, %s", canon, err, again)
		}
		blank := blanked(r)
		for _, d := range []segment.Dialect{segment.SQLite, segment.Postgres} {
			where, args, err := segment.Compile(r, d)
			if err != nil {
				t.Fatalf("Compile(%s, %s): %v", canon, d, err)
			}
			if n := strings.Count(where, "?"); n != len(args) {
				t.Fatalf("Compile(%s, %s): %d placeholders, %d args", canon, d, n, len(args))
			}
			shape, _, err := segment.Compile(blank, d)
			if err != nil || shape != where {
				t.Fatalf("SQL of %s depends on names or values (%s):\n%s\n%s", canon, d, where, shape)
			}
		}
		if depth(r) >= segment.MaxDepth {
			return // its negation would be one level too deep
		}
		neg := &segment.Rule{Kind: segment.Not, Rules: []*segment.Rule{r}}
		first := int64(len(goMatches(t, r, fuzzProfiles)))
		for _, d := range dbs {
			n := count(t, d.db, r)
			if m := count(t, d.db, neg); n+m != d.total {
				t.Fatalf("%s: %s matches %d and its negation %d of %d profiles", d.name, canon, n, m, d.total)
			}
			if n != first {
				t.Fatalf("%s matches %d in Go (segment.Matcher) but %d on %s", canon, first, n, d.name)
			}
		}
	})
}

func count(t *testing.T, db *sqldb.DB, r *segment.Rule) int64 {
	t.Helper()
	n, err := db.CountMatching(context.Background(), r)
	if err != nil {
		t.Fatalf("%s: CountMatching(%s): %v", db.Dialect(), r, err)
	}
	return n
}

func depth(r *segment.Rule) int {
	d := 0
	for _, c := range r.Rules {
		d = max(d, depth(c))
	}
	return d + 1
}

// blanked copies r with every attribute name and value replaced by a fixed
// one of the same type (and, for text, of the same class: folding to ASCII
// or not, holding an s or not, reading as a number or not), so that its SQL
// must be identical to r's.
func blanked(r *segment.Rule) *segment.Rule {
	out := &segment.Rule{Kind: r.Kind, Op: r.Op}
	if r.Kind == segment.Condition {
		out.Attribute = "z"
	}
	for _, c := range r.Rules {
		out.Rules = append(out.Rules, blanked(c))
	}
	for _, v := range r.Values {
		b := segment.Value{Type: v.Type, HasTime: v.HasTime}
		switch {
		case v.Type == segment.Number:
			b.Raw = "0"
		case v.Type == segment.Bool:
			b.Raw = "true"
		case v.Type == segment.Date && v.HasTime:
			b.Raw = "2000-01-01T00:00:00Z"
		case v.Type == segment.Date:
			b.Raw = "2000-01-01"
		case !isASCII(textfold.Fold(v.Raw)):
			b.Raw = "é"
		case strings.Contains(textfold.Fold(v.Raw), "s"):
			b.Raw = "s"
		case isNumber(textfold.Fold(v.Raw)):
			b.Raw = "1"
		default:
			b.Raw = "t"
		}
		out.Values = append(out.Values, b)
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}
