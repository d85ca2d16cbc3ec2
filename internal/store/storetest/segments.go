package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
)

// ruleProfiles is the fixture of TestSegmentRules: every value type, wrong
// types, missing attributes, mixed case, non-ASCII letters, LIKE wildcards,
// dates with and without time and offsets, and invalid dates.
var ruleProfiles = []store.ProfilePatch{
	pp("p01", `{"email":"Ann@Example.com","name":"Ann","country":"NL","age":31,"score":4.5,"vip":true,"born":"1990-02-03","seen":"2024-03-01T10:00:00Z","city":"Amsterdam"}`),
	pp("p02", `{"email":"bob@example.com","name":"bob","country":"nl","age":45,"vip":false,"born":"1985-12-31","seen":"2024-03-01T23:30:00+05:00","city":"Den Haag"}`),
	pp("p03", `{"email":" CAROL@example.com ","name":"Carol","country":"BE","age":"unknown","vip":"yes","born":"not a date","seen":"2024-02-29","city":"Brussel"}`),
	pp("p04", `{"email":"dave@example.com","name":"DAVE","country":"DE","age":18,"score":0,"born":"2024-02-30","city":"100%_sure"}`),
	pp("p05", `{"name":"","age":31.0,"city":"Émile","seen":"2024-03-02T01:00:00+02:00"}`),
	pp("p06", `{}`),
	pp("p07", `{"email":42,"name":"Zoë","age":1e3,"city":"a_b"}`),
}

// ruleCases is the conformance table: the same rule must select exactly
// these profiles on every database.
var ruleCases = []struct {
	rule string
	want string // customer ids without the "p", space separated
}{
	// text: Unicode simple case folding of NFC text (package textfold)
	{`{"attribute":"country","op":"eq","value":"nl"}`, "01 02"},
	{`{"attribute":"country","op":"eq","value":"NL"}`, "01 02"},
	{`{"attribute":"country","op":"neq","value":"nl"}`, "03 04 05 06 07"},
	{`{"attribute":"country","op":"in","value":["NL","be"]}`, "01 02 03"},
	{`{"attribute":"country","op":"not_in","value":["nl","de"]}`, "03 05 06 07"},
	{`{"attribute":"name","op":"eq","value":"zoë"}`, "07"},
	{`{"attribute":"city","op":"eq","value":"émile"}`, "05"},
	{`{"attribute":"city","op":"eq","value":"ÉMILE"}`, "05"},
	{`{"attribute":"name","op":"lt","value":"b"}`, "01 05"},
	{`{"attribute":"name","op":"between","value":["B","D"]}`, "02 03"},
	{`{"attribute":"name","op":"contains","value":"A"}`, "01 03 04"},
	{`{"attribute":"name","op":"starts_with","value":"c"}`, "03"},
	{`{"attribute":"name","op":"ends_with","value":"E"}`, "04"},
	{`{"attribute":"city","op":"contains","value":"%_"}`, "04"},
	{`{"attribute":"city","op":"contains","value":"_"}`, "04 07"},
	{`{"attribute":"city","op":"ends_with","value":"a_B"}`, "07"},
	{`{"attribute":"city","op":"starts_with","value":"100%"}`, "04"},
	{`{"attribute":"age","op":"eq","value":"31"}`, ""},
	// numbers; "unknown" is not a number and never matches
	{`{"attribute":"age","op":"eq","value":31}`, "01 05"},
	{`{"attribute":"age","op":"eq","value":1000}`, "07"},
	{`{"attribute":"age","op":"neq","value":31}`, "02 04 06 07"},
	{`{"attribute":"age","op":"gt","value":30}`, "01 02 05 07"},
	{`{"attribute":"age","op":"gte","value":45}`, "02 07"},
	{`{"attribute":"age","op":"lt","value":31}`, "04"},
	{`{"attribute":"age","op":"lte","value":31}`, "01 04 05"},
	{`{"attribute":"age","op":"between","value":[18,31]}`, "01 04 05"},
	{`{"attribute":"age","op":"in","value":[18,45]}`, "02 04"},
	{`{"attribute":"age","op":"not_in","value":[18,45]}`, "01 05 06 07"},
	{`{"attribute":"score","op":"eq","value":0}`, "04"},
	{`{"attribute":"score","op":"lt","value":4.6}`, "01 04"},
	{`{"attribute":"vip","op":"eq","value":1}`, ""},
	// booleans; "yes" is not a boolean
	{`{"attribute":"vip","op":"eq","value":true}`, "01"},
	{`{"attribute":"vip","op":"eq","value":false}`, "02"},
	{`{"attribute":"vip","op":"neq","value":true}`, "02 04 05 06 07"},
	{`{"attribute":"vip","op":"in","value":[true,false]}`, "01 02"},
	{`{"attribute":"vip","op":"not_in","value":[false]}`, "01 04 05 06 07"},
	// empty and missing
	{`{"attribute":"name","op":"is_empty"}`, "05 06"},
	{`{"attribute":"name","op":"is_not_empty"}`, "01 02 03 04 07"},
	{`{"attribute":"score","op":"is_empty","value":null}`, "02 03 05 06 07"},
	// dates: date-only values compare the day as written, values with a
	// time compare UTC instants; invalid dates never match
	{`{"attribute":"born","op":"eq","value":"1990-02-03"}`, "01"},
	{`{"attribute":"born","op":"lt","value":"1990-01-01"}`, "02"},
	{`{"attribute":"born","op":"gte","value":"1990-01-01"}`, "01"},
	{`{"attribute":"born","op":"neq","value":"1990-02-03"}`, "02 05 06 07"},
	{`{"attribute":"seen","op":"eq","value":"2024-03-01"}`, "01 02"},
	{`{"attribute":"seen","op":"gt","value":"2024-03-01"}`, "05"},
	{`{"attribute":"seen","op":"lt","value":"2024-03-01T12:00:00Z"}`, "01 03"},
	{`{"attribute":"seen","op":"eq","value":"2024-03-01T15:30:00-03:00"}`, "02"},
	{`{"attribute":"seen","op":"eq","value":"2024-03-01T18:30:01Z"}`, ""},
	{`{"attribute":"seen","op":"between","value":["2024-03-01","2024-03-01T23:59:59Z"]}`, "01 02 05"},
	{`{"attribute":"seen","op":"in","value":["2024-02-29","2024-03-02T01:00:00+02:00"]}`, "03 05"},
	{`{"attribute":"seen","op":"gte","value":"2024-02-29T00:00"}`, "01 02 03 05"},
	// not, all, any
	{`{"not":{"attribute":"country","op":"eq","value":"nl"}}`, "03 04 05 06 07"},
	{`{"not":{"attribute":"age","op":"gt","value":30}}`, "03 04 06"},
	{`{"not":{"not":{"attribute":"age","op":"gt","value":30}}}`, "01 02 05 07"},
	{`{"all":[{"attribute":"country","op":"eq","value":"nl"},{"attribute":"age","op":"gte","value":40}]}`, "02"},
	{`{"any":[{"attribute":"vip","op":"eq","value":true},{"attribute":"age","op":"lt","value":20}]}`, "01 04"},
	{`{"all":[]}`, "01 02 03 04 05 06 07"},
	{`{"any":[]}`, ""},
	{`{"not":{"any":[{"attribute":"country","op":"in","value":["nl","be"]},{"all":[{"attribute":"age","op":"gte","value":18},{"attribute":"name","op":"is_not_empty"}]}]}}`, "05 06"},
}

func ids(t *testing.T, ps []store.Profile) string {
	t.Helper()
	var out []string
	for _, p := range ps {
		out = append(out, strings.TrimPrefix(p.CustomerID, "p"))
	}
	return strings.Join(out, " ")
}

// TestSegmentRules runs the conformance table through CountMatching,
// SegmentMembers and PreviewSegment.
func (s Suite) TestSegmentRules(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	upsert(t, db, ruleProfiles...)
	var rules []*segment.Rule
	var want []int64
	for _, tc := range ruleCases {
		if r, err := segment.Parse([]byte(tc.rule), nil); err == nil {
			rules = append(rules, r)
			want = append(want, int64(len(strings.Fields(tc.want))))
		}
	}
	if got, err := db.CountMatchingEach(ctx, rules); err != nil || !slices.Equal(got, want) {
		t.Errorf("CountMatchingEach = %v, %v; want %v", got, err, want)
	}
	for _, tc := range ruleCases {
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
		if got := ids(t, page.Profiles); got != tc.want {
			t.Errorf("members of %s = [%s], want [%s]", tc.rule, got, tc.want)
		}
		n, err := db.CountMatching(ctx, r)
		if err != nil {
			t.Errorf("CountMatching(%s): %v", tc.rule, err)
		} else if want := len(strings.Fields(tc.want)); n != int64(want) {
			t.Errorf("CountMatching(%s) = %d, want %d", tc.rule, n, want)
		}
	}
}

// TestSegmentDateKeys checks that the database's date functions agree with
// segment.DateKeys (PostgreSQL implements them in plpgsql, SQLite calls Go).
func (s Suite) TestSegmentDateKeys(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	values := []string{
		"2024-03-01", "2024-02-29", "2023-02-29", "2024-02-30", "2024-13-01", "2024-00-10", "2024-01-00",
		"0999-12-31", "1000-01-01", "9999-12-31T23:59:59Z", "2024-03-01T10:00", "2024-03-01T10:00Z",
		"2024-03-01T10:00:59.999999999+01:00", "2024-03-01T24:00", "2024-03-01T23:60", "2024-03-01T23:59:60",
		"2024-03-01T00:30:00+15:59", "2024-03-01T00:30:00+16:00", "2024-03-01T23:30:00-15:59", "2024-03-01T10:00:00+0100",
		"2024-03-01 10:00", "2024-3-1", "24-03-01", "2024-03-01T", "2024-03-01T10", "2024-03-01T10:00:00.Z",
		"1000-01-01T00:30:00+01:00", "2024-03-01Z", " 2024-03-01", "x",
	}
	// Plus generated ones around the edges: leap days, month ends, hours,
	// minutes, seconds and offsets just inside and outside their ranges.
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	for range 600 {
		v := pick("1000", "0999", "1900", "2000", "2023", "2024", "2100", "9999") + "-" +
			pick("00", "01", "02", "04", "12", "13") + "-" + pick("00", "01", "28", "29", "30", "31", "32")
		if rng.IntN(4) > 0 {
			v += "T" + pick("00", "09", "23", "24") + ":" + pick("00", "59", "60")
			if rng.IntN(2) == 0 {
				v += ":" + pick("00", "59", "60") + pick("", "", ".5", ".999999999")
			}
			v += pick("", "Z", "+00:00", "-00:30", "+05:30", "-15:59", "+15:59", "+16:00", "-12:60")
		}
		values = append(values, v)
	}
	values = append(values, "")
	list, err := json.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	q := `SELECT j.value, segsync_date(j.value), segsync_instant(j.value) FROM json_each(?) j ORDER BY j.key`
	if db.Dialect() == "postgres" {
		q = `SELECT j.value #>> '{}', segsync_date(j.value), segsync_instant(j.value)
			FROM jsonb_array_elements(CAST(? AS jsonb)) WITH ORDINALITY AS j(value, n) ORDER BY j.n`
	}
	rows, err := db.R.Query(db.Q(q), string(list))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var v string
		var day, instant *string
		if err := rows.Scan(&v, &day, &instant); err != nil {
			t.Fatal(err)
		}
		n++
		wantDay, wantInstant, ok := segment.DateKeys(v)
		if ok != (day != nil) || ok != (instant != nil) || (ok && (*day != wantDay || *instant != wantInstant)) {
			t.Errorf("database keys of %q = %s, %s; segment.DateKeys = %q, %q, %v", v, str(day), str(instant), wantDay, wantInstant, ok)
		}
	}
	if err := rows.Err(); err != nil || n != len(values) {
		t.Fatalf("%d of %d values checked: %v", n, len(values), err)
	}
}

func str(p *string) string {
	if p == nil {
		return "NULL"
	}
	return `"` + *p + `"`
}

// TestSegmentCRUD covers create, read, list, update and delete with their
// conflicts and misses.
func (s Suite) TestSegmentCRUD(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	rule := func(js string) *segment.Rule {
		r, err := segment.Parse([]byte(js), nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := store.Segment{Name: "VIP", Description: "best", Rule: rule(`{"attribute":"vip","op":"eq","value":true}`)}
	if err := db.CreateSegment(ctx, &a); err != nil || a.ID == 0 || a.CreatedAt.IsZero() {
		t.Fatalf("CreateSegment = %v, %+v", err, a)
	}
	if err := db.CreateSegment(ctx, &store.Segment{Name: "vip", Rule: a.Rule}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateSegment with a name taken in another case = %v, want ErrConflict", err)
	}
	b := store.Segment{Name: "Dutch", Rule: rule(`{"all":[{"attribute":"country","op":"in","value":["NL","BE"]},{"not":{"attribute":"born","op":"lt","value":"1990-01-01"}}]}`)}
	if err := db.CreateSegment(ctx, &b); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetSegment(ctx, b.ID)
	if err != nil || got.Name != "Dutch" || got.Rule.String() != b.Rule.String() || !got.CreatedAt.Equal(b.CreatedAt) {
		t.Fatalf("GetSegment = %+v, %v; want %+v", got, err, b)
	}
	if _, err := db.GetSegment(ctx, 999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSegment(999) = %v, want ErrNotFound", err)
	}
	for _, name := range []string{"émigrés", "Zeeland", "apple"} {
		if err := db.CreateSegment(ctx, &store.Segment{Name: name, Rule: a.Rule}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := db.ListSegments(ctx)
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); err != nil || got != "apple,Dutch,VIP,Zeeland,émigrés" {
		t.Fatalf("ListSegments = %s, %v", got, err)
	}
	for _, s := range list[3:] {
		if err := db.DeleteSegment(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteSegment(ctx, list[0].ID); err != nil {
		t.Fatal(err)
	}
	b.Name, b.Description, b.Rule = "Dutch speakers", "NL+BE", rule(`{"attribute":"country","op":"eq","value":"nl"}`)
	if err := db.UpdateSegment(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetSegment(ctx, b.ID); got.Name != "Dutch speakers" || got.Description != "NL+BE" || got.Rule.String() != b.Rule.String() {
		t.Fatalf("after UpdateSegment: %+v", got)
	}
	b.Name = "vip"
	if err := db.UpdateSegment(ctx, &b); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("UpdateSegment to a taken name = %v, want ErrConflict", err)
	}
	if err := db.UpdateSegment(ctx, &store.Segment{ID: 999, Name: "x", Rule: a.Rule}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateSegment(999) = %v, want ErrNotFound", err)
	}
	e := store.Export{Name: "e", AudienceID: "aud", SegmentIDs: []int64{b.ID, a.ID}, Mapping: store.Mapping{Email: "email"},
		StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
	if err := db.CreateExport(ctx, &e); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSegment(ctx, a.ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("DeleteSegment of a segment an export selects = %v, want ErrConflict", err)
	}
	e.SegmentIDs = []int64{b.ID, a.ID + 100}
	if err := db.UpdateExport(ctx, &e); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSegment(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSegment(ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteSegment = %v, want ErrNotFound", err)
	}
	if list, _ := db.ListSegments(ctx); len(list) != 1 {
		t.Fatalf("after delete: %+v", list)
	}
	if err := db.DeleteSegment(ctx, b.ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("DeleteSegment(%d) still selected = %v, want ErrConflict", b.ID, err)
	}
}

// TestSegmentMembersPaging walks the members of a rule page by page.
func (s Suite) TestSegmentMembersPaging(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	upsert(t, db, ruleProfiles...)
	r, _ := segment.Parse([]byte(`{"attribute":"age","op":"is_not_empty"}`), nil)
	var all []string
	cursor := ""
	for range 10 {
		page, err := db.SegmentMembers(ctx, r, 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ids(t, page.Profiles))
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if got := strings.Join(all, "|"); got != "01 02|03 04|05 07" {
		t.Fatalf("pages = %s", got)
	}
	if _, err := db.SegmentMembers(ctx, r, 2, "!!"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad cursor: %v, want ErrInvalid", err)
	}
	p, err := db.PreviewSegment(ctx, r, 3)
	if err != nil || p.Count != 6 || ids(t, p.Sample) != "01 02 03" {
		t.Fatalf("PreviewSegment = %+v, %v", p, err)
	}
}

// TestSegmentStreamByHash checks the export engine's stream: subscriber
// hash order computed as emailaddr.Hash does, membership bits, and
// profiles without a usable address first.
func (s Suite) TestSegmentStreamByHash(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	upsert(t, db, ruleProfiles...)
	upsert(t, db, pp("p08", `{"email":"ann@example.COM\t","country":"NL"}`), pp("p09", `{"email":"   ","country":"NL"}`), pp("p10", `{"email":12345,"country":"NL"}`), pp("p11", `{"email":true,"country":"NL"}`))
	nl, _ := segment.Parse([]byte(`{"attribute":"country","op":"eq","value":"nl"}`), nil)
	young, _ := segment.Parse([]byte(`{"attribute":"age","op":"lt","value":40}`), nil)
	type row struct {
		hash, id string
		bits     uint64
	}
	var got []row
	err := db.StreamMembersByHash(ctx, []*segment.Rule{nl, young}, "email", nil, func(m store.HashedMember) error {
		if !strings.HasPrefix(string(m.Attrs), "{") || m.UpdatedAt.IsZero() {
			t.Errorf("member %s: attrs %q, updated %v", m.CustomerID, m.Attrs, m.UpdatedAt)
		}
		got = append(got, row{m.Hash, m.CustomerID, m.Segments})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ann := emailaddr.Hash("ann@example.com")
	want := []row{
		{"", "p05", 2}, {"", "p07", 0}, {"", "p09", 1}, {"", "p10", 1}, {"", "p11", 1}, // no usable e-mail: first, by customer id
		{ann, "p01", 3}, {ann, "p08", 1},
		{emailaddr.Hash("bob@example.com"), "p02", 1},
		{emailaddr.Hash("carol@example.com"), "p03", 0},
		{emailaddr.Hash("dave@example.com"), "p04", 2},
	}
	// p07 (age 1000) and p03 (BE, age "unknown") match neither rule.
	want = slices.DeleteFunc(want, func(r row) bool { return r.bits == 0 })
	slices.SortFunc(want, func(a, b row) int { // "" first, then by hash, ties by customer id
		if c := strings.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	if !slices.Equal(got, want) {
		t.Fatalf("stream =\n%v\nwant\n%v", got, want)
	}
	// The same stream read in id ranges, more of them than read at once
	// (as over many profiles).
	db.SpanProfiles, db.RangeProfiles = 1, 2
	got = got[:0]
	if err := db.StreamMembersByHash(ctx, []*segment.Rule{nl, young}, "email", nil, func(m store.HashedMember) error {
		got = append(got, row{m.Hash, m.CustomerID, m.Segments})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("stream read in id ranges =\n%v\nwant\n%v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := db.StreamMembersByHash(ctx, []*segment.Rule{nl}, "email", nil, func(store.HashedMember) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("stopping the stream: %v after %d rows", err, n)
	}
	if err := db.StreamMembersByHash(ctx, nil, "email", nil, func(store.HashedMember) error { return nil }); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("no rules: %v, want ErrInvalid", err)
	}
}

// TestSegmentHashExpr checks that segment.HashExpr computes
// emailaddr.Hash in the database (segsync_hash on both dialects).
func (s Suite) TestSegmentHashExpr(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	emails := []string{"a@example.com", " Mixed.Case@Example.COM\t", "\n\v\f\rx@y.z ", "Émile@exämple.com", "   ", ""}
	want := map[string]string{}
	for i, e := range emails {
		id := "h" + string(rune('a'+i))
		b, _ := json.Marshal(map[string]any{"email": e})
		upsert(t, db, pp(id, string(b)))
		want[id] = ""
		if emailaddr.Normalize(e) != "" {
			want[id] = emailaddr.Hash(e)
		}
	}
	upsert(t, db, pp("hy", `{"email":7}`), pp("hz", `{}`))
	want["hy"], want["hz"] = "", ""
	expr, args, err := segment.HashExpr(segment.Dialect(db.Dialect()), "attrs", "email")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.R.QueryContext(ctx, db.Q(`SELECT customer_id, COALESCE(`+expr+`, '') FROM profiles`), args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, h string
		if err := rows.Scan(&id, &h); err != nil {
			t.Fatal(err)
		}
		n++
		if h != want[id] {
			t.Errorf("hash of %s = %q, want %q", id, h, want[id])
		}
	}
	if err := rows.Err(); err != nil || n != len(want) {
		t.Fatalf("%d rows, %v", n, err)
	}
}

// TestSegmentNullAttributes checks that a JSON null counts as missing. The
// profile store drops nulls on write, so the rows are inserted directly, as
// data from an older version or another tool could hold them.
func (s Suite) TestSegmentNullAttributes(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	for id, attrs := range map[string]string{"n1": `{"a":null,"b":null,"c":null}`, "n2": `{"a":1,"b":"x","c":true}`} {
		if _, err := db.W.ExecContext(ctx, db.Q(`INSERT INTO profiles (customer_id, attrs, updated_at) VALUES (?, ?, 0)`), id, attrs); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		rule string
		want int64
	}{
		{`{"attribute":"a","op":"is_empty"}`, 1},
		{`{"attribute":"a","op":"is_not_empty"}`, 1},
		{`{"attribute":"a","op":"neq","value":1}`, 1},
		{`{"attribute":"a","op":"not_in","value":[2]}`, 2},
		{`{"attribute":"a","op":"eq","value":1}`, 1},
		{`{"attribute":"b","op":"neq","value":"x"}`, 1},
		{`{"attribute":"c","op":"neq","value":true}`, 1},
		{`{"attribute":"c","op":"eq","value":false}`, 0},
		{`{"not":{"attribute":"b","op":"eq","value":"x"}}`, 1},
	} {
		r, err := segment.Parse([]byte(tc.rule), nil)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := db.CountMatching(ctx, r); err != nil || n != tc.want {
			t.Errorf("CountMatching(%s) = %d, %v; want %d", tc.rule, n, err, tc.want)
		}
	}
}

// TestSegmentLargeRules counts rules at the size limit (5000 in-values
// each), alone and many at once, which must be split over statements.
func (s Suite) TestSegmentLargeRules(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	upsert(t, db, ruleProfiles...)
	var rules []*segment.Rule
	for k := range 8 {
		var conds []string
		for c := range 5 {
			vals := make([]string, segment.MaxValues)
			for i := range vals {
				vals[i] = fmt.Sprintf("%d", 1000*c+i+k)
			}
			conds = append(conds, `{"attribute":"age","op":"in","value":[`+strings.Join(vals, ",")+`]}`)
		}
		r, err := segment.Parse([]byte(`{"any":[`+strings.Join(conds, ",")+`]}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	var want []int64
	for _, r := range rules {
		n, err := db.CountMatching(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, n)
	}
	// age 18, 31 (twice), 45, 1000 are in ranges [k, 4999+k].
	if want[0] != 5 || want[1] != 5 {
		t.Fatalf("counts %v, want 5 for k=0 and k=1", want)
	}
	if got, err := db.CountMatchingEach(ctx, rules); err != nil || !slices.Equal(got, want) {
		t.Fatalf("CountMatchingEach = %v, %v; want %v", got, err, want)
	}
	if err := db.StreamMembersByHash(ctx, rules, "email", nil, func(store.HashedMember) error { return nil }); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("streaming 8 rules of 5000 values = %v, want ErrInvalid", err)
	}
}
