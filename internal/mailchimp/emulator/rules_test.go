package emulator

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func TestOAuthFlow(t *testing.T) {
	c := newClient(t, Options{})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(c.s.RootURL + "/oauth2/authorize?response_type=code&client_id=app&state=xyz&redirect_uri=" +
		url.QueryEscape("http://127.0.0.1:1/callback?keep=1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("authorize: %d %v", resp.StatusCode, err)
	}
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != "xyz" || loc.Query().Get("keep") != "1" || loc.Path != "/callback" {
		t.Fatalf("redirect = %s", loc)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {"app"}, "client_secret": {"s3cret"},
		"redirect_uri": {"http://127.0.0.1:1/callback?keep=1"}, "code": {code}}
	exchange := func() (int, map[string]any) {
		resp, err := http.PostForm(c.s.RootURL+"/oauth2/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = decodeJSON(resp, &out)
		return resp.StatusCode, out
	}
	status, tok := exchange()
	token, _ := tok["access_token"].(string)
	if status != 200 || token == "" {
		t.Fatalf("token: %d %v", status, tok)
	}
	if status, _ := exchange(); status != http.StatusBadRequest {
		t.Fatalf("reused code: %d, want 400", status)
	}
	// A code is bound to its redirect_uri.
	resp, err = noRedirect.Get(c.s.RootURL + "/oauth2/authorize?response_type=code&client_id=app&redirect_uri=" + url.QueryEscape("http://127.0.0.1:1/cb"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc2, _ := url.Parse(resp.Header.Get("Location"))
	form2 := url.Values{"grant_type": {"authorization_code"}, "client_id": {"app"}, "client_secret": {"s"},
		"redirect_uri": {"http://127.0.0.1:1/other"}, "code": {loc2.Query().Get("code")}}
	if resp, err := http.PostForm(c.s.RootURL+"/oauth2/token", form2); err != nil || resp.StatusCode != 400 {
		t.Fatalf("mismatched redirect_uri: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	req, _ := http.NewRequest("GET", c.s.RootURL+"/oauth2/metadata", nil)
	req.Header.Set("Authorization", "OAuth "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	_ = decodeJSON(resp, &meta)
	resp.Body.Close()
	if meta["dc"] != "us1" || meta["api_endpoint"] != c.s.RootURL || meta["accountname"] == "" {
		t.Fatalf("metadata = %v", meta)
	}
	req, _ = http.NewRequest("GET", c.s.URL+"/ping", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ping with the OAuth token: %d", resp.StatusCode)
	}
}

func TestAccountsAreIsolated(t *testing.T) {
	s := StartTest(t, Options{APIKeys: []string{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-us1", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-us2"}})
	a := &client{t: t, s: s, key: s.Keys()[0]}
	b := &client{t: t, s: s, key: s.Keys()[1]}
	id := a.mustList()
	if code, _ := b.do("GET", "/lists/"+id, nil); code != 404 {
		t.Fatalf("other account's audience: %d, want 404", code)
	}
	if _, out := b.do("GET", "/lists", nil); out["total_items"].(float64) != 0 {
		t.Fatalf("other account lists = %v", out)
	}
}

func TestArchiveAndRestore(t *testing.T) {
	c := newClient(t, Options{})
	id := c.mustList()
	if err := c.s.Seed(id,
		SeedContact{Email: "pend@acme.io", Status: "pending"},
		SeedContact{Email: "unsub@acme.io", Status: "unsubscribed"},
		SeedContact{Email: "arch1@acme.io", Status: "archived", ArchivedFrom: "unsubscribed"},
		SeedContact{Email: "arch2@acme.io", Status: "archived"},
		SeedContact{Email: "arch3@acme.io", Status: "archived", ArchivedFrom: "unsubscribed-self"},
	); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path string
		body               any
		code               int
		email, want        string
	}{
		{"pending cannot be archived", "DELETE", "/members/pend@acme.io", nil, 405, "pend@acme.io", "pending"},
		{"archive", "DELETE", "/members/unsub@acme.io", nil, 204, "unsub@acme.io", "archived"},
		{"PATCH restores the previous status", "PATCH", "/members/arch1@acme.io", map[string]any{"merge_fields": map[string]any{"FNAME": "A"}}, 200, "arch1@acme.io", "unsubscribed"},
		{"POST on archived is Member Exists", "POST", "/members", map[string]any{"email_address": "arch2@acme.io", "status": "subscribed"}, 400, "arch2@acme.io", "archived"},
		{"batch without update_existing restores", "POST", "", map[string]any{"members": []any{map[string]any{"email_address": "arch2@acme.io", "status": "transactional"}}}, 200, "arch2@acme.io", "transactional"},
		{"archived self-unsubscribed stays in compliance", "PUT", "/members/arch3@acme.io", map[string]any{"email_address": "arch3@acme.io", "status_if_new": "subscribed"}, 400, "arch3@acme.io", "archived"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := c.do(tt.method, "/lists/"+id+tt.path, tt.body)
			if code != tt.code {
				t.Fatalf("code %d, want %d: %v", code, tt.code, out)
			}
			got, err := c.s.Contact(id, tt.email)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.want {
				t.Fatalf("status %s, want %s", got.Status, tt.want)
			}
		})
	}
	if code, out := c.do("POST", "/lists/"+id+"/members/nobody@acme.io/actions/delete-permanent", nil); code != 404 {
		t.Fatalf("delete-permanent of a stranger: %d %v", code, out)
	}
}

func TestBatchTagsAndDuplicates(t *testing.T) {
	c := newClient(t, Options{})
	id := c.mustList()
	if err := c.s.Seed(id, SeedContact{Email: "a@acme.io", Tags: []string{"Old", "Other"}}); err != nil {
		t.Fatal(err)
	}
	code, out := c.do("POST", "/lists/"+id, map[string]any{"update_existing": true, "sync_tags": true, "members": []any{
		map[string]any{"email_address": "a@acme.io", "status": "subscribed", "tags": []string{"New"}},
		map[string]any{"email_address": "A@acme.io", "status": "unsubscribed"},
	}})
	if code != 200 || out["error_count"].(float64) != 1 || out["total_updated"].(float64) != 1 {
		t.Fatalf("batch: %d %v", code, out)
	}
	got, _ := c.s.Contact(id, "a@acme.io")
	if strings.Join(got.Tags, ",") != "New" || got.Status != "subscribed" {
		t.Fatalf("contact = %+v", got)
	}
	code, out = c.do("POST", "/lists/"+id+"?skip_duplicate_check=true", map[string]any{"update_existing": true, "members": []any{
		map[string]any{"email_address": "b@acme.io", "status": "pending"},
		map[string]any{"email_address": "b@acme.io", "status": "subscribed"},
	}})
	if code != 200 || out["error_count"].(float64) != 0 || out["total_created"].(float64) != 1 {
		t.Fatalf("skip_duplicate_check: %d %v", code, out)
	}
	if got, _ := c.s.Contact(id, "b@acme.io"); got.Status != "pending" {
		t.Fatalf("first occurrence should win: %+v", got)
	}
}

func TestMergeFieldRules(t *testing.T) {
	c := newClient(t, Options{})
	id := c.mustList()
	mf := "/lists/" + id + "/merge-fields"
	tests := []struct {
		name string
		body map[string]any
		code int
	}{
		{"number", map[string]any{"name": "Score", "type": "number", "tag": "SCORE"}, 200},
		{"duplicate tag", map[string]any{"name": "Score 2", "type": "number", "tag": "SCORE"}, 400},
		{"tag too long", map[string]any{"name": "Long", "type": "text", "tag": "ABCDEFGHIJK"}, 400},
		{"bad tag characters", map[string]any{"name": "Bad", "type": "text", "tag": "A-B"}, 400},
		{"unknown type", map[string]any{"name": "Bad", "type": "color", "tag": "COLOR"}, 400},
		{"dropdown without choices", map[string]any{"name": "Plan", "type": "dropdown", "tag": "PLAN"}, 400},
		{"required text", map[string]any{"name": "Company", "type": "text", "tag": "COMPANY", "required": true}, 200},
		{"generated tag", map[string]any{"name": "Anything", "type": "text"}, 200},
	}
	for _, tt := range tests {
		if code, out := c.do("POST", mf, tt.body); code != tt.code {
			t.Errorf("%s: %d, want %d: %v", tt.name, code, tt.code, out)
		}
	}
	// The required field is enforced on create, not with skip_merge_validation.
	body := map[string]any{"email_address": "x@acme.io", "status": "subscribed"}
	if code, out := c.do("POST", "/lists/"+id+"/members", body); code != 400 || out["errors"].([]any)[0].(map[string]any)["field"] != "COMPANY" {
		t.Fatalf("missing required: %d %v", code, out)
	}
	if code, out := c.do("POST", "/lists/"+id+"/members?skip_merge_validation=true", body); code != 200 {
		t.Fatalf("skip_merge_validation: %d %v", code, out)
	}
	// Type changes are refused; deleting a field drops its values.
	_, out := c.do("GET", mf+"?count=100", nil)
	var scoreID string
	for _, f := range out["merge_fields"].([]any) {
		if f.(map[string]any)["tag"] == "SCORE" {
			scoreID = fmt.Sprint(f.(map[string]any)["merge_id"])
		}
	}
	if code, _ := c.do("PATCH", mf+"/"+scoreID, map[string]any{"type": "text"}); code != 400 {
		t.Fatalf("type change: %d", code)
	}
	if code, out := c.do("PATCH", "/lists/"+id+"/members/x@acme.io", map[string]any{"merge_fields": map[string]any{"SCORE": "7", "COMPANY": "Acme"}}); code != 200 {
		t.Fatalf("patch: %d %v", code, out)
	}
	if code, _ := c.do("DELETE", mf+"/"+scoreID, nil); code != 204 {
		t.Fatal("delete merge field")
	}
	got, _ := c.s.Contact(id, "x@acme.io")
	if _, ok := got.MergeFields["SCORE"]; ok || got.MergeFields["COMPANY"] != "Acme" {
		t.Fatalf("merge fields after delete = %v", got.MergeFields)
	}
	// At most 30 fields.
	for i := 0; ; i++ {
		code, _ := c.do("POST", mf, map[string]any{"name": fmt.Sprint("F", i), "type": "text", "tag": fmt.Sprint("F", i)})
		if code != 200 {
			_, out := c.do("GET", mf, nil)
			if out["total_items"].(float64) != maxMergeFields {
				t.Fatalf("refused at %v fields", out["total_items"])
			}
			break
		}
	}
}

func TestFaultsAfterTheChange(t *testing.T) {
	run := func() (applied []bool) {
		c := newClient(t, Options{FailRate: 1, Seed: 42})
		id, _ := c.s.CreateList(c.key, "faults")
		for i := range 20 {
			email := fmt.Sprintf("p%d@acme.io", i)
			req, _ := http.NewRequest("PUT", c.s.URL+"/lists/"+id+"/members/"+email,
				strings.NewReader(`{"email_address":"`+email+`","status_if_new":"subscribed"}`))
			req.SetBasicAuth("x", c.key)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				if resp.StatusCode < 500 {
					t.Fatalf("request %d succeeded with fail rate 1: %d", i, resp.StatusCode)
				}
				resp.Body.Close()
			}
			_, err := c.s.Contact(id, email)
			applied = append(applied, err == nil)
		}
		return applied
	}
	a, b := run(), run()
	n := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("not deterministic: %v vs %v", a, b)
		}
		if a[i] {
			n++
		}
	}
	if n == 0 || n == len(a) {
		t.Fatalf("applied %d of %d: want some failures before and some after the change", n, len(a))
	}
}

func TestControlEndpoints(t *testing.T) {
	c := newClient(t, Options{})
	id := c.mustList()
	if err := c.s.Seed(id, SeedContact{Email: "a@acme.io"}, SeedContact{Email: "b@acme.io"}); err != nil {
		t.Fatal(err)
	}
	c.s.ResetCounters()
	for _, tt := range []struct{ email, action, want string }{{"a@acme.io", "unsubscribe", "unsubscribed"}, {"b@acme.io", "bounce", "cleaned"}} {
		code, out := c.do("POST", "/_emulator/lists/"+id+"/members/"+hashHex(subscriberHash(tt.email))+"/"+tt.action, nil)
		if code != 200 || out["status"] != tt.want {
			t.Fatalf("%s: %d %v", tt.action, code, out)
		}
		if got, _ := c.s.Contact(id, tt.email); !got.Compliance {
			t.Fatalf("%s: not in compliance state", tt.email)
		}
	}
	cc := &client{t: t, s: c.s, key: "wrong-us1"}
	if code, _ := cc.do("POST", "/_emulator/lists/"+id+"/members/a@acme.io/unsubscribe", nil); code != 401 {
		t.Fatalf("control without a valid key: %d", code)
	}
	if c.s.WriteCalls() != 0 {
		t.Fatalf("control endpoints counted as API calls: %v", c.s.Calls())
	}
}

func TestSegmentPatchReplacesMembers(t *testing.T) {
	c := newClient(t, Options{})
	id := c.mustList()
	if err := c.s.Seed(id, SeedContact{Email: "a@acme.io", Tags: []string{"T"}}, SeedContact{Email: "b@acme.io"}); err != nil {
		t.Fatal(err)
	}
	_, segs := c.do("GET", "/lists/"+id+"/segments", nil)
	sid := fmt.Sprint(segs["segments"].([]any)[0].(map[string]any)["id"])
	code, out := c.do("PATCH", "/lists/"+id+"/segments/"+sid, map[string]any{"name": "T", "static_segment": []string{"b@acme.io"}})
	if code != 200 || out["member_count"].(float64) != 1 {
		t.Fatalf("patch: %d %v", code, out)
	}
	if a, _ := c.s.Contact(id, "a@acme.io"); len(a.Tags) != 0 {
		t.Fatalf("a still tagged: %v", a.Tags)
	}
	if code, _ := c.do("PATCH", "/lists/"+id+"/segments/"+sid, map[string]any{"name": "T", "static_segment": []string{}}); code != 200 {
		t.Fatal("empty patch")
	}
	if b, _ := c.s.Contact(id, "b@acme.io"); len(b.Tags) != 0 {
		t.Fatalf("an empty static_segment must empty the tag: %v", b.Tags)
	}
}

// TestConcurrentLists runs batches on two audiences and one audience at once
// (run with -race).
func TestConcurrentLists(t *testing.T) {
	c := newClient(t, Options{MaxConns: 100})
	ids := []string{c.mustList(), c.mustList()}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := ids[w%2]
			var members []any
			for i := range 50 {
				members = append(members, map[string]any{"email_address": fmt.Sprintf("w%d-%d@acme.io", w, i), "status": "subscribed"})
			}
			if code, out := c.do("POST", "/lists/"+id, map[string]any{"members": members}); code != 200 {
				t.Errorf("batch: %d %v", code, out)
			}
			c.do("GET", "/lists/"+id+"/members?count=1000", nil)
		}()
	}
	wg.Wait()
	for _, id := range ids {
		counts, _ := c.s.StatusCounts(id)
		if counts["subscribed"] != 200 {
			t.Errorf("%s: counts %v", id, counts)
		}
		_, out := c.do("GET", "/lists/"+id+"/members?count=1", nil)
		if out["total_items"].(float64) != 200 {
			t.Errorf("listing after writes: %v", out["total_items"])
		}
	}
}
