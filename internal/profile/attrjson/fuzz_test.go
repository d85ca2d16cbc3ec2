package attrjson

import (
	"bytes"
	"encoding/json"
	"math/big"
	"reflect"
	"strconv"
	"testing"
)

// FuzzMerge checks Merge against a map-based merge: same result (numbers
// compared exactly: the canonical form of the literal that won, with the
// value written), and "changed" exactly when the result differs from the
// stored object.
func FuzzMerge(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":"x"}`), []byte(`{"b":"y","c":null}`))
	f.Add([]byte(`{"b": "x\"y", "aa": 1.50}`), []byte(`{"aa":1.50}`))
	f.Add([]byte(`{}`), []byte(`{"z":true,"a":false,"z":null}`))
	f.Add([]byte(`{"n":1,"m":25e-1,"k":-0.0,"j":1E+3}`), []byte(`{"n":1.0,"m":2.50,"x":-1000}`))
	f.Add([]byte(`{"b":1,"a":1,"a":2}`), []byte(`{"c":"x"}`))
	f.Fuzz(func(t *testing.T, old, patch []byte) {
		om, pm := decodeNumbers(old), decodeNumbers(patch)
		if om == nil || pm == nil {
			return
		}
		for i, m := range []map[string]any{om, pm} {
			for _, v := range m {
				switch v := v.(type) {
				case map[string]any, []any:
					return // attributes are scalars
				case json.Number:
					c, ok := CanonicalNumber(string(v))
					if !ok || (i == 1 && c != string(v)) {
						return // out of range, or a patch number the importer would not write
					}
				}
			}
		}
		var m Merger
		got, changed, err := m.Merge(old, patch, nil)
		if err != nil {
			t.Fatalf("Merge(%s, %s): %v", old, patch, err)
		}
		want := map[string]any{}
		for k, v := range om {
			want[k] = v
		}
		for k, v := range pm {
			if v == nil {
				delete(want, k)
			} else {
				want[k] = v
			}
		}
		gm := decodeNumbers(got)
		if gm == nil {
			t.Fatalf("Merge(%s, %s) = %s: not a JSON object", old, patch, got)
		}
		if len(gm) != len(want) {
			t.Fatalf("Merge(%s, %s) = %s, want %v", old, patch, got, want)
		}
		for k, v := range want {
			gv, ok := gm[k]
			if !ok || !sameValue(gv, v) {
				t.Fatalf("Merge(%s, %s) = %s: %q is %v, want %v", old, patch, got, k, gv, v)
			}
		}
		canon, err := m.Canonical(old)
		if err != nil {
			t.Fatalf("Canonical(%s): %v", old, err)
		}
		if changed != !bytes.Equal(canon, got) {
			t.Fatalf("Merge(%s, %s) = %s changed=%v, canonical old %s", old, patch, got, changed, canon)
		}
	})
}

// decodeNumbers decodes a JSON object keeping numbers as their literals
// (nil when b is not an object).
func decodeNumbers(b []byte) map[string]any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if d.Decode(&m) != nil || d.InputOffset() != int64(len(bytes.TrimRight(b, " \t\r\n"))) {
		return nil
	}
	return m
}

// sameValue reports whether got is the canonical form of want: equal
// strings and booleans; for numbers the literal CanonicalNumber gives,
// whose value is the one written (exactly for plain decimals, to float64
// precision for exponent forms).
func sameValue(got, want any) bool {
	g, gok := got.(json.Number)
	w, wok := want.(json.Number)
	if !gok || !wok {
		return !gok && !wok && reflect.DeepEqual(got, want)
	}
	if c, ok := CanonicalNumber(string(w)); !ok || string(g) != c {
		return false
	}
	if IsPlainDecimal(string(w)) {
		gr, ok1 := new(big.Rat).SetString(string(g))
		wr, ok2 := new(big.Rat).SetString(string(w))
		return ok1 && ok2 && gr.Cmp(wr) == 0
	}
	gf, err1 := strconv.ParseFloat(string(g), 64)
	wf, err2 := strconv.ParseFloat(string(w), 64)
	return err1 == nil && err2 == nil && gf == wf
}
