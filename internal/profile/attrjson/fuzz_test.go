package attrjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzMerge checks Merge against a map-based merge: same result, and
// "changed" exactly when the result differs from the stored object.
func FuzzMerge(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":"x"}`), []byte(`{"b":"y","c":null}`))
	f.Add([]byte(`{"b": "x\"y", "aa": 1.50}`), []byte(`{"aa":1.50}`))
	f.Add([]byte(`{}`), []byte(`{"z":true,"a":false,"z":null}`))
	f.Fuzz(func(t *testing.T, old, patch []byte) {
		var om, pm map[string]any
		if json.Unmarshal(old, &om) != nil || json.Unmarshal(patch, &pm) != nil || om == nil || pm == nil {
			return
		}
		for _, m := range []map[string]any{om, pm} {
			for _, v := range m {
				switch v.(type) {
				case map[string]any, []any:
					return // attributes are scalars
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
		var gm map[string]any
		if err := json.Unmarshal(got, &gm); err != nil {
			t.Fatalf("Merge(%s, %s) = %s: %v", old, patch, got, err)
		}
		if len(gm) != len(want) {
			t.Fatalf("Merge(%s, %s) = %s, want %v", old, patch, got, want)
		}
		for k, v := range want {
			gv, ok := gm[k]
			if !ok || (!reflect.DeepEqual(gv, v) && !(isNum(gv) && isNum(v))) {
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

func isNum(v any) bool { _, ok := v.(float64); return ok }
