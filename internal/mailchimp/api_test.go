package mailchimp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/segsync/segsync/internal/emailaddr"
)

// recorder is a fake API that records each request and answers from a
// per-route function.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
	fn   func(r *http.Request, body string) (int, string)
}

type recorded struct {
	method, path, query, body string
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, string(b)})
	rc.mu.Unlock()
	status, body := rc.fn(r, string(b))
	if status >= 400 {
		w.Header().Set("Content-Type", "application/problem+json")
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func newRecorded(t *testing.T, fn func(r *http.Request, body string) (int, string)) (*Client, *recorder) {
	t.Helper()
	rc := &recorder{fn: fn}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	c, err := New(Config{APIKey: testKey, BaseURL: srv.URL + "/3.0", Limiter: NewLocalLimiter(10), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c, rc
}

func TestListMembersPages(t *testing.T) {
	t.Parallel()
	const total = 2345
	c, rc := newRecorded(t, func(r *http.Request, _ string) (int, string) {
		q := r.URL.Query()
		count, _ := strconv.Atoi(q.Get("count"))
		offset, _ := strconv.Atoi(q.Get("offset"))
		var ms []string
		for i := offset; i < min(offset+count, total); i++ {
			ms = append(ms, fmt.Sprintf(`{"id":"%s","email_address":"p%d@shop.org","status":"subscribed","last_changed":"2026-01-02T03:04:05+00:00"}`,
				emailaddr.Hash(fmt.Sprintf("p%d@shop.org", i)), i))
		}
		return 200, fmt.Sprintf(`{"members":[%s],"total_items":%d}`, strings.Join(ms, ","), total)
	})
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	seen := map[string]bool{}
	pages := 0
	err := c.ListMembers(context.Background(), "L1", MemberQuery{
		Status: StatusSubscribed, SinceLastChanged: since,
		Fields: []string{"members.email_address", "members.status", "members.last_changed"},
	}, func(ms []Member) error {
		pages++
		for _, m := range ms {
			if seen[m.EmailAddress] {
				t.Errorf("member %s twice", m.EmailAddress)
			}
			seen[m.EmailAddress] = true
			if m.LastChanged.IsZero() {
				t.Errorf("last_changed not decoded")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != total || pages != 3 {
		t.Errorf("got %d members in %d pages, want %d in 3", len(seen), pages, total)
	}
	q := rc.reqs[0].query
	for _, want := range []string{"count=1000", "offset=0", "status=subscribed", "since_last_changed=2025-12-31T23%3A00%3A00%2B00%3A00", "fields=members.email_address%2Cmembers.status%2Cmembers.last_changed%2Ctotal_items"} {
		if !strings.Contains(q, want) {
			t.Errorf("query %s lacks %s", q, want)
		}
	}
	if !strings.Contains(rc.reqs[2].query, "offset=2000") {
		t.Errorf("third query %s", rc.reqs[2].query)
	}

	// A callback error stops the walk and comes back as is.
	stop := errors.New("stop")
	n := len(rc.reqs)
	if err := c.ListMembers(context.Background(), "L1", MemberQuery{Count: 100}, func([]Member) error { return stop }); err != stop {
		t.Errorf("err = %v, want stop", err)
	}
	if len(rc.reqs) != n+1 {
		t.Errorf("walk went on after the callback failed")
	}
}

func TestCallShapes(t *testing.T) {
	t.Parallel()
	hash := emailaddr.Hash("ann@shop.org")
	tests := []struct {
		name       string
		call       func(c *Client) error
		method     string
		path       string
		body       string // exact JSON, "" for none
		queryHas   string
		answer     string
		wantErrSub string // local validation error
	}{
		{name: "put member", call: func(c *Client) error {
			_, err := c.PutMember(context.Background(), "L1", MemberInput{EmailAddress: "Ann@Shop.org", StatusIfNew: StatusPending, Tags: []string{"x"}})
			return err
		}, method: "PUT", path: "/3.0/lists/L1/members/" + hash, body: `{"email_address":"Ann@Shop.org","status_if_new":"pending"}`},
		{name: "put member needs status_if_new", call: func(c *Client) error {
			_, err := c.PutMember(context.Background(), "L1", MemberInput{EmailAddress: "ann@shop.org"})
			return err
		}, wantErrSub: "status_if_new"},
		{name: "patch merge fields", call: func(c *Client) error {
			_, err := c.PatchMember(context.Background(), "L1", "ann@shop.org", MemberInput{MergeFields: map[string]any{"FNAME": "", "AGE": 42}})
			return err
		}, method: "PATCH", path: "/3.0/lists/L1/members/" + hash, body: `{"merge_fields":{"AGE":42,"FNAME":""}}`},
		{name: "unsubscribe", call: func(c *Client) error {
			_, err := c.UnsubscribeMember(context.Background(), "L1", "ann@shop.org")
			return err
		}, method: "PATCH", path: "/3.0/lists/L1/members/" + hash, body: `{"status":"unsubscribed"}`},
		{name: "add member with tags", call: func(c *Client) error {
			_, err := c.AddMember(context.Background(), "L1", MemberInput{EmailAddress: "ann@shop.org", Status: StatusSubscribed, Tags: []string{"vip"}})
			return err
		}, method: "POST", path: "/3.0/lists/L1/members", body: `{"email_address":"ann@shop.org","status":"subscribed","tags":["vip"]}`},
		{name: "archive", call: func(c *Client) error { return c.ArchiveMember(context.Background(), "L1", "ANN@shop.org") },
			method: "DELETE", path: "/3.0/lists/L1/members/" + hash},
		{name: "delete permanent", call: func(c *Client) error { return c.DeletePermanent(context.Background(), "L1", "ann@shop.org") },
			method: "POST", path: "/3.0/lists/L1/members/" + hash + "/actions/delete-permanent"},
		{name: "member tags", call: func(c *Client) error {
			return c.UpdateMemberTags(context.Background(), "L1", "ann@shop.org", []TagUpdate{{"VIP", true}, {"Old", false}})
		}, method: "POST", path: "/3.0/lists/L1/members/" + hash + "/tags", body: `{"tags":[{"name":"VIP","status":"active"},{"name":"Old","status":"inactive"}]}`},
		{name: "batch subscribe", call: func(c *Client) error {
			_, err := c.BatchSubscribe(context.Background(), "L1", []BatchMember{{EmailAddress: "ann@shop.org", Status: StatusSubscribed, MergeFields: map[string]any{"FNAME": "Ann"}}}, false)
			return err
		}, method: "POST", path: "/3.0/lists/L1", body: `{"members":[{"email_address":"ann@shop.org","status":"subscribed","merge_fields":{"FNAME":"Ann"}}],"update_existing":false}`,
			queryHas: "error_count", answer: `{"new_members":[],"updated_members":[],"errors":[],"total_created":0,"total_updated":0,"error_count":0}`},
		{name: "batch subscribe needs status", call: func(c *Client) error {
			_, err := c.BatchSubscribe(context.Background(), "L1", []BatchMember{{EmailAddress: "ann@shop.org"}}, true)
			return err
		}, wantErrSub: "status"},
		{name: "batch subscribe at most 500", call: func(c *Client) error {
			_, err := c.BatchSubscribe(context.Background(), "L1", make([]BatchMember, 501), true)
			return err
		}, wantErrSub: "at most 500"},
		{name: "segment members", call: func(c *Client) error {
			_, err := c.UpdateSegmentMembers(context.Background(), "L1", 42, []string{"ann@shop.org"}, nil)
			return err
		}, method: "POST", path: "/3.0/lists/L1/segments/42", body: `{"members_to_add":["ann@shop.org"],"members_to_remove":[]}`,
			queryHas: "total_added", answer: `{"members_added":[],"members_removed":[],"errors":[],"total_added":0,"total_removed":0,"error_count":0}`},
		{name: "segment at most 500", call: func(c *Client) error {
			_, err := c.UpdateSegmentMembers(context.Background(), "L1", 42, nil, make([]string, 501))
			return err
		}, wantErrSub: "at most 500"},
		{name: "create tag", call: func(c *Client) error {
			_, err := c.CreateStaticSegment(context.Background(), "L1", "VIP")
			return err
		}, method: "POST", path: "/3.0/lists/L1/segments", body: `{"name":"VIP","static_segment":[]}`, answer: `{"id":7,"name":"VIP","type":"static"}`},
		{name: "segments of a type", call: func(c *Client) error {
			_, err := c.ListSegments(context.Background(), "L1", SegmentStatic)
			return err
		}, method: "GET", path: "/3.0/lists/L1/segments", queryHas: "type=static", answer: `{"segments":[{"id":7,"name":"VIP","type":"static"}],"total_items":1}`},
		{name: "merge field", call: func(c *Client) error {
			_, err := c.CreateMergeField(context.Background(), "L1", MergeField{Tag: "LTV", Name: "Lifetime value", Type: MergeNumber})
			return err
		}, method: "POST", path: "/3.0/lists/L1/merge-fields", body: `{"tag":"LTV","name":"Lifetime value","type":"number"}`},
		{name: "escaped list id", call: func(c *Client) error {
			_, err := c.GetList(context.Background(), "a/b")
			return err
		}, method: "GET", path: "/3.0/lists/a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, rc := newRecorded(t, func(r *http.Request, _ string) (int, string) {
				if tt.answer != "" {
					return 200, tt.answer
				}
				if r.Method == http.MethodDelete || strings.HasSuffix(r.URL.Path, "/tags") || strings.HasSuffix(r.URL.Path, "delete-permanent") {
					return 204, ""
				}
				return 200, `{}`
			})
			err := tt.call(c)
			if tt.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrSub) || len(rc.reqs) != 0 {
					t.Fatalf("err = %v after %d requests, want local error with %q", err, len(rc.reqs), tt.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rc.reqs) != 1 {
				t.Fatalf("%d requests", len(rc.reqs))
			}
			got := rc.reqs[0]
			if got.method != tt.method || got.path != tt.path {
				t.Errorf("request %s %s, want %s %s", got.method, got.path, tt.method, tt.path)
			}
			if got.body != tt.body {
				t.Errorf("body %s, want %s", got.body, tt.body)
			}
			if !strings.Contains(got.query, tt.queryHas) {
				t.Errorf("query %s lacks %s", got.query, tt.queryHas)
			}
		})
	}
}

func TestBatchSubscribeResult(t *testing.T) {
	t.Parallel()
	c, _ := newRecorded(t, func(r *http.Request, _ string) (int, string) {
		return 200, `{"new_members":[{"id":"h1","email_address":"a@shop.org","status":"subscribed"}],
			"updated_members":[],
			"errors":[{"email_address":"b@shop.org","error":"b@shop.org is already a list member","error_code":"ERROR_CONTACT_EXISTS"},
			          {"email_address":"c@example.com","error":"c@example.com looks fake or invalid, please enter a real email address.","error_code":"ERROR_GENERIC"}],
			"total_created":1,"total_updated":0,"error_count":2}`
	})
	res, err := c.BatchSubscribe(context.Background(), "L1", []BatchMember{
		{EmailAddress: "a@shop.org", Status: "subscribed"}, {EmailAddress: "b@shop.org", Status: "subscribed"}, {EmailAddress: "c@example.com", Status: "subscribed"},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalCreated != 1 || res.ErrorCount != 2 || len(res.NewMembers) != 1 || res.Errors[0].ErrorCode != "ERROR_CONTACT_EXISTS" {
		t.Fatalf("result = %+v", res)
	}
	if k, r := ClassifyBatchError(res.Errors[1]); k != Permanent || !strings.HasPrefix(r, ReasonInvalidAddress) {
		t.Errorf("classify = %v %s", k, r)
	}
}

func TestOAuth(t *testing.T) {
	t.Parallel()
	const token = "secret-token-42"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/oauth2/metadata" && r.Header.Get("Authorization") == "OAuth "+token:
			json.NewEncoder(w).Encode(map[string]any{"dc": "us9", "role": "owner", "accountname": "Shop", "user_id": 77,
				"login_url": "https://login.mailchimp.com", "api_endpoint": "https://us9.api.mailchimp.com",
				"login": map[string]any{"login_id": 5, "login_name": "ann", "login_email": "ann@shop.org", "email": "ann@shop.org"}})
		case r.URL.Path == "/oauth2/metadata":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(401)
			io.WriteString(w, `{"title":"Unauthorized","status":401,"detail":"invalid token `+r.Header.Get("Authorization")+`"}`)
		case r.URL.Path == "/oauth2/token":
			r.ParseForm()
			if r.Form.Get("client_secret") != "sec" || r.Form.Get("code") != "c1" {
				w.WriteHeader(400)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"access_token":"`+token+`","expires_in":0,"scope":null}`)
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()

	cfg := OAuthConfig("cid", "sec", srv.URL+"/", "http://127.0.0.1:8080/oauth/mailchimp/callback")
	if cfg.Endpoint.AuthURL != srv.URL+"/oauth2/authorize" || cfg.Endpoint.TokenURL != srv.URL+"/oauth2/token" {
		t.Errorf("endpoints %+v", cfg.Endpoint)
	}
	if u := cfg.AuthCodeURL("st"); !strings.Contains(u, "client_id=cid") || !strings.Contains(u, "response_type=code") {
		t.Errorf("auth URL %s", u)
	}
	tok, err := cfg.Exchange(context.Background(), "c1")
	if err != nil || tok.AccessToken != token {
		t.Fatalf("exchange: %v %v", tok, err)
	}

	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client())
	md, err := FetchMetadata(ctx, srv.URL, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := md.BaseURL()
	if md.DC != "us9" || md.AccountName != "Shop" || md.Login.LoginName != "ann" || md.UserID != "77" || md.Login.LoginID != "5" || base != "https://us9.api.mailchimp.com/3.0" {
		t.Errorf("metadata %+v, base %s", md, base)
	}
	_, err = FetchMetadata(ctx, srv.URL, "wrong-token-99")
	if !IsAuth(err) || strings.Contains(err.Error(), "wrong-token-99") {
		t.Errorf("bad token: err = %v", err)
	}
	for _, tt := range []struct {
		md   Metadata
		want string
	}{
		{Metadata{APIEndpoint: "https://us1.api.mailchimp.com/"}, "https://us1.api.mailchimp.com/3.0"},
		{Metadata{APIEndpoint: "http://127.0.0.1:9/3.0"}, "http://127.0.0.1:9/3.0"},
		{Metadata{DC: "us2"}, "https://us2.api.mailchimp.com/3.0"},
		{Metadata{DC: "evil.com/"}, ""},
	} {
		got, _ := tt.md.BaseURL()
		if got != tt.want {
			t.Errorf("BaseURL(%+v) = %q, want %q", tt.md, got, tt.want)
		}
	}
}
