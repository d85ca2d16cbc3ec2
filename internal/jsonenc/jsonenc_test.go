package jsonenc

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMarshals: String, Strings, Value and Map write json.Marshal's bytes
// for strings of every kind (HTML's <>&, quotes, controls, accents,
// invalid UTF-8, U+2028), floats in both of its notations and maps of
// both, and Value and Map fail where json.Marshal fails.
func TestMarshals(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	pieces := []string{"", "a", "Émile", "<b>", "&", "\"", "\\", "\n", "\x00", "\x7f", "\xff", "\u2028", "日本", " ", "Z"}
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 1e-6, 9.99e-7, 1e20, 1e21, 123456789.125, -2.5e-9, math.MaxFloat64, math.SmallestNonzeroFloat64}
	for range 5000 {
		var ss []string
		for range r.IntN(4) {
			s := ""
			for range r.IntN(4) {
				s += pieces[r.IntN(len(pieces))]
			}
			ss = append(ss, s)
		}
		want, _ := json.Marshal(append([]string{}, ss...))
		if got := Strings(nil, ss); string(got) != string(want) {
			t.Fatalf("Strings(%q) = %s, json.Marshal's %s", ss, got, want)
		}
		f := floats[r.IntN(len(floats))]
		if r.IntN(2) == 0 {
			f = (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(60)-30))
		}
		want, _ = json.Marshal(f)
		if got, err := Value(nil, f); err != nil || string(got) != string(want) {
			t.Fatalf("Value(%v) = %s (%v), json.Marshal's %s", f, got, err, want)
		}
		m := map[string]any{}
		for i, s := range ss {
			if i%2 == 0 {
				m[s] = f
			} else {
				m[s] = s
			}
		}
		want, _ = json.Marshal(m)
		if got, err := Map(nil, m); err != nil || string(got) != string(want) {
			t.Fatalf("Map(%q) = %s (%v), json.Marshal's %s", m, got, err, want)
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(-1)} {
		if _, err := Value(nil, v); err == nil {
			t.Errorf("Value(%v) encoded without an error", v)
		}
		if _, err := Map(nil, map[string]any{"x": v}); err == nil {
			t.Errorf("Map with %v encoded without an error", v)
		}
	}
}

// BenchmarkString encodes addresses, as a first export's request bodies
// and create intents do by the million.
func BenchmarkString(b *testing.B) {
	addrs := []string{"anna.de.vries@example.com", "j.smith+news@mail.example.org", "x@y.io", "customer-000123@example.net"}
	var buf []byte
	for i := 0; b.Loop(); i++ {
		buf = String(buf[:0], addrs[i%len(addrs)])
	}
}
