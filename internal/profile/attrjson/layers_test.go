package attrjson

import "testing"

func TestMergeLayers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers []string
		want   string
	}{
		{"one layer", []string{`{"a":1,"b":"x"}`}, `{"a":1,"b":"x"}`},
		{"the first layer wins", []string{`{"a":1}`, `{"a":2,"b":3}`, `{"b":4,"c":5}`}, `{"a":1,"b":3,"c":5}`},
		{"a layer's reserved attributes are not taken", []string{`{"b":1,"mailchimp.x1.status":"cleaned"}`}, `{"b":1}`},
		{"nor those of one of several", []string{`{"a":1}`, `{"mailchimp.x1.status":"cleaned","z":2}`}, `{"a":1,"z":2}`},
		{"a reserved-looking value is only a value", []string{`{"a":"\"mailchimp.y"}`}, `{"a":"\"mailchimp.y"}`},
	} {
		layers := make([][]byte, len(tc.layers))
		for i, l := range tc.layers {
			layers[i] = []byte(l)
		}
		got, err := MergeLayers(layers)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: got %s, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	if _, err := MergeLayers([][]byte{[]byte(`{"a":1}`), []byte(`[1]`)}); err == nil {
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
