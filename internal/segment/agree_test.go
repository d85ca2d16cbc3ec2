package segment_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// Value pools of TestRandomRulesAgree: profiles and rules draw from the
// same ones, so that equalities and ranges hit.
var (
	poolNumbers = []any{-2.5, 0, 1, 3, 7, 31, 31.5, 1000}
	poolTexts   = []any{"x", "X%_y", "", "Émile", "émile", "nl", "NL", "zoë", "a_b", "abc", "2024-02-30"}
	poolDates   = []any{"2024-03-01", "2024-03-01T10:00:00Z", "2024-02-29", "2023-12-31T23:59:59Z", "2024-03-02T00:30:00Z"}
	poolBools   = []any{true, false}
	poolNeedles = []string{"x", "_", "%_", "E", "é", "mil", "2024", "-0", "B"}
	poolAttrs   = []string{"a", "b", "c", "d", "e", "f"}
	poolOps     = []string{"eq", "neq", "lt", "lte", "gt", "gte", "between", "in", "not_in", "contains", "starts_with", "ends_with", "is_empty", "is_not_empty"}
)

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func randomProfiles(rng *rand.Rand, n int) []string {
	pools := [][]any{poolNumbers, poolTexts, poolDates, poolBools}
	out := make([]string, n)
	for i := range out {
		m := map[string]any{}
		for _, a := range poolAttrs {
			if rng.IntN(10) < 7 {
				m[a] = pick(rng, pick(rng, pools))
			}
		}
		b, _ := json.Marshal(m)
		out[i] = string(b)
	}
	return out
}

func randomRule(rng *rand.Rand, depth int) any {
	if depth < 3 && rng.IntN(3) == 0 {
		switch rng.IntN(3) {
		case 0:
			return map[string]any{"not": randomRule(rng, depth+1)}
		default:
			kids := make([]any, rng.IntN(4))
			for i := range kids {
				kids[i] = randomRule(rng, depth+1)
			}
			return map[string]any{[]string{"all", "any"}[rng.IntN(2)]: kids}
		}
	}
	op := pick(rng, poolOps)
	c := map[string]any{"attribute": pick(rng, poolAttrs), "op": op}
	scalar := func(pools ...[]any) []any { return pick(rng, pools) }
	switch op {
	case "eq", "neq":
		c["value"] = pick(rng, scalar(poolNumbers, poolTexts, poolDates, poolBools))
	case "lt", "lte", "gt", "gte":
		c["value"] = pick(rng, scalar(poolNumbers, poolTexts, poolDates))
	case "between":
		p := scalar(poolNumbers, poolTexts, poolDates)
		c["value"] = []any{pick(rng, p), pick(rng, p)}
	case "in", "not_in":
		p := scalar(poolNumbers, poolTexts, poolDates, poolBools)
		vs := make([]any, 1+rng.IntN(3))
		for i := range vs {
			vs[i] = pick(rng, p)
		}
		c["value"] = vs
	case "contains", "starts_with", "ends_with":
		c["value"] = pick(rng, poolNeedles)
	}
	return c
}

// TestRandomRulesAgree runs 400 random rules (every operator, value type,
// nesting, missing and wrongly typed attributes) over 60 random profiles:
// SQLite and PostgreSQL (when configured) must select the same profiles,
// and so must segment.Matcher, and every rule and its negation must split
// the profiles exactly.
func TestRandomRulesAgree(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 12))
	profiles := randomProfiles(rng, 60)
	dbs := openDBsWith(t, profiles)
	ctx := context.Background()
	members := func(db *sqldb.DB, r *segment.Rule) string {
		page, err := db.SegmentMembers(ctx, r, 1000, "")
		if err != nil {
			t.Fatalf("%s: SegmentMembers(%s): %v", db.Dialect(), r, err)
		}
		ids := make([]string, len(page.Profiles))
		for i, p := range page.Profiles {
			ids[i] = p.CustomerID
		}
		slices.Sort(ids)
		return strings.Join(ids, " ")
	}
	tried := 0
	for tried < 400 {
		js, _ := json.Marshal(randomRule(rng, 1))
		r, err := segment.Parse(js, nil)
		if err != nil {
			continue // e.g. between with its bounds the wrong way round
		}
		tried++
		neg := &segment.Rule{Kind: segment.Not, Rules: []*segment.Rule{r}}
		first := strings.Join(goMatches(t, r, profiles), " ")
		for _, d := range dbs {
			got := members(d.db, r)
			if n, m := len(strings.Fields(got)), len(strings.Fields(members(d.db, neg))); int64(n+m) != d.total {
				t.Errorf("%s: %s matches %d, its negation %d of %d", d.name, js, n, m, d.total)
			}
			if got != first {
				t.Errorf("%s selects\n  [%s] in Go (segment.Matcher) but\n  [%s] on %s", js, first, got, d.name)
			}
		}
	}
}
