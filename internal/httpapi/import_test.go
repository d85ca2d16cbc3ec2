package httpapi

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

type importReport struct {
	Received  int64 `json:"received"`
	Imported  int64 `json:"imported"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
	Rejected  int64 `json:"rejected"`
	Deleted   int64 `json:"deleted"`
	Errors    []struct {
		Line   int64  `json:"line"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

// TestImportCSVWithBadRows runs on SQLite and PostgreSQL.
func TestImportCSVWithBadRows(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ts := httptest.NewServer(New(Deps{Store: db, Loopback: true}).Handler())
		defer ts.Close()
		testImportCSVWithBadRows(t, ts)
	})
}

func testImportCSVWithBadRows(t *testing.T, ts *httptest.Server) {
	csv := strings.Join([]string{
		"customer_id,email,age,vip,signup",
		"c1,ann@example.org,31,true,2024-03-01",  // line 2
		"c2,bob@example.org,x,false,",            // line 3: age is text, signup absent
		",nobody@example.org,1,true,",            // line 4: missing key
		"c3,cy@example.org,40",                   // line 5: wrong column count
		"c1,again@example.org,2,true,",           // line 6: duplicate key in the file
		"c4,\"dee@example.org,5,true,",           // line 7: unterminated quote
		"c5,eve@example.org,50,false,2023-12-31", // line 8
	}, "\n") + "\n"
	status, _, body := do(t, ts, "POST", "/api/v1/profiles/import?key=customer_id&mode=upsert", "text/csv", strings.NewReader(csv))
	var rep importReport
	if err := json.Unmarshal(body, &rep); err != nil || status != 200 {
		t.Fatalf("import = %d %s", status, body)
	}
	if rep.Imported+rep.Rejected != rep.Received || rep.Imported < 3 || rep.Rejected < 3 {
		t.Fatalf("report %s: want c1, c2, c5 imported and the bad rows rejected", body)
	}
	lines := map[int64]bool{}
	for _, e := range rep.Errors {
		if e.Reason == "" {
			t.Errorf("line %d rejected without a reason", e.Line)
		}
		lines[e.Line] = true
	}
	for _, l := range []int64{4, 5, 6} {
		if !lines[l] {
			t.Errorf("line %d is not reported: %s", l, body)
		}
	}
	if int64(len(rep.Errors)) != rep.Rejected {
		t.Errorf("%d errors listed for %d rejected rows", len(rep.Errors), rep.Rejected)
	}

	// The good rows are there, typed per value.
	status, _, body = do(t, ts, "GET", "/api/v1/profiles/c1", "", nil)
	var p struct {
		Attributes map[string]any `json:"attributes"`
	}
	if err := json.Unmarshal(body, &p); err != nil || status != 200 {
		t.Fatalf("get c1 = %d %s", status, body)
	}
	if p.Attributes["age"] != float64(31) || p.Attributes["vip"] != true || p.Attributes["signup"] != "2024-03-01" {
		t.Errorf("c1 attributes %v", p.Attributes)
	}
	if status, _, body := do(t, ts, "GET", "/api/v1/profiles/c5", "", nil); status != 200 {
		t.Errorf("c5 = %d %s", status, body)
	}

	// The same file again changes nothing.
	status, _, body = do(t, ts, "POST", "/api/v1/profiles/import", "text/csv; charset=utf-8", strings.NewReader(csv))
	var again importReport
	if err := json.Unmarshal(body, &again); err != nil || status != 200 {
		t.Fatalf("re-import = %d %s", status, body)
	}
	if again.Imported != 0 || again.Updated != 0 || again.Unchanged != rep.Imported {
		t.Errorf("re-import %s, want everything unchanged", body)
	}
}

func TestImportNDJSONReplace(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t)
	first := `{"id":"a","email":"a@example.org"}` + "\n" + `{"id":"b","email":"b@example.org"}` + "\n"
	status, _, body := do(t, ts, "POST", "/api/v1/profiles/import?key=id", "application/x-ndjson", strings.NewReader(first))
	if status != 200 {
		t.Fatalf("import = %d %s", status, body)
	}
	second := `{"id":"b","email":"b2@example.org"}` + "\n" + `not json` + "\n"
	status, _, body = do(t, ts, "POST", "/api/v1/profiles/import?key=id&mode=replace", "application/x-ndjson", strings.NewReader(second))
	var rep importReport
	if err := json.Unmarshal(body, &rep); err != nil || status != 200 {
		t.Fatalf("replace = %d %s", status, body)
	}
	if rep.Updated != 1 || rep.Rejected != 1 || rep.Deleted != 1 || len(rep.Errors) != 1 || rep.Errors[0].Line != 2 {
		t.Fatalf("replace report %s: want b updated, line 2 rejected, a deleted", body)
	}
	if status, _, _ := do(t, ts, "GET", "/api/v1/profiles/a", "", nil); status != http.StatusNotFound {
		t.Errorf("a survived replace: %d", status)
	}
}

func TestImportRefusals(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t)
	tests := []struct {
		name, query, contentType, body string
		wantStatus                     int
		wantField                      string
	}{
		{"json is not an import format", "", "application/json", `{}`, 415, ""},
		{"no content type", "", "", "customer_id\nc1\n", 415, ""},
		{"bad mode", "?mode=merge", "text/csv", "customer_id\nc1\n", 400, "mode"},
		{"bad key", "?key=no%20spaces", "text/csv", "customer_id\nc1\n", 400, "key"},
		{"key column missing from the header", "?key=email", "text/csv", "customer_id\nc1\n", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ct, body := do(t, ts, "POST", "/api/v1/profiles/import"+tt.query, tt.contentType, strings.NewReader(tt.body))
			p := decodeProblem(t, tt.wantStatus, ct, body)
			if tt.wantField != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tt.wantField) {
				t.Errorf("errors %+v, want a fault of %s", p.Errors, tt.wantField)
			}
		})
	}
}

// brokenBody yields some CSV and then fails, as a request cut off midway.
type brokenBody struct{ data io.Reader }

func (b *brokenBody) Read(p []byte) (int, error) {
	n, err := b.data.Read(p)
	if err == io.EOF {
		return n, errors.New("unexpected EOF in chunked body")
	}
	return n, err
}

func TestImportOfABrokenBodyIsTheClientsFault(t *testing.T) {
	t.Parallel()
	s := New(Deps{Store: dbtest.SQLite(t), Loopback: true})
	req := httptest.NewRequest("POST", "/api/v1/profiles/import", &brokenBody{strings.NewReader("customer_id,email\nc1,a@example.org\n")})
	req.Header.Set("Content-Type", "text/csv")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	p := decodeProblem(t, http.StatusBadRequest, rec.Header().Get("Content-Type"), rec.Body.Bytes())
	if !strings.Contains(p.Detail, "reading the request body") {
		t.Fatalf("detail %q", p.Detail)
	}
}

func TestImportGzip(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("customer_id,email\nz1,z@example.org\nz2,y@example.org\n"))
	zw.Close()
	tests := []struct {
		name, encoding string
		body           []byte
		wantStatus     int
	}{
		{"gzip", "gzip", buf.Bytes(), 200},
		{"not gzip", "gzip", []byte("customer_id\nc1\n"), 400},
		{"corrupt gzip", "gzip", append(append([]byte{}, buf.Bytes()[:len(buf.Bytes())-6]...), 0, 0, 0, 0, 0, 0), 400},
		{"unknown encoding", "br", []byte("x"), 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", ts.URL+"/api/v1/profiles/import", bytes.NewReader(tt.body))
			req.Header.Set("Content-Type", "text/csv")
			req.Header.Set("Content-Encoding", tt.encoding)
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantStatus == 200 && !bytes.Contains(body, []byte(`"imported":2`)) {
				t.Fatalf("report %s", body)
			}
		})
	}
}
