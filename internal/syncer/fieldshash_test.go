package syncer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// marshalHash is how fields were hashed before fieldsHash: json.Marshal of
// the map. Every stored fields_hash was taken this way.
func marshalHash(fields map[string]any) string {
	b, _ := json.Marshal(fields)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// TestFieldsHashIsMarshals: fieldsHash gives json.Marshal's hash for the
// values convert returns (strings and floats) of every kind: ASCII, HTML's
// <>&, quotes and controls, accents, invalid UTF-8, U+2028, floats tiny,
// huge, negative and zero, NaN (json.Marshal fails: the hash of nothing).
func TestFieldsHashIsMarshals(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"", "a", "Émile", "<b>", "&", "\"", "\\", "\n", "\x00", "\x7f", "\xff", "\u2028", "日本", " ", "Z", "x y"}
	str := func() string {
		s := ""
		for range r.IntN(4) {
			s += pieces[r.IntN(len(pieces))]
		}
		return s
	}
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 123456789.125, -2.5e-9, 3e300, math.MaxFloat64, math.SmallestNonzeroFloat64}
	cases := []map[string]any{{}, {"FNAME": ""}, {"BAD": math.NaN(), "OK": "x"}, {"INF": math.Inf(1)}}
	for range 20000 {
		m := map[string]any{}
		for range 1 + r.IntN(5) {
			k := str()
			if r.IntN(2) == 0 {
				m[k] = str()
			} else if r.IntN(3) == 0 {
				m[k] = floats[r.IntN(len(floats))]
			} else {
				m[k] = (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(50)-25))
			}
		}
		cases = append(cases, m)
	}
	for _, m := range cases {
		if got, want := fieldsHash(m), marshalHash(m); got != want {
			b, _ := json.Marshal(m)
			t.Fatalf("fieldsHash(%#v) = %s, json.Marshal's %s (of %s)", m, got, want, b)
		}
	}
}

func BenchmarkFieldsHash(b *testing.B) {
	m := map[string]any{"FNAME": "Emma", "LNAME": "Janssen", "SCORE": 57.0, "CITY": "Amsterdam", "SIGNUP": "2024-03-05"}
	b.Run("fieldsHash", func(b *testing.B) {
		for range b.N {
			fieldsHash(m)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for range b.N {
			marshalHash(m)
		}
	})
}
