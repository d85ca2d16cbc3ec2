package storetest

import (
	"context"
	"database/sql"
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/textfold"
)

// foldProfiles are European names and places as they come: mixed case,
// accents, NFD input, Greek, digraphs, Turkish dotted and dotless i.
var foldProfiles = []store.ProfilePatch{
	pp("f01", `{"n":"Émile"}`),
	pp("f02", `{"n":"EMILE"}`),
	pp("f03", "{\"n\":\"E\u0301MILE Zola\"}"), // NFD: É as E + combining acute
	pp("f04", `{"n":"Özil"}`),
	pp("f05", `{"n":"Ångström"}`),
	pp("f06", `{"n":"Zoë"}`),
	pp("f07", `{"n":"'s-Hertogenbosch"}`),
	pp("f08", `{"n":"Straße"}`),
	pp("f09", `{"n":"STRASSE"}`),
	pp("f10", `{"n":"ΣΊΣΥΦΟΣ"}`),
	pp("f11", `{"n":"ǅemal"}`),
	pp("f12", `{"n":"Işık"}`),
	pp("f13", `{"n":"İstanbul"}`),
	pp("f14", `{"n":"istanbul"}`),
	pp("f15", `{"n":"Kaſſel"}`), // the long s folds to s: the one rune outside ASCII that folds into it
	pp("f16", `{"n":7}`),
}

// foldCases must select the same profiles on every database, and what a
// careful person expects: case and composition never matter; ß is not ss
// and ı is not i (simple folding, as strings.EqualFold).
var foldCases = []struct{ rule, want string }{
	{`{"attribute":"n","op":"starts_with","value":"émi"}`, "01 03"},
	{`{"attribute":"n","op":"eq","value":"émile"}`, "01"},
	{`{"attribute":"n","op":"eq","value":"emile"}`, "02"},
	{`{"attribute":"n","op":"contains","value":"ZOLA"}`, "03"},
	{`{"attribute":"n","op":"eq","value":"ÖZIL"}`, "04"},
	{`{"attribute":"n","op":"in","value":["ångström","zoË"]}`, "05 06"},
	{`{"attribute":"n","op":"not_in","value":["ÅNGSTRÖM"]}`, "01 02 03 04 06 07 08 09 10 11 12 13 14 15"},
	{`{"attribute":"n","op":"eq","value":"'S-HERTOGENBOSCH"}`, "07"},
	{`{"attribute":"n","op":"eq","value":"strasse"}`, "09"},
	{`{"attribute":"n","op":"eq","value":"STRAßE"}`, "08"},
	{`{"attribute":"n","op":"eq","value":"σίσυφος"}`, "10"},
	{`{"attribute":"n","op":"ends_with","value":"φος"}`, "10"},
	{`{"attribute":"n","op":"eq","value":"ǆemal"}`, "11"},
	{`{"attribute":"n","op":"starts_with","value":"IŞ"}`, "12"},
	{`{"attribute":"n","op":"starts_with","value":"ıŞ"}`, ""},
	{`{"attribute":"n","op":"starts_with","value":"işı"}`, "12"},
	{`{"attribute":"n","op":"eq","value":"ISTANBUL"}`, "14"},
	{`{"attribute":"n","op":"neq","value":"émile"}`, "02 03 04 05 06 07 08 09 10 11 12 13 14 15"},
	{`{"attribute":"n","op":"eq","value":"KASSEL"}`, "15"},
	{`{"attribute":"n","op":"in","value":["kassel","Emile"]}`, "02 15"},
	{`{"attribute":"n","op":"contains","value":"ss"}`, "09 15"},
	{`{"attribute":"n","op":"ends_with","value":"SEL"}`, "15"},
	{`{"attribute":"n","op":"neq","value":"kassel"}`, "01 02 03 04 05 06 07 08 09 10 11 12 13 14"},
	{`{"attribute":"n","op":"eq","value":"7"}`, ""},
	{`{"attribute":"n","op":"not_in","value":["7"]}`, "01 02 03 04 05 06 07 08 09 10 11 12 13 14 15"},
	{`{"attribute":"n","op":"lt","value":"EMILE"}`, "07"},
	{`{"attribute":"n","op":"gt","value":"zz"}`, "01 03 04 05 10 11 13"},
}

// TestTextFolding runs foldCases on the database and checks the database's
// own segsync_fold against Go's for every name.
func (s Suite) TestTextFolding(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	upsert(t, db, foldProfiles...)
	for _, tc := range foldCases {
		r, err := segment.Parse([]byte(tc.rule), nil)
		if err != nil {
			t.Errorf("Parse(%s): %v", tc.rule, err)
			continue
		}
		page, err := db.SegmentMembers(ctx, r, 100, "")
		if err != nil {
			t.Errorf("SegmentMembers(%s): %v", tc.rule, err)
			continue
		}
		if got := strings.ReplaceAll(ids(t, page.Profiles), "f", ""); got != tc.want {
			t.Errorf("members of %s = [%s], want [%s]", tc.rule, got, tc.want)
		}
	}
	// Every rune with a folding, and the names, folded by the database.
	var sample []string
	for _, p := range foldProfiles {
		sample = append(sample, p.Attrs)
	}
	var all strings.Builder
	for r := rune(0x20); r < 0x2000; r++ {
		if r != 0x7f && (r < 0xd800 || r > 0xdfff) {
			all.WriteRune(r)
			all.WriteByte('|') // no long runs of combining marks
		}
	}
	sample = append(sample, all.String(), "Ꭰꭰ𐐀𐐨ＡＺａｚ")
	for _, in := range sample {
		// The database folds stored text, which is NFC (UpsertProfiles and
		// the import's readers normalise it); Fold normalises itself.
		in = norm.NFC.String(in)
		var got string
		if err := db.W.QueryRowContext(ctx, db.Q(`SELECT segsync_fold(?)`), in).Scan(&got); err != nil {
			t.Fatalf("segsync_fold: %v", err)
		}
		if want := textfold.Fold(in); got != want {
			for i, gr := range []rune(got) {
				if wr := []rune(want); i >= len(wr) || wr[i] != gr {
					t.Errorf("segsync_fold differs from textfold.Fold at rune %d: %U vs %U", i, gr, []rune(want)[min(i, len([]rune(want))-1)])
					break
				}
			}
		}
	}
}

// TestFoldShadow changes profiles between accented and ASCII values (and
// back, and away) and checks after every step that each text operator
// still selects what Go's folding says and that every profile's folded
// shadow is the one its attributes give: a stale or missing shadow would
// keep or lose matches of accented values.
func (s Suite) TestFoldShadow(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	rules := []string{
		`{"attribute":"n","op":"eq","value":"ÉMILE"}`,
		`{"attribute":"n","op":"eq","value":"emile"}`,
		`{"attribute":"n","op":"neq","value":"émile"}`,
		`{"attribute":"n","op":"in","value":["émile","zoe"]}`,
		`{"attribute":"n","op":"not_in","value":["émile","ZOË"]}`,
		`{"attribute":"n","op":"starts_with","value":"ÉM"}`,
		`{"attribute":"c","op":"contains","value":"ür"}`,
		`{"attribute":"c","op":"ends_with","value":"RICH"}`,
		`{"attribute":"n","op":"gt","value":"zz"}`,
		`{"attribute":"n","op":"lt","value":"zp"}`,
		`{"attribute":"n","op":"gte","value":"ZOË"}`,
		`{"not":{"attribute":"n","op":"eq","value":"zoë"}}`,
	}
	steps := []struct {
		patches []store.ProfilePatch
		want    []string // per rule
	}{
		{[]store.ProfilePatch{pp("s1", `{"c":"Zürich","n":"Émile"}`), pp("s2", `{"n":"Emile"}`), pp("s3", `{"k":7,"n":"ZOË"}`), pp("s4", `{"n":7}`)},
			[]string{"s1", "s2", "s2 s3", "s1", "s2", "s1", "s1", "s1", "s1", "s2 s3", "s1 s3", "s1 s2 s4"}},
		// Accented to ASCII: the shadow goes (s1) or keeps only the
		// other accented attribute (s3 gains one).
		{[]store.ProfilePatch{pp("s1", `{"c":null,"n":"Emile"}`), pp("s3", `{"m":"Ærø","n":"Zoe"}`)},
			[]string{"", "s1 s2", "s1 s2 s3", "s3", "s1 s2 s3", "", "", "", "", "s1 s2 s3", "", "s1 s2 s3 s4"}},
		// And back; an ASCII profile turns accented, one loses its last
		// accented attribute.
		{[]store.ProfilePatch{pp("s1", `{"c":"ZÜRICH","n":"émile"}`), pp("s2", `{"n":"Émile"}`), pp("s3", `{"m":null}`)},
			[]string{"s1 s2", "", "s3", "s1 s2 s3", "s3", "s1 s2", "s1", "s1", "s1 s2", "s3", "s1 s2", "s1 s2 s3 s4"}},
	}
	for i, st := range steps {
		upsert(t, db, st.patches...)
		CheckFoldShadows(t, db)
		for j, rule := range rules {
			r, err := segment.Parse([]byte(rule), nil)
			if err != nil {
				t.Fatal(err)
			}
			page, err := db.SegmentMembers(ctx, r, 100, "")
			if err != nil {
				t.Fatalf("SegmentMembers(%s): %v", rule, err)
			}
			if got := ids(t, page.Profiles); got != st.want[j] {
				t.Errorf("step %d: members of %s = [%s], want [%s]", i, rule, got, st.want[j])
			}
		}
	}
	// A deleted profile takes its shadow along; written again, it has a
	// new one.
	if err := db.DeleteProfile(ctx, "s2"); err != nil {
		t.Fatal(err)
	}
	upsert(t, db, pp("s2", `{"n":"ÉMILE"}`))
	CheckFoldShadows(t, db)
}

// CheckFoldShadows fails t unless every profile's stored folded shadow
// (profiles.attrs_fold) is the one attrjson.FoldShadow gives its stored
// attributes: what segment rules on accented text read.
func CheckFoldShadows(t testing.TB, db *sqldb.DB) {
	t.Helper()
	q := `SELECT customer_id, attrs, attrs_fold FROM profiles`
	if db.SQLDialect() == sqldb.Postgres {
		q = `SELECT customer_id, attrs::text, attrs_fold::text FROM profiles`
	}
	rows, err := db.R.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, attrs string
		var fold sql.NullString
		if err := rows.Scan(&id, &attrs, &fold); err != nil {
			t.Fatal(err)
		}
		var m attrjson.Merger
		canon, err := m.Canonical([]byte(attrs))
		if err != nil {
			t.Fatal(err)
		}
		want, err := attrjson.FoldShadow(canon)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil || !fold.Valid {
			if want != nil || fold.Valid {
				t.Errorf("profile %s %s: shadow %v, want %s", id, attrs, fold, want)
			}
			continue
		}
		var got, exp map[string]any
		if err := json.Unmarshal([]byte(fold.String), &got); err != nil {
			t.Fatalf("profile %s: shadow %s: %v", id, fold.String, err)
		}
		if err := json.Unmarshal(want, &exp); err != nil || !maps.Equal(got, exp) {
			t.Errorf("profile %s %s: shadow %s, want %s", id, attrs, fold.String, want)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
