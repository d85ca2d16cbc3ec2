package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// validator is an http.RoundTripper that checks every request and response
// against Mailchimp's OpenAPI document.
type validator struct {
	fail   func(format string, args ...any)
	doc    *openapi3.T
	router routers.Router
	member *openapi3.Schema // the single-member shape (see API-NOTES §13)

	mu      sync.Mutex
	checked map[string]bool // "METHOD /template" validated at least once
}

// singleMemberOps answer one member object, while the document (wrongly)
// points them at the collection schema.
var singleMemberOps = map[string]bool{
	"GET /lists/{list_id}/members/{subscriber_hash}":      true,
	"PUT /lists/{list_id}/members/{subscriber_hash}":      true,
	"PATCH /lists/{list_id}/members/{subscriber_hash}":    true,
	"POST /lists/{list_id}/members":                       true,
	"POST /lists/{list_id}/segments/{segment_id}/members": true,
}

func newValidator(t *testing.T, baseURL string) *validator {
	t.Helper()
	raw, err := os.ReadFile("testdata/marketing-openapi3.json")
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	relaxMergeFields(tree)
	raw, _ = json.Marshal(tree)
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("loading the OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background(), openapi3.DisableExamplesValidation()); err != nil {
		t.Fatalf("validating the OpenAPI document: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: baseURL}}
	// Mailchimp answers "" for timestamps that are not set (e.g.
	// timestamp_signup, last_sub_date), which the document's date-time
	// format does not allow; "" is accepted, anything else must conform.
	openapi3.DefineStringFormatValidator("date-time", emptyOr{re: regexp.MustCompile(openapi3.FormatOfStringDateTime)})
	router, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation())
	if err != nil {
		t.Fatalf("building the router: %v", err)
	}
	member := doc.Components.Schemas["List_Members"]
	if member == nil || member.Value.Properties["email_address"] == nil {
		t.Fatal("the document has no single-member schema List_Members")
	}
	return &validator{fail: t.Errorf, doc: doc, router: router, member: member.Value, checked: map[string]bool{}}
}

func (v *validator) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		v.fail("%s %s: no route in the OpenAPI document: %v", req.Method, req.URL.Path, err)
		return http.DefaultTransport.RoundTrip(req)
	}
	op := req.Method + " " + route.Path
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true,
		IncludeResponseStatus: false}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	reqOK := true
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		reqOK = false
		v.fail("%s: request does not conform: %v\nbody: %s", op, err, trim(reqBody))
	}
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))

	if singleMemberOps[op] && resp.StatusCode == 200 {
		var doc any
		if err := json.Unmarshal(body, &doc); err != nil {
			v.fail("%s: response is not JSON: %v", op, err)
		} else if err := v.member.VisitJSON(doc, openapi3.MultiErrors()); err != nil {
			v.fail("%s: response is not a member object: %v\nbody: %s", op, err, trim(body))
		}
	} else {
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
			Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)), Options: opts}
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			v.fail("%s: response %d does not conform: %v\nbody: %s", op, resp.StatusCode, err, trim(body))
		}
	}
	if reqOK && resp.StatusCode < 300 {
		v.mu.Lock()
		v.checked[op] = true
		v.mu.Unlock()
	}
	return resp, nil
}

// relaxMergeFields undoes a conversion artifact of the document: the values
// of every merge_fields object are typed "object", while Mailchimp's own
// text says they are the values of the merge fields (strings, numbers, or an
// object for addresses). Their type depends on the audience, so any JSON
// value is allowed here; the emulator's own tests check the types.
func relaxMergeFields(x any) {
	switch v := x.(type) {
	case map[string]any:
		if props, ok := v["properties"].(map[string]any); ok {
			if mf, ok := props["merge_fields"].(map[string]any); ok {
				if _, ok := mf["additionalProperties"].(map[string]any); ok {
					mf["additionalProperties"] = map[string]any{}
				}
			}
		}
		for _, c := range v {
			relaxMergeFields(c)
		}
	case []any:
		for _, c := range v {
			relaxMergeFields(c)
		}
	}
}

type emptyOr struct{ re *regexp.Regexp }

func (v emptyOr) Validate(s string) error {
	if s == "" || v.re.MatchString(s) {
		return nil
	}
	return fmt.Errorf("%q is not a date-time", s)
}

func trim(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// TestOpenAPIConformance drives every emulated operation through a client
// that validates requests and responses against the OpenAPI document.
func TestOpenAPIConformance(t *testing.T) {
	s := StartTest(t, Options{})
	v := newValidator(t, s.URL)
	hc := &http.Client{Transport: v}
	call := func(method, path string, body any, want int) map[string]any {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, s.URL+path, rd)
		req.SetBasicAuth("user", s.Key())
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
		}
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return out
	}

	call("GET", "/ping", nil, 200)
	call("GET", "/", nil, 200)
	list := call("POST", "/lists", map[string]any{
		"name":                "Conformance",
		"contact":             map[string]any{"company": "Acme", "address1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701", "country": "US"},
		"permission_reminder": "You signed up.",
		"campaign_defaults":   map[string]any{"from_name": "Acme", "from_email": "news@acme.io", "subject": "Hi", "language": "en"},
		"email_type_option":   true,
	}, 200)
	id := list["id"].(string)
	lp := "/lists/" + id
	call("GET", "/lists?count=5", nil, 200)
	call("GET", lp+"?include_total_contacts=true", nil, 200)
	call("PATCH", lp, map[string]any{
		"name":                "Conformance 2",
		"contact":             map[string]any{"company": "Acme", "address1": "2 Main St", "city": "Springfield", "state": "IL", "zip": "62701", "country": "US"},
		"permission_reminder": "You signed up.",
		"campaign_defaults":   map[string]any{"from_name": "Acme", "from_email": "news@acme.io", "subject": "Hi", "language": "en"},
		"email_type_option":   true,
	}, 200)

	mf := call("POST", lp+"/merge-fields", map[string]any{"name": "Lifetime value", "type": "number", "tag": "LTV"}, 200)
	call("POST", lp+"/merge-fields", map[string]any{"name": "Signed up", "type": "date", "tag": "SIGNUP"}, 200)
	call("POST", lp+"/merge-fields", map[string]any{"name": "Plan", "type": "dropdown", "tag": "PLAN", "options": map[string]any{"choices": []string{"free", "pro"}}}, 200)
	mid := fmt.Sprint(mf["merge_id"])
	call("GET", lp+"/merge-fields?count=100", nil, 200)
	call("GET", lp+"/merge-fields/"+mid, nil, 200)
	call("PATCH", lp+"/merge-fields/"+mid, map[string]any{"name": "LTV", "help_text": "value"}, 200)

	call("POST", lp+"/members", map[string]any{"email_address": "ann@acme.io", "status": "subscribed",
		"merge_fields": map[string]any{"FNAME": "Ann", "LTV": 10, "SIGNUP": "2024-02-29", "PLAN": "pro",
			"ADDRESS": map[string]any{"addr1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"}},
		"tags": []string{"Early"}}, 200)
	hash := hashHex(subscriberHash("bob@acme.io"))
	call("PUT", lp+"/members/"+hash, map[string]any{"email_address": "bob@acme.io", "status_if_new": "subscribed",
		"merge_fields": map[string]any{"FNAME": "Bob"}}, 200)
	call("PATCH", lp+"/members/"+hash, map[string]any{"merge_fields": map[string]any{"LNAME": "Builder", "LTV": ""}}, 200)
	call("GET", lp+"/members/"+hash, nil, 200)
	call("GET", lp+"/members?count=1000&offset=0&status=subscribed", nil, 200)
	call("GET", lp+"/members?since_last_changed=2020-01-01T00:00:00%2B00:00&fields=members.email_address,members.status,total_items", nil, 200)
	call("GET", lp+"/members?exclude_fields=members._links", nil, 200)
	batch := call("POST", lp, map[string]any{"update_existing": true, "members": []any{
		map[string]any{"email_address": "cy@acme.io", "status": "subscribed", "merge_fields": map[string]any{"FNAME": "Cy"}},
		map[string]any{"email_address": "ann@acme.io", "status": "subscribed"},
		map[string]any{"email_address": "dee@example.com", "status": "subscribed"},
		map[string]any{"email_address": "eve@acme.io", "status": "subscribed", "merge_fields": map[string]any{"LTV": "much"}},
	}}, 200)
	if batch["total_created"].(float64) != 1 || batch["total_updated"].(float64) != 1 || batch["error_count"].(float64) != 2 {
		t.Fatalf("batch: %v", batch)
	}
	call("POST", lp+"/members/"+hash+"/tags", map[string]any{"tags": []any{map[string]any{"name": "VIP", "status": "active"}}}, 204)
	call("GET", lp+"/members/"+hash+"/tags", nil, 200)

	seg := call("POST", lp+"/segments", map[string]any{"name": "Customers", "static_segment": []string{"ann@acme.io"}}, 200)
	sp := lp + "/segments/" + fmt.Sprint(seg["id"])
	call("GET", lp+"/segments?type=static", nil, 200)
	call("GET", sp, nil, 200)
	call("PATCH", sp, map[string]any{"name": "Paying customers"}, 200)
	call("POST", sp, map[string]any{"members_to_add": []string{"bob@acme.io", "nobody@acme.io"}, "members_to_remove": []string{"ann@acme.io"}}, 200)
	call("POST", sp+"/members", map[string]any{"email_address": "cy@acme.io"}, 200)
	call("GET", sp+"/members", nil, 200)
	call("DELETE", sp+"/members/"+hashHex(subscriberHash("cy@acme.io")), nil, 204)
	call("GET", lp+"/tag-search?name=pay", nil, 200)
	call("DELETE", sp, nil, 204)

	// Webhooks (the URL answers the validation GET) and an address change.
	hooks := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hooks.Close()
	wh := call("POST", lp+"/webhooks", map[string]any{"url": hooks.URL + "/hook",
		"events": map[string]any{"subscribe": true, "upemail": true}, "sources": map[string]any{"api": true}}, 200)
	wp := lp + "/webhooks/" + fmt.Sprint(wh["id"])
	call("GET", lp+"/webhooks", nil, 200)
	call("GET", wp, nil, 200)
	call("PATCH", wp, map[string]any{"events": map[string]any{"profile": false}, "sources": map[string]any{"user": false}}, 200)
	call("PATCH", lp+"/members/"+hashHex(subscriberHash("cy@acme.io")), map[string]any{"email_address": "cy.new@acme.io"}, 200)
	call("PATCH", lp+"/members/"+hashHex(subscriberHash("cy.new@acme.io")), map[string]any{"email_address": "bob@acme.io"}, 400)
	call("PUT", lp+"/members/"+hashHex(subscriberHash("cy.new@acme.io")), map[string]any{"email_address": "cy@acme.io", "status_if_new": "subscribed"}, 200)
	call("POST", lp+"/webhooks", map[string]any{"url": hooks.URL + "/hook"}, 400)
	call("DELETE", wp, nil, 204)

	call("DELETE", lp+"/members/"+hash, nil, 204)
	call("POST", lp+"/members/"+hashHex(subscriberHash("ann@acme.io"))+"/actions/delete-permanent", nil, 204)
	call("DELETE", lp+"/merge-fields/"+mid, nil, 204)

	// Documented refusals are problem documents that conform too.
	call("POST", lp+"/members", map[string]any{"email_address": "ann@acme.io", "status": "subscribed"}, 400)
	call("POST", lp+"/members", map[string]any{"email_address": "cy@acme.io", "status": "subscribed"}, 400)
	call("GET", lp+"/members/"+hashHex(subscriberHash("zed@acme.io")), nil, 404)
	call("DELETE", lp, nil, 204)

	// A refused key is a conforming problem document too.
	req, _ := http.NewRequest("GET", s.URL+"/lists", nil)
	req.SetBasicAuth("user", "0123456789abcdef0123456789abcdef-us1")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("bad key: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	var missing []string
	for _, r := range s.Routes() {
		if !v.checked[r] {
			missing = append(missing, r)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("routes never validated: %s", strings.Join(missing, ", "))
	}
}

// TestValidatorRefuses shows that the validator does catch requests and
// responses that break the document.
func TestValidatorRefuses(t *testing.T) {
	s := StartTest(t, Options{})
	v := newValidator(t, s.URL)
	var faults []string
	v.fail = func(format string, args ...any) { faults = append(faults, fmt.Sprintf(format, args...)) }
	id, _ := s.CreateList(s.Key(), "v")
	hc := &http.Client{Transport: v}
	for _, body := range []string{
		`{"members":[{"email_address":"a@acme.io","status":"bogus"}]}`,
		`{"members":"not-an-array"}`,
	} {
		req, _ := http.NewRequest("POST", s.URL+"/lists/"+id, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("u", s.Key())
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: emulator answered %d, want 400", body, resp.StatusCode)
		}
	}
	if len(faults) != 2 {
		t.Fatalf("validator faults = %d, want 2: %v", len(faults), faults)
	}
}
