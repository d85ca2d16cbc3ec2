package attrjson

import "testing"

func TestMergeLayers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keep   string
		layers []string
		want   string
	}{
		{"one layer, nothing stored", "", []string{`{"a":1,"b":"x"}`}, `{"a":1,"b":"x"}`},
		{"one layer replaces the stored attributes", `{"a":2,"c":true}`, []string{`{"a":1,"b":"x"}`}, `{"a":1,"b":"x"}`},
		{"the first layer wins", "", []string{`{"a":1}`, `{"a":2,"b":3}`, `{"b":4,"c":5}`}, `{"a":1,"b":3,"c":5}`},
		{"stored reserved attributes stay", `{"a":0,"mailchimp.x1.status":"subscribed"}`, []string{`{"b":1}`},
			`{"b":1,"mailchimp.x1.status":"subscribed"}`},
		{"a layer's reserved attributes are not taken", "", []string{`{"b":1,"mailchimp.x1.status":"cleaned"}`}, `{"b":1}`},
		{"a reserved-looking value is only a value", `{"a":"\"mailchimp.x"}`, []string{`{"a":"\"mailchimp.y"}`}, `{"a":"\"mailchimp.y"}`},
		{"stored PostgreSQL text", `{"mailchimp.x1.status": "subscribed", "z": 1}`, []string{`{"a":1}`, `{"z":2}`},
			`{"a":1,"mailchimp.x1.status":"subscribed","z":2}`},
	} {
		layers := make([][]byte, len(tc.layers))
		for i, l := range tc.layers {
			layers[i] = []byte(l)
		}
		got, err := MergeLayers([]byte(tc.keep), layers)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: got %s, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	if _, err := MergeLayers(nil, [][]byte{[]byte(`{"a":1}`), []byte(`[1]`)}); err == nil {
		t.Error("a layer that is not an object was merged")
	}
}

func TestTypes(t *testing.T) {
	got := map[string]string{}
	obj := `{"d":"2024-01-02","dt":"2024-01-02T03:04:05Z","e":"2024\u002d01\u002d02","n":1.5,"b":true,"s":"2024-01-0x","t":"abcd-ef-ghijklmnopqr"}`
	if err := Types([]byte(obj), func(name []byte, typ string) { got[string(name)] = typ }); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"d": TypeDate, "dt": TypeDate, "e": TypeDate, "n": TypeNumber, "b": TypeBoolean, "s": TypeString, "t": TypeString}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}
