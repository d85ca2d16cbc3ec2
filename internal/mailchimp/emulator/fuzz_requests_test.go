package emulator

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// fuzzWorld is a fresh emulator with one audience holding a merge field,
// three contacts in different states and a static segment, and the values
// that fill the route templates' wildcards.
func fuzzWorld(t *testing.T) (*Emulator, map[string]string) {
	// Webhook validations and deliveries never leave the process.
	offline := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}}, nil
	})}
	e := New(Options{WebhookClient: offline})
	t.Cleanup(e.Close)
	key := e.Keys()[0]
	id, err := e.CreateList(key, "Fuzz")
	if err != nil {
		t.Fatal(err)
	}
	_ = e.AddMergeField(id, "FNAME", "First", "text")
	_ = e.AddMergeField(id, "AGE", "Age", "number")
	if err := e.Seed(id, SeedContact{Email: "ann@shop.io", MergeFields: map[string]string{"FNAME": "Ann"}, Tags: []string{"Gold"}},
		SeedContact{Email: "bob@shop.io", Status: "unsubscribed-self"}, SeedContact{Email: "cy@shop.io", Status: "archived"}); err != nil {
		t.Fatal(err)
	}
	h := md5.Sum([]byte("ann@shop.io"))
	req := httptest.NewRequest("POST", "/3.0/lists/"+id+"/segments", strings.NewReader(`{"name":"Gold2","static_segment":[]}`))
	req.SetBasicAuth("any", key)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, req)
	var sg struct {
		ID json.Number `json:"id"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &sg)
	return e, map[string]string{"{list_id}": id, "{subscriber_hash}": hex.EncodeToString(h[:]), "{segment_id}": sg.ID.String(), "{merge_id}": "1", "key": key}
}

// FuzzAPIRequest sends any body and query to any emulated route with a
// valid key. The emulator must never fail on its own (no 500 without an
// injected fault), must answer JSON (a problem document on refusals), and
// must keep its audience consistent (the member count agrees with the
// listing).
func FuzzAPIRequest(f *testing.F) {
	seeds := []struct {
		route, query, body string
	}{
		{"POST /lists/{list_id}", "", `{"members":[{"email_address":"new@shop.io","status":"subscribed","merge_fields":{"FNAME":"N","AGE":"3"}}],"update_existing":true}`},
		{"POST /lists/{list_id}", "", `{"members":[{"email_address":"bob@shop.io","status":"subscribed"},{"email_address":"x@example.com","status":"pending"},{"email_address":"new@shop.io"}]}`},
		{"POST /lists/{list_id}", "", `{"members":[` + strings.Repeat(`{"email_address":"a@b.io","status":"subscribed"},`, 3) + `{}]}`},
		{"PUT /lists/{list_id}/members/{subscriber_hash}", "", `{"email_address":"ann@shop.io","status_if_new":"subscribed","merge_fields":{"FNAME":1}}`},
		{"PATCH /lists/{list_id}/members/{subscriber_hash}", "", `{"status":"subscribed","merge_fields":{"NOPE":"x","AGE":"old"}}`},
		{"GET /lists/{list_id}/members", "count=1000&offset=-1&status=archived&fields=members.id,members.status", ``},
		{"GET /lists/{list_id}/members", "since_last_changed=2024-13-40T99:00:00Z&count=abc", ``},
		{"POST /lists/{list_id}/segments/{segment_id}", "", `{"members_to_add":["ann@shop.io","ghost@shop.io"],"members_to_remove":["cy@shop.io"]}`},
		{"POST /lists/{list_id}/merge-fields", "", `{"tag":"lower","name":"x","type":"dropdown","options":{"choices":null}}`},
		{"POST /lists/{list_id}/members/{subscriber_hash}/tags", "", `{"tags":[{"name":"` + strings.Repeat("t", 120) + `","status":"active"},{"name":"Gold","status":"bogus"}]}`},
		{"PATCH /lists/{list_id}", "", `{"name":"","contact":null,"campaign_defaults":{}}`},
		{"GET /lists", "exclude_fields=a..b&fields=.", ``},
		{"POST /lists/{list_id}/webhooks", "", `{"url":"http://hooks.invalid/x","events":{"upemail":true},"sources":{"api":true}}`},
		{"PATCH /lists/{list_id}/members/{subscriber_hash}", "", `{"email_address":"bob@shop.io"}`},
		{"PUT /lists/{list_id}/members/{subscriber_hash}", "", `{"email_address":"ann.new@shop.io","status_if_new":"subscribed"}`},
	}
	for _, s := range seeds {
		f.Add(s.route, s.query, s.body)
	}
	f.Fuzz(func(t *testing.T, route, query, body string) {
		e, vals := fuzzWorld(t)
		routes := e.Routes()
		if !slices.Contains(routes, route) {
			route = routes[len(route)%len(routes)]
		}
		method, path, _ := strings.Cut(route, " ")
		for k, v := range vals {
			path = strings.ReplaceAll(path, k, v)
		}
		target := "/3.0" + path
		if query != "" {
			target += "?" + strings.NewReplacer("#", "", " ", "+").Replace(query)
		}
		req, err := http.NewRequest(method, target, strings.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		req.SetBasicAuth("any", vals["key"])
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", method, target, body, rec.Code, rec.Body.Bytes())
		}
		if b := bytes.TrimSpace(rec.Body.Bytes()); len(b) > 0 && !json.Valid(b) {
			t.Fatalf("%s %s %q: invalid JSON answer %q", method, target, body, b)
		}
		if rec.Code >= 400 && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
			t.Fatalf("%s %s: %d with content type %q", method, target, rec.Code, rec.Header().Get("Content-Type"))
		}
		counts, err := e.StatusCounts(vals["{list_id}"])
		if err != nil {
			return // the audience was deleted
		}
		cs, _ := e.Contacts(vals["{list_id}"])
		n := 0
		for s, c := range counts {
			if s != "deleted" {
				n += c
			}
		}
		if n != len(cs) {
			t.Fatalf("%s %s %q: status counts %v disagree with %d contacts", method, target, body, counts, len(cs))
		}
	})
}
