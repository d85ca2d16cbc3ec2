package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// client is a tiny test client over the emulator's handler.
type client struct {
	t   testing.TB
	s   *Server
	key string
}

func newClient(t testing.TB, opts Options) *client {
	s := StartTest(t, opts)
	return &client{t: t, s: s, key: s.Key()}
}

// do sends a request and decodes the JSON answer (nil for 204).
func (c *client) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	url := c.s.URL + path
	if strings.HasPrefix(path, "/_emulator") || strings.HasPrefix(path, "/oauth2") {
		url = c.s.RootURL + path
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.key != "" {
		req.SetBasicAuth("anystring", c.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) == 0 {
		return resp.StatusCode, nil
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("%s %s: decoding %q: %v", method, path, raw, err)
	}
	return resp.StatusCode, out
}

func (c *client) mustList() string {
	c.t.Helper()
	code, out := c.do("POST", "/lists", map[string]any{
		"name":                "Test audience",
		"contact":             map[string]any{"company": "Acme", "address1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701", "country": "US"},
		"permission_reminder": "You signed up.",
		"campaign_defaults":   map[string]any{"from_name": "Acme", "from_email": "news@acme.io", "subject": "Hi", "language": "en"},
		"email_type_option":   false,
	})
	if code != 200 {
		c.t.Fatalf("create list: %d %v", code, out)
	}
	return out["id"].(string)
}

func TestAuth(t *testing.T) {
	c := newClient(t, Options{})
	tests := []struct {
		name  string
		key   string
		code  int
		title string
	}{
		{"valid key", c.key, 200, ""},
		{"wrong key", "0123456789abcdef0123456789abcdef-us1", 401, "API Key Invalid"},
		{"no key", "", 401, "API Key Missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := &client{t: t, s: c.s, key: tt.key}
			code, out := cc.do("GET", "/ping", nil)
			if code != tt.code {
				t.Fatalf("code = %d, want %d (%v)", code, tt.code, out)
			}
			if tt.title != "" && out["title"] != tt.title {
				t.Fatalf("title = %v, want %q", out["title"], tt.title)
			}
			if tt.code == 200 && out["health_status"] != "Everything's Chimpy!" {
				t.Fatalf("ping = %v", out)
			}
		})
	}
	// Bearer works too.
	req, _ := http.NewRequest("GET", c.s.URL+"/", nil)
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("bearer: %d", resp.StatusCode)
	}
}

func TestUnknownRoutes(t *testing.T) {
	c := newClient(t, Options{})
	id := c.mustList()
	tests := []struct {
		method, path string
		code         int
		title        string
	}{
		{"GET", "/nothing-here", 404, "Resource Not Found"},
		{"PUT", "/lists/" + id, 405, "Method Not Allowed"},
		{"GET", "/lists/nosuchlist", 404, "Resource Not Found"},
		{"GET", "/lists/" + id + "/members/not-a-hash", 404, "Resource Not Found"},
	}
	for _, tt := range tests {
		code, out := c.do(tt.method, tt.path, nil)
		if code != tt.code || out["title"] != tt.title {
			t.Errorf("%s %s: %d %v, want %d %s", tt.method, tt.path, code, out["title"], tt.code, tt.title)
		}
	}
}

func TestMemberRules(t *testing.T) {
	c := newClient(t, Options{})
	id := c.mustList()
	if err := c.s.Seed(id,
		SeedContact{Email: "self@acme.io", Status: "unsubscribed-self"},
		SeedContact{Email: "api@acme.io", Status: "unsubscribed"},
		SeedContact{Email: "bounced@acme.io", Status: "cleaned"},
		SeedContact{Email: "gone@acme.io", Status: "deleted"},
		SeedContact{Email: "arch@acme.io", Status: "archived"},
		SeedContact{Email: "pend@acme.io", Status: "pending"},
	); err != nil {
		t.Fatal(err)
	}
	if err := c.s.AddMergeField(id, "LTV", "Lifetime value", "number"); err != nil {
		t.Fatal(err)
	}
	put := func(email string, body map[string]any) (int, map[string]any) {
		body["email_address"] = email
		return c.do("PUT", "/lists/"+id+"/members/"+hashHex(subscriberHash(email)), body)
	}
	tests := []struct {
		name       string
		email      string
		body       map[string]any
		code       int
		title      string
		wantStatus string
	}{
		{"new contact", "new@acme.io", map[string]any{"status_if_new": "subscribed"}, 200, "", "subscribed"},
		{"new contact takes status over status_if_new", "new2@acme.io", map[string]any{"status_if_new": "pending", "status": "transactional"}, 200, "", "transactional"},
		{"status_if_new leaves existing", "api@acme.io", map[string]any{"status_if_new": "subscribed"}, 200, "", "unsubscribed"},
		{"api-unsubscribed can be resubscribed", "api@acme.io", map[string]any{"status_if_new": "subscribed", "status": "subscribed"}, 200, "", "subscribed"},
		{"self-unsubscribed refused", "self@acme.io", map[string]any{"status_if_new": "subscribed", "status": "subscribed"}, 400, "Member In Compliance State", "unsubscribed"},
		{"cleaned refused", "bounced@acme.io", map[string]any{"status_if_new": "subscribed", "status": "subscribed"}, 400, "Member In Compliance State", "cleaned"},
		{"self-unsubscribed may re-confirm", "self@acme.io", map[string]any{"status_if_new": "pending", "status": "pending"}, 200, "", "pending"},
		{"forgotten refused", "gone@acme.io", map[string]any{"status_if_new": "subscribed"}, 400, "Forgotten Email Not Subscribed", ""},
		{"fake address", "someone@example.com", map[string]any{"status_if_new": "subscribed"}, 400, "Invalid Resource", ""},
		{"malformed address", "not-an-address@", map[string]any{"status_if_new": "subscribed"}, 400, "Invalid Resource", ""},
		{"unknown merge tag", "m1@acme.io", map[string]any{"status_if_new": "subscribed", "merge_fields": map[string]any{"NOPE": "x"}}, 400, "Invalid Resource", ""},
		{"wrong merge type", "m2@acme.io", map[string]any{"status_if_new": "subscribed", "merge_fields": map[string]any{"LTV": "lots"}}, 400, "Invalid Resource", ""},
		{"merge number", "m3@acme.io", map[string]any{"status_if_new": "subscribed", "merge_fields": map[string]any{"LTV": 12.5, "FNAME": "Ann"}}, 200, "", "subscribed"},
		{"missing status_if_new", "m4@acme.io", map[string]any{"status": "subscribed"}, 400, "Invalid Resource", ""},
		{"archived is restored", "arch@acme.io", map[string]any{"status_if_new": "transactional"}, 200, "", "transactional"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := put(tt.email, tt.body)
			if code != tt.code {
				t.Fatalf("code = %d, want %d: %v", code, tt.code, out)
			}
			if tt.title != "" && out["title"] != tt.title {
				t.Fatalf("title = %v, want %q (%v)", out["title"], tt.title, out)
			}
			if tt.wantStatus != "" {
				got, err := c.s.Contact(id, tt.email)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status != tt.wantStatus {
					t.Fatalf("status = %s, want %s", got.Status, tt.wantStatus)
				}
			}
		})
	}
	if got, _ := c.s.Contact(id, "m3@acme.io"); got.MergeFields["LTV"] != "12.5" || got.MergeFields["FNAME"] != "Ann" {
		t.Fatalf("merge fields = %v", got.MergeFields)
	}
	// The merge errors name the field.
	_, out := put("m2@acme.io", map[string]any{"status_if_new": "subscribed", "merge_fields": map[string]any{"LTV": "lots"}})
	errs, _ := out["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["field"] != "LTV" {
		t.Fatalf("errors = %v", out["errors"])
	}
}

func TestBatchSubscribe(t *testing.T) {
	c := newClient(t, Options{})
	id := c.mustList()
	if err := c.s.Seed(id,
		SeedContact{Email: "self@acme.io", Status: "unsubscribed-self"},
		SeedContact{Email: "pend@acme.io", Status: "pending"},
		SeedContact{Email: "exists@acme.io", Status: "subscribed", MergeFields: map[string]string{"FNAME": "Old"}},
	); err != nil {
		t.Fatal(err)
	}
	members := []map[string]any{
		{"email_address": "a@acme.io", "status": "subscribed", "merge_fields": map[string]any{"FNAME": "A"}},
		{"email_address": "exists@acme.io", "status": "unsubscribed", "merge_fields": map[string]any{"FNAME": "New"}},
		{"email_address": "self@acme.io", "status": "subscribed"},
		{"email_address": "pend@acme.io", "status": "subscribed"},
		{"email_address": "x@example.com", "status": "subscribed"},
	}
	code, out := c.do("POST", "/lists/"+id, map[string]any{"members": members, "update_existing": false})
	if code != 200 {
		t.Fatalf("batch: %d %v", code, out)
	}
	if out["total_created"].(float64) != 1 || out["error_count"].(float64) != 4 {
		t.Fatalf("update_existing=false: %v", out)
	}
	codes := map[string]string{}
	for _, e := range out["errors"].([]any) {
		m := e.(map[string]any)
		codes[m["email_address"].(string)] = m["error_code"].(string)
	}
	if codes["exists@acme.io"] != "ERROR_CONTACT_EXISTS" || codes["x@example.com"] != "ERROR_GENERIC" {
		t.Fatalf("error codes = %v", codes)
	}
	if got, _ := c.s.Contact(id, "exists@acme.io"); got.MergeFields["FNAME"] != "Old" {
		t.Fatalf("existing contact changed: %+v", got)
	}

	code, out = c.do("POST", "/lists/"+id, map[string]any{"members": members[1:4], "update_existing": true})
	if code != 200 {
		t.Fatalf("batch: %d %v", code, out)
	}
	if out["total_updated"].(float64) != 2 || out["error_count"].(float64) != 1 {
		t.Fatalf("update_existing=true: %v", out)
	}
	for email, want := range map[string]string{"exists@acme.io": "unsubscribed", "self@acme.io": "unsubscribed", "pend@acme.io": "subscribed"} {
		if got, _ := c.s.Contact(id, email); got.Status != want {
			t.Errorf("%s: status %s, want %s", email, got.Status, want)
		}
	}

	// Refusals of the whole request.
	for name, body := range map[string]any{
		"no status":    map[string]any{"members": []any{map[string]any{"email_address": "b@acme.io"}}},
		"empty status": map[string]any{"members": []any{map[string]any{"email_address": "b@acme.io", "status": ""}}},
		"too many":     map[string]any{"members": make([]map[string]any, 501)},
	} {
		if code, out := c.do("POST", "/lists/"+id, body); code != 400 {
			t.Errorf("%s: %d %v", name, code, out)
		}
	}
}

func TestTagsAndSegments(t *testing.T) {
	c := newClient(t, Options{})
	id := c.mustList()
	if err := c.s.Seed(id, SeedContact{Email: "a@acme.io"}, SeedContact{Email: "b@acme.io", Tags: []string{"Keep"}}); err != nil {
		t.Fatal(err)
	}
	code, seg := c.do("POST", "/lists/"+id+"/segments", map[string]any{"name": "VIP", "static_segment": []string{}})
	if code != 200 || seg["type"] != "static" {
		t.Fatalf("create tag: %d %v", code, seg)
	}
	sid := int(seg["id"].(float64))
	path := "/lists/" + id + "/segments/" + itoa(sid)
	code, out := c.do("POST", path, map[string]any{"members_to_add": []string{"a@acme.io", "b@acme.io", "nobody@acme.io"}, "members_to_remove": []string{}})
	if code != 200 || out["total_added"].(float64) != 2 || out["error_count"].(float64) != 1 {
		t.Fatalf("batch add: %d %v", code, out)
	}
	code, out = c.do("POST", path, map[string]any{"members_to_add": []string{}, "members_to_remove": []string{"a@acme.io"}})
	if code != 200 || out["total_removed"].(float64) != 1 {
		t.Fatalf("batch remove: %d %v", code, out)
	}
	b, _ := c.s.Contact(id, "b@acme.io")
	a, _ := c.s.Contact(id, "a@acme.io")
	if strings.Join(b.Tags, ",") != "Keep,VIP" || len(a.Tags) != 0 {
		t.Fatalf("tags: a=%v b=%v", a.Tags, b.Tags)
	}
	// Member tags endpoint.
	code, _ = c.do("POST", "/lists/"+id+"/members/a@acme.io/tags", map[string]any{"tags": []any{
		map[string]any{"name": "vip", "status": "active"}, map[string]any{"name": "New", "status": "active"}}})
	if code != 204 {
		t.Fatalf("member tags: %d", code)
	}
	code, out = c.do("GET", "/lists/"+id+"/members/a@acme.io/tags", nil)
	if code != 200 || out["total_items"].(float64) != 2 {
		t.Fatalf("get tags: %d %v", code, out)
	}
	code, out = c.do("GET", "/lists/"+id+"/members/"+hashHex(subscriberHash("a@acme.io")), nil)
	if code != 200 || out["tags_count"].(float64) != 2 {
		t.Fatalf("member: %d %v", code, out)
	}
	big := make([]string, 501)
	if code, _ := c.do("POST", path, map[string]any{"members_to_add": big, "members_to_remove": []string{}}); code != 400 {
		t.Fatalf("501 additions: %d", code)
	}
}

func TestListingSinceAndFields(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := newClient(t, Options{Now: clock})
	id := c.mustList()
	for _, e := range []string{"a@acme.io", "b@acme.io", "c@acme.io"} {
		if code, out := c.do("POST", "/lists/"+id+"/members", map[string]any{"email_address": e, "status": "subscribed"}); code != 200 {
			t.Fatalf("post: %d %v", code, out)
		}
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if code, _ := c.do("PATCH", "/lists/"+id+"/members/b@acme.io", map[string]any{"merge_fields": map[string]any{"FNAME": "Bee"}}); code != 200 {
		t.Fatal("patch failed")
	}
	if code, _ := c.do("DELETE", "/lists/"+id+"/members/c@acme.io", nil); code != 204 {
		t.Fatal("archive failed")
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"a@acme.io", "b@acme.io"}},
		{"?since_last_changed=2025-01-01T12:00:00%2B00:00", []string{"b@acme.io"}},
		{"?status=archived", []string{"c@acme.io"}},
		{"?count=1&offset=1", []string{"b@acme.io"}},
	}
	for _, tt := range tests {
		code, out := c.do("GET", "/lists/"+id+"/members"+tt.query, nil)
		if code != 200 {
			t.Fatalf("%s: %d %v", tt.query, code, out)
		}
		var got []string
		for _, m := range out["members"].([]any) {
			got = append(got, m.(map[string]any)["email_address"].(string))
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: got %v, want %v", tt.query, got, tt.want)
		}
	}
	_, out := c.do("GET", "/lists/"+id+"/members?fields=members.email_address,total_items", nil)
	m := out["members"].([]any)[0].(map[string]any)
	if len(m) != 1 || out["list_id"] != nil || out["total_items"].(float64) != 2 {
		t.Fatalf("fields: %v", out)
	}
	_, out = c.do("GET", "/lists/"+id+"/members?exclude_fields=members.merge_fields,_links", nil)
	m = out["members"].([]any)[0].(map[string]any)
	if _, ok := m["merge_fields"]; ok || out["_links"] != nil || m["status"] != "subscribed" {
		t.Fatalf("exclude_fields: %v", out)
	}
	_, out = c.do("GET", "/lists/"+id+"/members?fields=members.merge_fields.FNAME,members.id", nil)
	m = out["members"].([]any)[1].(map[string]any)
	if mf := m["merge_fields"].(map[string]any); len(m) != 2 || len(mf) != 1 || mf["FNAME"] != "Bee" {
		t.Fatalf("nested fields: %v", out)
	}
	if code, _ := c.do("GET", "/lists/"+id+"/members?count=1001", nil); code != 400 {
		t.Fatalf("count 1001: %d", code)
	}
}

func TestMaxConns(t *testing.T) {
	c := newClient(t, Options{MaxConns: 2, Latency: 200 * time.Millisecond})
	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = c.do("GET", "/ping", nil)
		}()
	}
	wg.Wait()
	n429 := 0
	for _, code := range codes {
		if code == 429 {
			n429++
		}
	}
	if n429 == 0 || n429 == len(codes) {
		t.Fatalf("codes = %v: want some 429", codes)
	}
	if c.s.MaxConcurrent(c.key) < 3 {
		t.Fatalf("max concurrent = %d", c.s.MaxConcurrent(c.key))
	}
}

func TestFaultsDeterministic(t *testing.T) {
	run := func() []int {
		c := newClient(t, Options{FailRate: 0.5, Seed: 7})
		var out []int
		for range 30 {
			req, _ := http.NewRequest("GET", c.s.URL+"/ping", nil)
			req.SetBasicAuth("x", c.key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				out = append(out, -1)
				continue
			}
			resp.Body.Close()
			out = append(out, resp.StatusCode)
		}
		return out
	}
	a, b := run(), run()
	if len(a) != len(b) {
		t.Fatal("length")
	}
	seen := map[int]bool{}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("not deterministic: %v vs %v", a, b)
		}
		seen[a[i]] = true
	}
	if !seen[200] || !seen[500] || !seen[503] || !seen[-1] {
		t.Fatalf("want every outcome, got %v", a)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func decodeJSON(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// StartTest starts an emulator for a test of this package (other packages
// use emulatortest.Start).
func StartTest(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("starting the Mailchimp emulator: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
