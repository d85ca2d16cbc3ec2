package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/sqldb"
)

func upsert(t *testing.T, db *sqldb.DB, patches ...store.ProfilePatch) store.UpsertCounts {
	t.Helper()
	c, err := db.UpsertProfiles(context.Background(), patches)
	if err != nil {
		t.Fatalf("UpsertProfiles: %v", err)
	}
	return c
}

func attrsOf(t *testing.T, db *sqldb.DB, id string) string {
	t.Helper()
	p, err := db.GetProfile(context.Background(), id)
	if err != nil {
		t.Fatalf("GetProfile(%q): %v", id, err)
	}
	return string(p.Attrs)
}

func pp(id, attrs string) store.ProfilePatch { return store.ProfilePatch{CustomerID: id, Attrs: attrs} }

// TestProfilesMerge checks upsert semantics step by step: merge, null
// removal, the counts and the canonical attributes read back.
func (s Suite) TestProfilesMerge(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	steps := []struct {
		name    string
		patches []store.ProfilePatch
		want    store.UpsertCounts
		attrs   map[string]string
	}{
		{"insert", []store.ProfilePatch{pp("c1", `{"age":31,"name":"Ann"}`), pp("c2", `{"vip":true}`)},
			store.UpsertCounts{Inserted: 2}, map[string]string{"c1": `{"age":31,"name":"Ann"}`, "c2": `{"vip":true}`}},
		{"same again", []store.ProfilePatch{pp("c1", `{"age":31,"name":"Ann"}`), pp("c2", `{"vip":true}`)},
			store.UpsertCounts{Unchanged: 2}, map[string]string{"c1": `{"age":31,"name":"Ann"}`}},
		{"subset is unchanged", []store.ProfilePatch{pp("c1", `{"name":"Ann"}`)},
			store.UpsertCounts{Unchanged: 1}, map[string]string{"c1": `{"age":31,"name":"Ann"}`}},
		{"merge adds and updates", []store.ProfilePatch{pp("c1", `{"age":32,"city":"Oslo"}`), pp("c3", `{}`)},
			store.UpsertCounts{Inserted: 1, Updated: 1}, map[string]string{"c1": `{"age":32,"city":"Oslo","name":"Ann"}`, "c3": `{}`}},
		{"null removes", []store.ProfilePatch{pp("c1", `{"city":null}`), pp("c2", `{"gone":null}`)},
			store.UpsertCounts{Updated: 1, Unchanged: 1}, map[string]string{"c1": `{"age":32,"name":"Ann"}`, "c2": `{"vip":true}`}},
		{"type change", []store.ProfilePatch{pp("c2", `{"vip":"yes"}`)},
			store.UpsertCounts{Updated: 1}, map[string]string{"c2": `{"vip":"yes"}`}},
		{"escapes and dates round-trip", []store.ProfilePatch{pp("c4", `{"born":"1990-02-03","note":"a\"b\\c\nd é","seen":"2024-01-02T03:04:05Z"}`)},
			store.UpsertCounts{Inserted: 1}, map[string]string{"c4": `{"born":"1990-02-03","note":"a\"b\\c\nd é","seen":"2024-01-02T03:04:05Z"}`}},
		{"escaped unchanged", []store.ProfilePatch{pp("c4", `{"note":"a\"b\\c\nd é"}`)},
			store.UpsertCounts{Unchanged: 1}, nil},
		{"decimals keep their text", []store.ProfilePatch{pp("c5", `{"price":1.50,"n":-3}`)},
			store.UpsertCounts{Inserted: 1}, map[string]string{"c5": `{"n":-3,"price":1.50}`}},
		{"decimals unchanged", []store.ProfilePatch{pp("c5", `{"n":-3,"price":1.50}`)},
			store.UpsertCounts{Unchanged: 1}, nil},
	}
	for _, st := range steps {
		got := upsert(t, db, st.patches...)
		if got != st.want {
			t.Errorf("%s: counts = %+v, want %+v", st.name, got, st.want)
		}
		for id, want := range st.attrs {
			if a := attrsOf(t, db, id); a != want {
				t.Errorf("%s: attrs of %s = %s, want %s", st.name, id, a, want)
			}
		}
	}
}

// TestProfilesUnchangedWritesNothing re-applies the same patches and checks
// that updated_at, the rows and the catalogue stay as they were.
func (s Suite) TestProfilesUnchangedWritesNothing(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	var patches []store.ProfilePatch
	for i := range 1200 {
		patches = append(patches, pp(fmt.Sprintf("id%04d", i), fmt.Sprintf(`{"email":"u%d@example.com","n":%d,"vip":%t}`, i, i, i%2 == 0)))
	}
	if c := upsert(t, db, patches...); c.Inserted != 1200 {
		t.Fatalf("first upsert: %+v", c)
	}
	snapshot := func() (int64, int64) {
		var sum, n int64
		if err := db.R.QueryRowContext(ctx, `SELECT COALESCE(SUM(updated_at % 1000003), 0), COUNT(*) FROM profiles`).Scan(&sum, &n); err != nil {
			t.Fatal(err)
		}
		return sum, n
	}
	before, n := snapshot()
	catBefore, _ := db.ProfileAttributes(ctx)
	if c := upsert(t, db, patches...); c != (store.UpsertCounts{Unchanged: 1200}) {
		t.Fatalf("second upsert: %+v", c)
	}
	after, n2 := snapshot()
	catAfter, _ := db.ProfileAttributes(ctx)
	if before != after || n != n2 {
		t.Errorf("updated_at changed on an unchanged upsert")
	}
	if fmt.Sprint(catBefore) != fmt.Sprint(catAfter) {
		t.Errorf("catalogue changed: %v -> %v", catBefore, catAfter)
	}
}

// TestProfilesListGetDelete pages through profiles and deletes them.
func (s Suite) TestProfilesListGetDelete(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("c-%02d", 24-i)
		upsert(t, db, pp(id, fmt.Sprintf(`{"i":%d}`, i)))
		want = append(want, id)
	}
	slices.Sort(want)
	var got []string
	cursor, pages := "", 0
	for {
		page, err := db.ListProfiles(ctx, 10, cursor)
		if err != nil {
			t.Fatalf("ListProfiles: %v", err)
		}
		pages++
		for _, p := range page.Profiles {
			got = append(got, p.CustomerID)
			if p.UpdatedAt.IsZero() || len(p.Attrs) == 0 {
				t.Errorf("profile %s lacks data: %+v", p.CustomerID, p)
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Errorf("listed %v in %d pages, want %v in 3", got, pages, want)
	}
	if _, err := db.ListProfiles(ctx, 10, "!!not base64"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad cursor: %v, want ErrInvalid", err)
	}
	if n, err := db.CountProfiles(ctx); err != nil || n != 25 {
		t.Errorf("CountProfiles = %d, %v", n, err)
	}
	if _, err := db.GetProfile(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetProfile(nobody): %v, want ErrNotFound", err)
	}
	if err := db.DeleteProfile(ctx, "c-03"); err != nil {
		t.Fatalf("DeleteProfile: %v", err)
	}
	if err := db.DeleteProfile(ctx, "c-03"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteProfile: %v, want ErrNotFound", err)
	}
	if _, err := db.GetProfile(ctx, "c-03"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetProfile after delete: %v, want ErrNotFound", err)
	}
	if n, _ := db.CountProfiles(ctx); n != 24 {
		t.Errorf("CountProfiles after delete = %d, want 24", n)
	}
}

// TestProfilesCatalogue follows the attribute catalogue through inserts,
// type changes, removals and deletes.
func (s Suite) TestProfilesCatalogue(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	check := func(step string, want []store.AttributeInfo) {
		t.Helper()
		got, err := db.ProfileAttributes(ctx)
		if err != nil {
			t.Fatalf("%s: ProfileAttributes: %v", step, err)
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Errorf("%s: catalogue\n got %+v\nwant %+v", step, got, want)
		}
	}
	check("empty", []store.AttributeInfo{})
	upsert(t, db, pp("a", `{"age":1,"born":"2001-01-01","name":"x","vip":true}`), pp("b", `{"age":2,"name":"y"}`), pp("c", `{"age":"old"}`))
	check("insert", []store.AttributeInfo{
		{Name: "age", Type: "number", Count: 3, Types: map[string]int64{"number": 2, "string": 1}},
		{Name: "born", Type: "date", Count: 1},
		{Name: "name", Type: "string", Count: 2},
		{Name: "vip", Type: "boolean", Count: 1},
	})
	upsert(t, db, pp("c", `{"age":3,"vip":null}`), pp("a", `{"vip":null,"born":"2001-01-01T10:00:00Z"}`))
	check("update", []store.AttributeInfo{
		{Name: "age", Type: "number", Count: 3},
		{Name: "born", Type: "date", Count: 1},
		{Name: "name", Type: "string", Count: 2},
	})
	if err := db.DeleteProfile(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	check("delete", []store.AttributeInfo{
		{Name: "age", Type: "number", Count: 2},
		{Name: "name", Type: "string", Count: 1},
	})
	if _, err := db.DeleteProfilesExcept(ctx, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	check("all deleted", []store.AttributeInfo{})
}

// TestProfilesDeleteExcept deletes across several internal batches.
func (s Suite) TestProfilesDeleteExcept(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	ctx := context.Background()
	var patches []store.ProfilePatch
	for i := range 4500 {
		patches = append(patches, pp(fmt.Sprintf("p%05d", i), `{"x":1}`))
	}
	upsert(t, db, patches...)
	keep := func(id string) bool { return id[len(id)-1]%3 == 0 }
	var want int64
	for _, p := range patches {
		if !keep(p.CustomerID) {
			want++
		}
	}
	n, err := db.DeleteProfilesExcept(ctx, keep)
	if err != nil || n != want {
		t.Fatalf("DeleteProfilesExcept = %d, %v; want %d", n, err, want)
	}
	if c, _ := db.CountProfiles(ctx); c != 4500-want {
		t.Errorf("%d profiles left, want %d", c, 4500-want)
	}
	cat, _ := db.ProfileAttributes(ctx)
	if len(cat) != 1 || cat[0].Count != 4500-want {
		t.Errorf("catalogue after delete: %+v", cat)
	}
}

// TestProfilesDeleteTakesLayers deletes profiles one way and another and
// imports them again: nothing of what their sources said before comes back,
// whether the uploads layer lives in the profiles or is stored.
func (s Suite) TestProfilesDeleteTakesLayers(t *testing.T) {
	t.Parallel()
	for _, stored := range []bool{false, true} {
		db := s.Open(t)
		ctx := context.Background()
		if stored {
			if _, err := db.W.ExecContext(ctx, db.Q(`UPDATE sources SET layer_in_profiles = ? WHERE id = 1`), false); err != nil {
				t.Fatal(err)
			}
		}
		upsert(t, db, pp("a", `{"old":1}`), pp("b", `{"old":2}`), pp("c", `{"old":3}`))
		if err := db.DeleteProfile(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.DeleteProfilesExcept(ctx, func(id string) bool { return id == "c" }); err != nil {
			t.Fatal(err)
		}
		upsert(t, db, pp("a", `{"new":1}`), pp("b", `{"new":2}`))
		for id, want := range map[string]string{"a": `{"new":1}`, "b": `{"new":2}`, "c": `{"old":3}`} {
			p, err := db.GetProfile(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if string(p.Attrs) != want {
				t.Errorf("stored layer %v: profile %s after delete and import = %s, want %s", stored, id, p.Attrs, want)
			}
		}
		want := 0
		if stored {
			want = 3
		}
		var layers int
		if err := db.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM profile_layers`).Scan(&layers); err != nil || layers != want {
			t.Errorf("stored layer %v: %d layers left (%v), want %d", stored, layers, err, want)
		}
	}
}

// TestProfilesJSONTypes checks that the database itself sees attrs as a
// JSON object with typed values, as the segment compiler reads it.
func (s Suite) TestProfilesJSONTypes(t *testing.T) {
	t.Parallel()
	db := s.Open(t)
	upsert(t, db, pp("a", `{"age":31,"born":"1990-01-02","name":"Ann","vip":true}`))
	q := `SELECT json_type(attrs, '$.age'), json_type(attrs, '$.name'), json_type(attrs, '$.vip'), json_extract(attrs, '$.born') FROM profiles`
	want := []string{"integer", "text", "true", "1990-01-02"}
	if db.SQLDialect() == sqldb.Postgres {
		q = `SELECT jsonb_typeof(attrs->'age'), jsonb_typeof(attrs->'name'), jsonb_typeof(attrs->'vip'), attrs->>'born' FROM profiles`
		want = []string{"number", "string", "boolean", "1990-01-02"}
	}
	got := make([]string, 4)
	if err := db.R.QueryRowContext(context.Background(), q).Scan(&got[0], &got[1], &got[2], &got[3]); err != nil {
		t.Fatalf("reading attrs as JSON: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("JSON types = %v, want %v", got, want)
	}
}
