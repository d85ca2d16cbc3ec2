package segment_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// goMatches returns the ids (c0, c1, … as openDBsWith names them) of the
// profiles that r's Matcher matches, sorted.
func goMatches(t testing.TB, r *segment.Rule, profiles []string) []string {
	t.Helper()
	m, err := segment.NewMatcher(r)
	if err != nil {
		t.Fatalf("NewMatcher(%s): %v", r, err)
	}
	var ids []string
	var members []attrjson.Member
	for i, attrs := range profiles {
		if members, err = attrjson.Split(members[:0], []byte(attrs)); err != nil {
			t.Fatalf("fixture %s: %v", attrs, err)
		}
		if m.Match(members) {
			ids = append(ids, fmt.Sprintf("c%d", i))
		}
	}
	slices.Sort(ids)
	return ids
}

func TestMatcherRefusesStatusRules(t *testing.T) {
	r, err := segment.Parse([]byte(`{"any": [{"attribute": "city", "op": "eq", "value": "x"},
		{"not": {"attribute": "mailchimp.abc123.status", "op": "eq", "value": "subscribed"}}]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := segment.NewMatcher(r); !errors.Is(err, segment.ErrStatusRule) {
		t.Fatalf("NewMatcher of a rule on a status: %v, want ErrStatusRule", err)
	}
}

// TestMatcherNumbersAsSQLite compares numbers where integers and floats
// meet at the edge of float64's precision and of int64's range: the
// Matcher must select what SQLite's SQL selects (PostgreSQL compares exact
// decimals, and may differ there by design).
func TestMatcherNumbersAsSQLite(t *testing.T) {
	numbers := []string{"9007199254740993", "9007199254740992.0", "9007199254740992", "9.007199254740993e15",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "1e3", "1000", "-0", "0.1"}
	var profiles []string
	for _, n := range numbers {
		profiles = append(profiles, `{"n":`+n+`}`)
	}
	profiles = append(profiles, `{"n":"1000"}`, `{"n":true}`, `{}`)
	db := dbtest.SQLite(t)
	for i, attrs := range profiles {
		if _, err := db.W.Exec(`INSERT INTO profiles (customer_id, attrs, updated_at) VALUES (?, ?, 0)`, fmt.Sprintf("c%d", i), attrs); err != nil {
			t.Fatal(err)
		}
	}
	for _, op := range []string{"eq", "neq", "lt", "lte", "gt", "gte"} {
		for _, v := range numbers {
			r, err := segment.Parse([]byte(`{"attribute": "n", "op": "`+op+`", "value": `+v+`}`), nil)
			if err != nil {
				t.Fatalf("%s %s: %v", op, v, err)
			}
			want := sqliteMatches(t, db, r)
			if got := goMatches(t, r, profiles); !slices.Equal(got, want) {
				t.Errorf("n %s %s: Go selects %v, SQLite %v", op, v, got, want)
			}
		}
	}
}

func sqliteMatches(t *testing.T, db *sqldb.DB, r *segment.Rule) []string {
	t.Helper()
	page, err := db.SegmentMembers(context.Background(), r, 1000, "")
	if err != nil {
		t.Fatalf("SegmentMembers(%s): %v", r, err)
	}
	var ids []string
	for _, p := range page.Profiles {
		ids = append(ids, p.CustomerID)
	}
	slices.Sort(ids)
	return ids
}

// TestBadConditionsRefusedAlike: conditions built in code that Parse would
// refuse are refused by Compile and NewMatcher alike (checkCondition).
func TestBadConditionsRefusedAlike(t *testing.T) {
	num := segment.Value{Type: segment.Number, Raw: "1"}
	yes := segment.Value{Type: segment.Bool, Raw: "true"}
	text := segment.Value{Type: segment.Text, Raw: "x"}
	for _, r := range []*segment.Rule{
		{Kind: segment.Condition, Attribute: "a", Op: segment.Eq},
		{Kind: segment.Condition, Attribute: "a", Op: segment.Lt, Values: []segment.Value{yes}},
		{Kind: segment.Condition, Attribute: "a", Op: segment.Between, Values: []segment.Value{num}},
		{Kind: segment.Condition, Attribute: "a", Op: segment.Between, Values: []segment.Value{yes, yes}},
		{Kind: segment.Condition, Attribute: "a", Op: segment.In},
		{Kind: segment.Condition, Attribute: "a", Op: segment.NotIn, Values: []segment.Value{num, text}},
		{Kind: segment.Condition, Attribute: "a", Op: segment.Contains, Values: []segment.Value{{Type: segment.Text, Raw: ""}}},
		{Kind: segment.Condition, Attribute: "a", Op: "like", Values: []segment.Value{text}},
		{Kind: segment.Not, Rules: []*segment.Rule{{Kind: segment.Condition, Attribute: "a", Op: segment.Gt, Values: []segment.Value{num, num}}}},
	} {
		_, _, cerr := segment.Compile(r, segment.SQLite)
		_, merr := segment.NewMatcher(r)
		if cerr == nil || merr == nil || cerr.Error() != merr.Error() {
			t.Errorf("%+v: Compile %v, NewMatcher %v; want the same refusal", r, cerr, merr)
		}
	}
}
