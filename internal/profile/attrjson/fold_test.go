package attrjson

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/segsync/segsync/internal/textfold"
)

func TestFoldShadow(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{}`, ``},
		{`{"a":"Emile","b":1,"c":true,"d":"2024-01-02"}`, ``},
		{`{"a":"Émile","b":"Emma","c":"ZOË"}`, `{"a":"émile","c":"zoë"}`},
		{`{"a":"Kaſſel"}`, `{"a":"kassel"}`}, // outside ASCII, folds into it
		{`{"a":"\"Ö\\\n"}`, `{"a":"\"ö\\\n"}`},
		{`{"a":"ΣΊΣΥΦΟΣ","mailchimp.x1.status":"subscribed"}`, `{"a":"σίσυφοσ"}`},
	} {
		got, err := FoldShadow([]byte(tc.in))
		if err != nil || string(got) != tc.want || (tc.want == "") != (got == nil) {
			t.Errorf("FoldShadow(%s) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := FoldShadow([]byte(`["é"]`)); err == nil {
		t.Error("FoldShadow took an array")
	}
}

func TestFoldShadowASCIIAllocatesNothing(t *testing.T) {
	obj := []byte(`{"age":31,"city":"Amsterdam","email":"ann@example.org","name":"Ann","vip":true}`)
	if n := testing.AllocsPerRun(100, func() {
		if s, err := FoldShadow(obj); s != nil || err != nil {
			t.Fatal(s, err)
		}
	}); n != 0 {
		t.Errorf("FoldShadow of ASCII attributes allocates %v times", n)
	}
}

// FuzzFoldShadow checks FoldShadow on canonical objects against a map: the
// shadow holds exactly the strings with a rune outside ASCII, each folded.
func FuzzFoldShadow(f *testing.F) {
	f.Add("Émile", "x", "\x00¹")
	f.Add("e\u0301\"\\\t", "ZOË", "2024-01-02")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		obj := Object([]Member{
			{Name: []byte("a"), Value: AppendString(nil, a)},
			{Name: []byte("b"), Value: AppendString(nil, b)},
			{Name: []byte("c"), Value: AppendString(nil, c)},
			{Name: []byte("n"), Value: []byte("1.5")},
		})
		var canon map[string]any
		if err := json.Unmarshal(obj, &canon); err != nil {
			t.Fatalf("%s: %v", obj, err)
		}
		want := map[string]any{}
		for k, v := range canon {
			if s, ok := v.(string); ok && !asciiOnly([]byte(s)) {
				want[k] = textfold.Fold(s)
			}
		}
		got, err := FoldShadow(obj)
		if err != nil {
			t.Fatalf("FoldShadow(%s): %v", obj, err)
		}
		if len(want) == 0 {
			if got != nil {
				t.Fatalf("FoldShadow(%s) = %s, want nil", obj, got)
			}
			return
		}
		var gm map[string]any
		if err := json.Unmarshal(got, &gm); err != nil || !maps.Equal(gm, want) {
			t.Fatalf("FoldShadow(%s) = %s (%v), want %v", obj, got, err, want)
		}
	})
}

// BenchmarkFoldShadow is FoldShadow's cost per profile written, for a row
// like the import benchmark's (internal/profile) with an ASCII city and
// with an accented one.
func BenchmarkFoldShadow(b *testing.B) {
	for _, city := range []string{"Oslo", "Gdańsk"} {
		obj := []byte(`{"age":31,"city":"` + city + `","email":"user1@example.com","first_name":"First1","last_name":"Last1",` +
			`"plan":"plan, 1","score":1.11,"signup":"2011-02-11","vip":false,"visits":1}`)
		b.Run(city, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := FoldShadow(obj); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
