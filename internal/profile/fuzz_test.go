package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
)

// checkRows reads every row and checks the reader's promises: no panic,
// line numbers increasing and within the input, accepted rows with a usable
// key and canonical attributes of scalar values, rejected rows with a
// reason.
func checkRows(t *testing.T, rows rowReader, input []byte) int {
	t.Helper()
	lines := int64(bytes.Count(input, []byte{'\n'}) + 1)
	var rec record
	var m attrjson.Merger
	last, n := int64(0), 0
	for {
		err := rows.next(&rec)
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		n++
		if rec.line <= last || rec.line > lines {
			t.Fatalf("row %d: line %d after line %d (input has %d lines)", n, rec.line, last, lines)
		}
		last = rec.line
		if rec.reason != "" {
			continue
		}
		if reason := checkKey(rec.key); reason != "" {
			t.Fatalf("line %d accepted with a bad key %q: %s", rec.line, rec.key, reason)
		}
		if !json.Valid(rec.attrs) {
			t.Fatalf("line %d: invalid attrs %s", rec.line, rec.attrs)
		}
		c, err := m.Canonical(rec.attrs)
		if err != nil || !bytes.Equal(c, rec.attrs) {
			t.Fatalf("line %d: attrs %s are not canonical (%s, %v)", rec.line, rec.attrs, c, err)
		}
		var obj map[string]any
		if err := json.Unmarshal(rec.attrs, &obj); err != nil {
			t.Fatalf("line %d: %v", rec.line, err)
		}
		for k, v := range obj {
			if !attrjson.ValidName(k) {
				t.Fatalf("line %d: invalid name %q accepted", rec.line, k)
			}
			switch v.(type) {
			case map[string]any, []any:
				t.Fatalf("line %d: nested value accepted for %q", rec.line, k)
			}
		}
	}
}

func FuzzCSV(f *testing.F) {
	for _, s := range []string{
		"customer_id,a,b\nc1,1,x\nc2,\"q\"\"uote\",2024-01-02\n",
		"customer_id,a\n\"c1\",\"multi\nline\"\nc2,\"open\nc3,3\n",
		"customer_id,a\r\nc1,true\r\n\r\nc2,-0.50\r\n",
		"\uFEFFcustomer_id\nc1\n,\n\"\"\n",
		"customer_id,a\nc1,\"x\"y\nc2,1,2\nc1,dup\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		c, err := newCSVReader(bytes.NewReader(input), "customer_id")
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("header: %v", err)
			}
			return
		}
		checkRows(t, c, input)
	})
}

func FuzzNDJSON(f *testing.F) {
	for _, s := range []string{
		`{"customer_id":"c1","a":1,"b":"2024-01-02T03:04:05+01:00","c":true,"d":null}` + "\n",
		`{"customer_id":2,"a":[1]}` + "\n" + `{"customer_id":"c3","x":{"y":1}}` + "\n",
		"{bad json\n\n[1,2]\n\"str\"\n",
		`{"customer_id":"c\u0000","\u0061":"\ud800","e":1e400,"f":-0.0}` + "\n",
		`{"customer_id":" ","first name":1}` + "\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		n := checkRows(t, newNDJSONReader(bytes.NewReader(input), "customer_id"), input)
		nonBlank := 0
		for _, l := range bytes.Split(input, []byte{'\n'}) {
			if len(bytes.TrimSpace(l)) > 0 {
				nonBlank++
			}
		}
		if n != nonBlank {
			t.Fatalf("%d rows from %d non-blank lines", n, nonBlank)
		}
	})
}
