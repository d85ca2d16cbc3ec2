package profile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// wantErr is an expected rejection: its line and a part of its reason.
type wantErr struct {
	line   int64
	reason string
}

func checkErrors(t *testing.T, got []RowError, want []wantErr) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("errors = %+v, want %d: %+v", got, len(want), want)
	}
	for i := range want {
		if got[i].Line != want[i].line || !strings.Contains(got[i].Reason, want[i].reason) {
			t.Errorf("error %d = %+v, want line %d with %q", i, got[i], want[i].line, want[i].reason)
		}
	}
}

func run(t *testing.T, db *sqldb.DB, opts Options, body string) Report {
	t.Helper()
	rep, err := NewImporter(db, nil).Import(context.Background(), strings.NewReader(body), opts)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if got := rep.Imported + rep.Updated + rep.Unchanged + rep.Rejected; got != rep.Received {
		t.Errorf("counts do not add up: %+v", rep)
	}
	return rep
}

func attrs(t *testing.T, db *sqldb.DB, id string) string {
	t.Helper()
	p, err := db.GetProfile(context.Background(), id)
	if err != nil {
		t.Fatalf("GetProfile(%q): %v", id, err)
	}
	return string(p.Attrs)
}

func TestImportCSV(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		key    string
		rep    Report // counts only
		errs   []wantErr
		attrs  map[string]string
		absent []string
	}{
		{
			name: "typing",
			body: "customer_id,age,price,vip,born,seen,name,zip,big,neg\n" +
				"c1,31,1.50,TRUE,1990-02-03,2024-01-02 03:04:05+02:00,Ann,00123,1e5,-0\n",
			rep: Report{Received: 1, Imported: 1},
			attrs: map[string]string{"c1": `{"age":31,"big":"1e5","born":"1990-02-03","customer_id":"c1","name":"Ann","neg":0,` +
				`"price":1.50,"seen":"2024-01-02T01:04:05Z","vip":true,"zip":"00123"}`},
		},
		{
			name: "quoting, spaces, empty cells, CRLF, BOM, blank lines",
			body: "\uFEFFcustomer_id , note,n\r\n" +
				" c1 ,\"a, \"\"b\"\"\nline 2\", 7 \r\n" +
				"\r\n" +
				"c2,,\r\n" +
				"c3,\" padded \",\n",
			rep: Report{Received: 3, Imported: 3},
			attrs: map[string]string{
				"c1": `{"customer_id":"c1","n":7,"note":"a, \"b\"\nline 2"}`,
				"c2": `{"customer_id":"c2"}`,
				"c3": `{"customer_id":"c3","note":" padded "}`,
			},
		},
		{
			name: "bad rows are reported and the rest imported",
			body: "customer_id,name\n" +
				"c1,Ann\n" +
				"c2\n" +
				",Nobody\n" +
				"c1,Again\n" +
				"c3,\"x\"y\n" +
				"c4,Dan,extra\n" +
				"c5,Eve\n",
			rep: Report{Received: 7, Imported: 2, Rejected: 5},
			errs: []wantErr{
				{3, "wrong number of fields: 1, the header has 2"},
				{4, "missing key"},
				{5, `duplicate key "c1": an earlier row`},
				{6, "unexpected text after the closing quote of field 2"},
				{7, "wrong number of fields: 3"},
			},
			attrs: map[string]string{"c1": `{"customer_id":"c1","name":"Ann"}`, "c5": `{"customer_id":"c5","name":"Eve"}`},
		},
		{
			name: "an unterminated quote does not swallow the rest",
			body: "customer_id,name\n" +
				"c1,\"Ann\n" +
				"c2,Bob\n" +
				"c3,Carl\n",
			rep:    Report{Received: 3, Imported: 2, Rejected: 1},
			errs:   []wantErr{{2, "unterminated quoted field 2: no closing quote before the end of the input"}},
			attrs:  map[string]string{"c2": `{"customer_id":"c2","name":"Bob"}`, "c3": `{"customer_id":"c3","name":"Carl"}`},
			absent: []string{"c1"},
		},
		{
			name: "a stray quote closed lines later is reported, the lines between read again",
			body: "customer_id,name\n" +
				"c1,\"Ann\n" +
				"c2,Bob\n" +
				"c3,\"Carl\"\n",
			rep:    Report{Received: 3, Imported: 2, Rejected: 1},
			errs:   []wantErr{{2, "closes on line 4"}},
			attrs:  map[string]string{"c2": `{"customer_id":"c2","name":"Bob"}`, "c3": `{"customer_id":"c3","name":"Carl"}`},
			absent: []string{"c1"},
		},
		{
			name:  "another key column",
			key:   "email",
			body:  "email,age\nann@example.com,40\n",
			rep:   Report{Received: 1, Imported: 1},
			attrs: map[string]string{"ann@example.com": `{"age":40,"email":"ann@example.com"}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := dbtest.SQLite(t)
			rep := run(t, db, Options{Format: CSV, Key: tt.key}, tt.body)
			checkErrors(t, rep.Errors, tt.errs)
			rep.Errors = nil
			if fmt.Sprintf("%+v", rep) != fmt.Sprintf("%+v", tt.rep) {
				t.Errorf("report = %+v, want %+v", rep, tt.rep)
			}
			for id, want := range tt.attrs {
				if got := attrs(t, db, id); got != want {
					t.Errorf("attrs of %s = %s\n want %s", id, got, want)
				}
			}
			for _, id := range tt.absent {
				if _, err := db.GetProfile(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("profile %s: %v, want ErrNotFound", id, err)
				}
			}
		})
	}
}

func TestImportCSVHeaderFaults(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"empty", "", "empty"},
		{"no key column", "id,name\n1,a\n", `no column named "customer_id"`},
		{"invalid name", "customer_id,first name\n", `invalid attribute name "first name"`},
		{"duplicate column", "customer_id,a,a\n", `column "a" appears twice`},
		{"reserved name", "customer_id,mailchimp.abc.status\n", `the name "mailchimp.abc.status" is reserved`},
		{"unnamed column", "customer_id,,a\n", "column 2 has no name"},
	}
	db := dbtest.SQLite(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewImporter(db, nil).Import(context.Background(), strings.NewReader(tt.body), Options{Format: CSV})
			if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrInvalid with %q", err, tt.want)
			}
		})
	}
}

func TestImportNDJSON(t *testing.T) {
	db := dbtest.SQLite(t)
	body := `{"customer_id":"c1","age":31,"price":1.5e1,"vip":false,"born":"1990-02-03","name":"Ann \u00e9"}` + "\n" +
		`{"customer_id":42,"tags":["a"]}` + "\n" +
		`{"customer_id":"c3","address":{"city":"Oslo"}}` + "\n" +
		`{"customer_id":"c4",` + "\n" +
		"\n" +
		`["not","an","object"]` + "\n" +
		`{"name":"no key"}` + "\n" +
		`{"customer_id":"c5","first name":"x"}` + "\n" +
		`{"customer_id":true}` + "\n" +
		`{"customer_id":"c6","a":1,"a":2}` + "\n" +
		`{"customer_id":7,"n":null,"s":"x"}` + "\n" +
		`{"customer_id":"c1","age":32}` + "\n" +
		`{"customer_id":"c8","mailchimp.abc.status":"subscribed"}` + "\n"
	rep := run(t, db, Options{Format: NDJSON}, body)
	checkErrors(t, rep.Errors, []wantErr{
		{2, `attribute "tags": nested objects and arrays are not supported`},
		{3, `attribute "address": nested`},
		{4, "bad JSON"},
		{6, "not a JSON object"},
		{7, `missing key (field "customer_id")`},
		{8, `invalid attribute name "first name"`},
		{9, "the key must be a string or a number"},
		{10, `attribute "a" appears twice`},
		{12, `duplicate key "c1": an earlier row`},
		{13, `attribute "mailchimp.abc.status": the name is reserved`},
	})
	if rep.Received != 12 || rep.Imported != 2 || rep.Rejected != 10 {
		t.Errorf("report = %+v", rep)
	}
	if got, want := attrs(t, db, "c1"), `{"age":31,"born":"1990-02-03","customer_id":"c1","name":"Ann é","price":15,"vip":false}`; got != want {
		t.Errorf("c1 = %s, want %s", got, want)
	}
	if got, want := attrs(t, db, "7"), `{"customer_id":7,"s":"x"}`; got != want {
		t.Errorf("7 = %s, want %s", got, want)
	}
}

// TestImportUpsertReplace runs on both dialects: merge, unchanged
// re-import that writes nothing, and replace.
func TestImportUpsertReplace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		first := "customer_id,name,age\nc1,Ann,30\nc2,Bob,40\nc3,Cy,50\n"
		rep := run(t, db, Options{Format: CSV}, first)
		if rep.Imported != 3 {
			t.Fatalf("first import: %+v", rep)
		}
		stamp := func() string {
			var s string
			page, err := db.ListProfiles(ctx, 100, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page.Profiles {
				s += fmt.Sprintf("%s@%d;", p.CustomerID, p.UpdatedAt.UnixMicro())
			}
			return s
		}
		before := stamp()
		rep = run(t, db, Options{Format: CSV}, first)
		if rep.Unchanged != 3 || rep.Imported+rep.Updated != 0 {
			t.Errorf("unchanged re-import: %+v", rep)
		}
		if after := stamp(); after != before {
			t.Errorf("unchanged re-import wrote: %s -> %s", before, after)
		}

		// Upsert merges: only name given for c1; age stays.
		rep = run(t, db, Options{Format: CSV, Mode: Upsert}, "customer_id,name\nc1,Anna\nc4,Dee\n")
		if rep.Imported != 1 || rep.Updated != 1 {
			t.Errorf("merge: %+v", rep)
		}
		if got, want := attrs(t, db, "c1"), `{"age":30,"customer_id":"c1","name":"Anna"}`; got != want {
			t.Errorf("c1 = %s, want %s", got, want)
		}

		// Replace: c2 and c4 are absent; c3's row is rejected but keeps c3.
		rep = run(t, db, Options{Format: CSV, Mode: Replace}, "customer_id,name\nc1,Anna\nc3,\"Cy\"x\n")
		if rep.Unchanged != 1 || rep.Rejected != 1 || rep.Deleted != 2 {
			t.Errorf("replace: %+v", rep)
		}
		for id, want := range map[string]bool{"c1": true, "c2": false, "c3": true, "c4": false} {
			_, err := db.GetProfile(ctx, id)
			if (err == nil) != want {
				t.Errorf("after replace, %s present = %v, want %v", id, err == nil, want)
			}
		}
		// Replace with no valid row deletes nothing.
		rep = run(t, db, Options{Format: CSV, Mode: Replace}, "customer_id,name\n,x\n")
		if rep.Deleted != 0 || len(rep.Errors) != 2 {
			t.Errorf("empty replace: %+v", rep)
		}
		if n, _ := db.CountProfiles(ctx); n != 2 {
			t.Errorf("%d profiles after an empty replace, want 2", n)
		}
		cat, err := db.ProfileAttributes(ctx)
		if err != nil || len(cat) != 3 || cat[0].Name != "age" || cat[0].Count != 2 || cat[2].Count != 2 {
			t.Errorf("catalogue = %+v, %v", cat, err)
		}
	})
}

func TestImportErrorCapAndProgress(t *testing.T) {
	db := dbtest.SQLite(t)
	var b strings.Builder
	b.WriteString("customer_id,n\n")
	for i := range 20000 {
		if i%2 == 0 {
			fmt.Fprintf(&b, "c%d,%d\n", i, i)
		} else {
			fmt.Fprintf(&b, "c%d\n", i)
		}
	}
	var calls int
	var last Progress
	rep := run(t, db, Options{Format: CSV, MaxErrors: 100, BatchSize: 1000, Progress: func(p Progress) { calls++; last = p }}, b.String())
	if rep.Rejected != 10000 || rep.Imported != 10000 || len(rep.Errors) != 100 || !rep.ErrorsTruncated {
		t.Errorf("report: received %d imported %d rejected %d errors %d truncated %v", rep.Received, rep.Imported, rep.Rejected, len(rep.Errors), rep.ErrorsTruncated)
	}
	if calls < 2 || last.Rows != 20000 || last.Bytes != int64(b.Len()) {
		t.Errorf("progress: %d calls, last %+v (input %d bytes)", calls, last, b.Len())
	}
}

func TestImportOptions(t *testing.T) {
	db := dbtest.SQLite(t)
	for _, opts := range []Options{{Format: "xml"}, {Format: CSV, Mode: "merge"}, {Format: CSV, Key: "bad key"}} {
		if _, err := NewImporter(db, nil).Import(context.Background(), strings.NewReader("customer_id\n1\n"), opts); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%+v: err = %v, want ErrInvalid", opts, err)
		}
	}
	for ct, want := range map[string]Format{"text/csv; charset=utf-8": CSV, "application/x-ndjson": NDJSON, "text/plain": ""} {
		got, err := FormatFromContentType(ct)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("FormatFromContentType(%q) = %q, %v", ct, got, err)
		}
	}
}

func TestKeySet(t *testing.T) {
	k := newKeySet()
	const n = 50000 // several growths
	for i := range n {
		key := []byte(fmt.Sprintf("k%d", i))
		if i%3 == 0 {
			k.protect(key)
		}
		if k.add(key) {
			t.Fatalf("%s reported as a duplicate on first add", key)
		}
	}
	k.protect([]byte("rejected-only"))
	for i := range n {
		if !k.add([]byte(fmt.Sprintf("k%d", i))) {
			t.Fatalf("k%d not reported as a duplicate", i)
		}
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{{"k0", true}, {"k49999", true}, {"rejected-only", true}, {"k50000", false}, {"", false}} {
		if got := k.has(tc.id); got != tc.want {
			t.Errorf("has(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
	if k.add([]byte("rejected-only")) {
		t.Errorf("a key only rejected before counts as a duplicate")
	}
}

// failingReader returns its data and then an error, like a broken upload.
type failingReader struct{ r *strings.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	if f.r.Len() == 0 {
		return 0, errors.New("connection reset")
	}
	return f.r.Read(p[:min(len(p), 7)])
}

func TestImportBrokenInputDeletesNothing(t *testing.T) {
	db := dbtest.SQLite(t)
	run(t, db, Options{Format: CSV}, "customer_id\na\nb\nc\n")
	rep, err := NewImporter(db, nil).Import(context.Background(), failingReader{strings.NewReader("customer_id\na\n")}, Options{Format: CSV, Mode: Replace})
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("err = %v, want the read error", err)
	}
	if rep.Received != 1 || rep.Deleted != 0 {
		t.Errorf("report = %+v", rep)
	}
	if n, _ := db.CountProfiles(context.Background()); n != 3 {
		t.Errorf("%d profiles after a broken replace, want 3", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewImporter(db, nil).Import(ctx, strings.NewReader("customer_id\na\n"), Options{Format: CSV, Mode: Replace}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled import: err = %v", err)
	}
	if n, _ := db.CountProfiles(context.Background()); n != 3 {
		t.Errorf("%d profiles after a cancelled replace, want 3", n)
	}
}

func TestImportLongLines(t *testing.T) {
	db := dbtest.SQLite(t)
	long := strings.Repeat("x", MaxLineBytes+10)
	rep := run(t, db, Options{Format: CSV}, "customer_id,note\nc1,"+long+"\nc2,ok\nc3,\"open\n"+long+"\nc4,ok\n")
	checkErrors(t, rep.Errors, []wantErr{{2, "line longer than"}, {4, "unterminated quoted field 2"}, {5, "line longer than"}})
	if rep.Imported != 2 {
		t.Errorf("report = %+v", rep)
	}
	rep = run(t, db, Options{Format: NDJSON}, `{"customer_id":"n1","note":"`+long+`"}`+"\n"+`{"customer_id":"n2"}`+"\n")
	checkErrors(t, rep.Errors, []wantErr{{1, "line longer than"}})
	if rep.Imported != 1 {
		t.Errorf("report = %+v", rep)
	}
}

func TestImportStrayQuoteInLongFile(t *testing.T) {
	db := dbtest.SQLite(t)
	var b strings.Builder
	b.WriteString("customer_id,note\nc0,\"stray\n")
	for i := 1; i <= 3*MaxRecordLines; i++ {
		fmt.Fprintf(&b, "c%d,n%d\n", i, i)
	}
	rep := run(t, db, Options{Format: CSV}, b.String())
	checkErrors(t, rep.Errors, []wantErr{{2, "no closing quote within 200 lines"}})
	if rep.Imported != 3*MaxRecordLines || rep.Received != 3*MaxRecordLines+1 {
		t.Errorf("report = %+v", rep)
	}
}
