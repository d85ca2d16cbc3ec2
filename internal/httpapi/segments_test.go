package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// segmentTestProfiles: five customers with ages 20, 30, …, 60; the even
// ones are VIPs; c5 has no e-mail.
func segmentTestProfiles() map[string]string {
	ps := map[string]string{}
	for i := 1; i <= 5; i++ {
		email := fmt.Sprintf(`,"email":"C%d@Example.org"`, i)
		if i == 5 {
			email = ""
		}
		ps[fmt.Sprintf("c%d", i)] = fmt.Sprintf(`{"age":%d%s,"vip":%t}`, i*10+10, email, i%2 == 0)
	}
	return ps
}

type segmentJSON struct {
	ID          int64           `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Rule        json.RawMessage `json:"rule"`
	MemberCount int64           `json:"member_count"`
}

// TestSegmentRoutes runs on SQLite and PostgreSQL: the counts must agree.
func TestSegmentRoutes(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		testSegmentRoutes(t, seedProfilesIn(t, db, segmentTestProfiles()))
	})
}

func testSegmentRoutes(t *testing.T, ts *httptest.Server) {
	create := func(name, rule string) (int, segmentJSON, []byte) {
		t.Helper()
		status, _, body := do(t, ts, "POST", "/api/v1/segments", "application/json",
			strings.NewReader(fmt.Sprintf(`{"name":%q,"description":"test","rule":%s}`, name, rule)))
		var s segmentJSON
		_ = json.Unmarshal(body, &s)
		return status, s, body
	}

	counts := []struct {
		rule string
		want int64
	}{
		{`{"attribute":"age","op":"gte","value":40}`, 3},
		{`{"all":[{"attribute":"age","op":"gte","value":30},{"attribute":"vip","op":"eq","value":true}]}`, 2},
		{`{"not":{"attribute":"email","op":"is_empty"}}`, 4},
		{`{"attribute":"email","op":"ends_with","value":"EXAMPLE.ORG"}`, 4},
		{`{"any":[]}`, 0},
	}
	var ids []int64
	for i, c := range counts {
		status, s, body := create(fmt.Sprintf("segment %d", i), c.rule)
		if status != http.StatusCreated || s.ID == 0 || s.MemberCount != c.want {
			t.Fatalf("create %s = %d %s, want 201 with member_count %d", c.rule, status, body, c.want)
		}
		ids = append(ids, s.ID)
		status, _, body = do(t, ts, "GET", fmt.Sprintf("/api/v1/segments/%d", s.ID), "", nil)
		var got segmentJSON
		if err := json.Unmarshal(body, &got); err != nil || status != 200 || got.MemberCount != c.want || got.Name != s.Name {
			t.Fatalf("get %d = %d %s", s.ID, status, body)
		}
	}

	status, _, body := do(t, ts, "GET", "/api/v1/segments", "", nil)
	var list struct {
		Segments []segmentJSON `json:"segments"`
	}
	if err := json.Unmarshal(body, &list); err != nil || status != 200 || len(list.Segments) != len(counts) {
		t.Fatalf("list = %d %s", status, body)
	}
	for _, s := range list.Segments {
		var i int
		fmt.Sscanf(s.Name, "segment %d", &i)
		if s.MemberCount != counts[i].want {
			t.Errorf("listed %q with %d members, want %d", s.Name, s.MemberCount, counts[i].want)
		}
	}

	// A taken name is a conflict, ignoring case.
	status, ct, body := do(t, ts, "POST", "/api/v1/segments", "application/json", strings.NewReader(`{"name":"SEGMENT 0","rule":{"all":[]}}`))
	decodeProblem(t, http.StatusConflict, ct, body)

	// Members of "age >= 40", two at a time.
	var members []string
	cursor := ""
	for range 5 {
		status, _, body := do(t, ts, "GET", fmt.Sprintf("/api/v1/segments/%d/members?limit=2&cursor=%s", ids[0], cursor), "", nil)
		var page struct {
			Members []struct {
				CustomerID string `json:"customer_id"`
			} `json:"members"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil || status != 200 {
			t.Fatalf("members = %d %s", status, body)
		}
		for _, m := range page.Members {
			members = append(members, m.CustomerID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(members, ",") != "c3,c4,c5" {
		t.Fatalf("members %v, want c3 c4 c5", members)
	}

	// PUT replaces the rule; the count follows.
	status, _, body = do(t, ts, "PUT", fmt.Sprintf("/api/v1/segments/%d", ids[0]), "application/json",
		strings.NewReader(`{"name":"adults","rule":{"attribute":"age","op":"between","value":[25,45]}}`))
	var upd segmentJSON
	if err := json.Unmarshal(body, &upd); err != nil || status != 200 || upd.MemberCount != 2 || upd.Name != "adults" {
		t.Fatalf("put = %d %s", status, body)
	}

	// Preview an unsaved rule.
	status, _, body = do(t, ts, "POST", "/api/v1/segments/preview", "application/json",
		strings.NewReader(`{"rule":{"attribute":"vip","op":"eq","value":false},"sample":2}`))
	var prev struct {
		Count  int64 `json:"count"`
		Sample []struct {
			CustomerID string `json:"customer_id"`
		} `json:"sample"`
	}
	if err := json.Unmarshal(body, &prev); err != nil || status != 200 || prev.Count != 3 || len(prev.Sample) != 2 || prev.Sample[0].CustomerID != "c1" {
		t.Fatalf("preview = %d %s", status, body)
	}

	// Delete, then it is gone.
	if status, _, body := do(t, ts, "DELETE", fmt.Sprintf("/api/v1/segments/%d", ids[1]), "", nil); status != http.StatusNoContent {
		t.Fatalf("delete = %d %s", status, body)
	}
	for _, m := range []string{"GET", "DELETE"} {
		_, ct, body := do(t, ts, m, fmt.Sprintf("/api/v1/segments/%d", ids[1]), "", nil)
		decodeProblem(t, http.StatusNotFound, ct, body)
	}
	_, ct, body = do(t, ts, "GET", "/api/v1/segments/abc", "", nil)
	decodeProblem(t, http.StatusNotFound, ct, body)
}

// TestSegmentValidation checks that every fault comes back as a 400 naming
// its path.
func TestSegmentValidation(t *testing.T) {
	t.Parallel()
	ts := seedProfiles(t, segmentTestProfiles())
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantFields               []string
	}{
		{"unknown operator", "POST", "/api/v1/segments",
			`{"name":"x","rule":{"all":[{"attribute":"age","op":"gt","value":1},{"attribute":"vip","op":"eq","value":true},{"attribute":"age","op":"like","value":1}]}}`,
			400, []string{"rule.all[2].op"}},
		{"unknown attribute", "POST", "/api/v1/segments",
			`{"name":"x","rule":{"attribute":"shoe_size","op":"eq","value":42}}`, 400, []string{"rule.attribute"}},
		{"missing name and rule", "POST", "/api/v1/segments", `{}`, 400, []string{"name", "rule"}},
		{"wrong type of name", "POST", "/api/v1/segments", `{"name":3,"rule":{"all":[]}}`, 400, []string{"name"}},
		{"unknown field", "POST", "/api/v1/segments", `{"name":"x","rules":{"all":[]}}`, 400, []string{"rules"}},
		{"bad value shape in preview", "POST", "/api/v1/segments/preview",
			`{"rule":{"attribute":"age","op":"between","value":[1]}}`, 400, []string{"rule.value"}},
		{"preview sample too large", "POST", "/api/v1/segments/preview", `{"rule":{"all":[]},"sample":1000}`, 400, []string{"sample"}},
		{"wrong content type", "POST", "/api/v1/segments", ``, 415, nil},
		{"put on a missing segment", "PUT", "/api/v1/segments/999", `{"name":"x","rule":{"all":[]}}`, 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := "application/json"
			if tt.wantStatus == 415 {
				ct = "text/plain"
			}
			status, gotCT, body := do(t, ts, tt.method, tt.path, ct, strings.NewReader(tt.body))
			p := decodeProblem(t, tt.wantStatus, gotCT, body)
			if status != tt.wantStatus {
				t.Fatalf("status %d", status)
			}
			var fields []string
			for _, e := range p.Errors {
				fields = append(fields, e.Field)
			}
			for _, want := range tt.wantFields {
				found := false
				for _, f := range fields {
					found = found || f == want
				}
				if !found {
					t.Errorf("errors name %v, want %s (body %s)", fields, want, body)
				}
			}
		})
	}
}
