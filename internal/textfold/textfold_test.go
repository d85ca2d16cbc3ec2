package textfold

import (
	"os"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// TestRuneIsAnOrbitMember checks every code point against Go's Unicode
// tables: Rune(r) is in r's simple-folding orbit, and every member of the
// orbit folds to the same rune, so Fold(a) == Fold(b) exactly when
// strings.EqualFold(a, b) for one-rune strings.
func TestRuneIsAnOrbitMember(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		f := Rune(r)
		inOrbit := f == r
		for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
			inOrbit = inOrbit || o == f
			if Rune(o) != f {
				t.Fatalf("%U folds to %U but its orbit member %U to %U", r, f, o, Rune(o))
			}
		}
		if !inOrbit {
			t.Fatalf("%U folds to %U, outside its orbit", r, f)
		}
	}
}

func TestAwkwardNames(t *testing.T) {
	same := [][]string{
		{"Émile", "ÉMILE", "émile", "E\u0301mile"},
		{"Özil", "ÖZIL", "özil"},
		{"Ångström", "ÅNGSTRÖM", "A\u030angstro\u0308m"},
		{"Zoë", "ZOË"},
		{"'s-Hertogenbosch", "'S-HERTOGENBOSCH"},
		{"ΣΊΣΥΦΟΣ", "σίσυφος", "σίσυφοσ"},
		{"Ǆ", "ǅ", "ǆ"},
		{"Kelvin", "\u212Aelvin"},
	}
	for _, g := range same {
		for _, s := range g[1:] {
			if Fold(s) != Fold(g[0]) {
				t.Errorf("Fold(%q) = %q, Fold(%q) = %q: should be equal", s, Fold(s), g[0], Fold(g[0]))
			}
		}
	}
	differ := [][2]string{{"Straße", "STRASSE"}, {"ı", "i"}, {"İ", "i"}, {"Emile", "Émile"}}
	for _, d := range differ {
		if Fold(d[0]) == Fold(d[1]) {
			t.Errorf("Fold(%q) == Fold(%q): simple folding keeps them apart", d[0], d[1])
		}
	}
	if Fold("émi") != "émi" || !strings.HasPrefix(Fold("Émile"), Fold("ÉMI")) {
		t.Errorf("prefix: %q %q", Fold("Émile"), Fold("ÉMI"))
	}
}

func FuzzFold(f *testing.F) {
	for _, s := range []string{"Émile", "ΣΊΣΥΦΟΣ", "Straße", "ǅemal", "\xff\xfe", "K\u212A", "ß"} {
		f.Add(s, strings.ToUpper(s))
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			return
		}
		fa := Fold(a)
		if Fold(fa) != fa {
			t.Fatalf("Fold is not idempotent on %q", a)
		}
		if !norm.NFC.IsNormalString(fa) {
			// Folding an NFC string may in principle denormalise; Go's
			// tables never do for simple folding.
			t.Fatalf("Fold(%q) = %q is not NFC", a, fa)
		}
		na, nb := norm.NFC.String(a), norm.NFC.String(b)
		if utf8.RuneCountInString(na) == utf8.RuneCountInString(nb) && strings.EqualFold(na, nb) != (Fold(a) == Fold(b)) {
			t.Fatalf("EqualFold(%q, %q) = %v, Fold equal = %v", na, nb, strings.EqualFold(na, nb), Fold(a) == Fold(b))
		}
	})
}

// TestMigrationIsGenerated keeps the committed PostgreSQL migration equal
// to Migration (SEGSYNC_UPDATE_MIGRATION=1 rewrites it).
func TestMigrationIsGenerated(t *testing.T) {
	const path = "../store/postgres/migrations/0010_textfold.sql"
	want := Migration()
	if os.Getenv("SEGSYNC_UPDATE_MIGRATION") == "1" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is not what textfold.Migration generates; run SEGSYNC_UPDATE_MIGRATION=1 go test ./internal/textfold", path)
	}
}
