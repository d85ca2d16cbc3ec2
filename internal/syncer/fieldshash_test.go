package syncer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/segsync/segsync/internal/mailchimp"
)

// marshalHash is how fields were hashed before mapFields encoded them:
// json.Marshal of the map. Every stored fields_hash was taken this way.
func marshalHash(fields map[string]any) string {
	b, _ := json.Marshal(fields)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// TestMapFieldsIsMarshals: mapFields writes json.Marshal's bytes for the map
// of the converted values, and so its hash, for tags and values of every
// kind (ASCII, HTML's <>&, quotes and controls, accents, invalid UTF-8,
// U+2028; numbers tiny, huge, negative and zero), a tag given twice (the
// later value wins, as in a map), and empty values (empty reports them).
func TestMapFieldsIsMarshals(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"", "a", "Émile", "<b>", "&", "\"", "\\", "\n", "\x00", "\x7f", "\xff", "\u2028", "日本", " ", "Z", "x y"}
	str := func() string {
		s := ""
		for range r.IntN(4) {
			s += pieces[r.IntN(len(pieces))]
		}
		return s
	}
	floats := []float64{0, 1, -1, 0.5, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 123456789.125, -2.5e-9, 3e300, math.MaxFloat64, math.SmallestNonzeroFloat64}
	for range 20000 {
		var specs []fieldSpec
		var values []any
		for range r.IntN(6) {
			tag := str()
			if r.IntN(4) == 0 {
				tag = "T" // often given twice
			}
			if r.IntN(2) == 0 {
				specs = append(specs, fieldSpec{tag: tag, typ: mailchimp.MergeText})
				values = append(values, str())
			} else {
				f := floats[r.IntN(len(floats))]
				if r.IntN(2) == 0 {
					f = (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(50)-25))
				}
				specs = append(specs, fieldSpec{tag: tag, typ: mailchimp.MergeNumber})
				values = append(values, json.Number(strconv.FormatFloat(f, 'g', -1, 64)))
			}
		}
		want, empty := map[string]any{}, false
		for i, sp := range specs {
			want[sp.tag] = convert(values[i], sp.typ)
		}
		for _, v := range want {
			empty = empty || v == ""
		}
		wantJSON, _ := json.Marshal(want)
		enc, gotEmpty, hash := mapFields(values, specs, fieldOrder(specs))
		if string(enc) != string(wantJSON) || hash != marshalHash(want) || gotEmpty != empty {
			t.Fatalf("mapFields(%q, %+v) = %s (empty %v), %s; json.Marshal's %s (empty %v), %s", values, specs, enc, gotEmpty, hash, wantJSON, empty, marshalHash(want))
		}
	}
}

func BenchmarkMapFields(b *testing.B) {
	specs := []fieldSpec{{tag: "FNAME", typ: mailchimp.MergeText}, {tag: "LNAME", typ: mailchimp.MergeText},
		{tag: "SCORE", typ: mailchimp.MergeNumber}, {tag: "CITY", typ: mailchimp.MergeText}, {tag: "SIGNUP", typ: mailchimp.MergeDate}}
	values := []any{"Emma", "Janssen", json.Number("57"), "Amsterdam", "2024-03-05"}
	order := fieldOrder(specs)
	b.ReportAllocs()
	for range b.N {
		mapFields(values, specs, order)
	}
}
