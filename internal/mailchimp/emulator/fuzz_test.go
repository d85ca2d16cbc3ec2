package emulator

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
)

func FuzzFilterFields(f *testing.F) {
	f.Add(`{"members":[{"email_address":"a@b.io","merge_fields":{"FNAME":"A"}}],"total_items":1}`, "members.email_address", "")
	f.Add(`{"a":{"b":[1,2,{"c":3}]}}`, "a.b.c", "a.b")
	f.Add(`[]`, "", "x")
	f.Fuzz(func(t *testing.T, body, fields, exclude string) {
		if !json.Valid([]byte(body)) {
			return
		}
		out, err := filterFields([]byte(body), fields, exclude)
		if err != nil {
			t.Fatalf("filterFields(%q): %v", body, err)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON out: %q", out)
		}
	})
}

func FuzzCheckEmail(f *testing.F) {
	for _, s := range []string{"a@b.io", "test@acme.io", "x@example.com", "@", "a@b", "a..b@c.io", "é@ü.de", " a@b.io"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkEmail(s) == nil && !validEmail(s) {
			t.Fatalf("%q accepted but not valid", s)
		}
		b := appendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("appendString(%q) = %s: %v", s, b, err)
		}
	})
}

func FuzzNormalizeMerge(f *testing.F) {
	for _, s := range []string{`"x"`, `12`, `"12"`, `null`, `{"addr1":"a","city":"b","state":"c","zip":"d"}`, `"2024-02-30"`, `"01/31"`, `true`} {
		f.Add(s)
	}
	fields := []*mergeField{
		{tag: "T", typ: "text"}, {tag: "N", typ: "number"}, {tag: "D", typ: "date"}, {tag: "B", typ: "birthday"},
		{tag: "A", typ: "address"}, {tag: "P", typ: "phone", options: mergeOptions{PhoneFormat: "US"}},
		{tag: "U", typ: "url"}, {tag: "R", typ: "radio", options: mergeOptions{Choices: []string{"x"}}}, {tag: "Z", typ: "zip"},
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !json.Valid([]byte(raw)) {
			return
		}
		for _, fd := range fields {
			v, msg := normalizeMerge(fd, json.RawMessage(raw))
			if msg != "" && v != "" {
				t.Fatalf("%s %s: refused but returned %q", fd.typ, raw, v)
			}
			if msg == "" && (fd.typ == "number" || fd.typ == "address") && v != "" && !json.Valid([]byte(v)) {
				t.Fatalf("%s %s: stored %q is not JSON", fd.typ, raw, v)
			}
		}
	})
}

// TestMemoryPerMember guards the compact member layout: 100,000 members
// with two merge fields and a tag must stay under 700 bytes each (1M under
// 700 MiB). The benchmark BenchmarkMemory1M measures the real figure.
func TestMemoryPerMember(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 100,000 members")
	}
	const n = 100_000
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	e := New(Options{})
	id, _ := e.CreateList(e.Keys()[0], "mem")
	batch := make([]SeedContact, 0, 1000)
	for i := range n {
		batch = append(batch, SeedContact{Email: fmt.Sprintf("person%d@customer-mail.io", i),
			MergeFields: map[string]string{"FNAME": fmt.Sprint("First", i), "LNAME": fmt.Sprint("Last", i)}, Tags: []string{"Customers"}})
		if len(batch) == cap(batch) {
			if err := e.Seed(id, batch...); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perMember := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n
	t.Logf("%.0f bytes per member", perMember)
	if perMember > 700 {
		t.Fatalf("%.0f bytes per member, want at most 700", perMember)
	}
	runtime.KeepAlive(e)
}
