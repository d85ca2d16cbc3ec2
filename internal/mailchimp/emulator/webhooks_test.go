package emulator

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/mailchimp"
)

// receiver is a loopback webhook endpoint that records what it gets.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	gets   int
	posts  []mailchimp.WebhookEvent
	bad    []string // problems with a POST (content type, user agent, parse)
	answer func(n int) int
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if r.Method == http.MethodGet {
			rc.gets++
			return
		}
		body, _ := io.ReadAll(r.Body)
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			rc.bad = append(rc.bad, "content type "+ct)
		}
		if ua := r.Header.Get("User-Agent"); ua != "MailChimp.com" {
			rc.bad = append(rc.bad, "user agent "+ua)
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			rc.bad = append(rc.bad, err.Error())
		}
		ev, err := mailchimp.ParseWebhook(form)
		if err != nil {
			rc.bad = append(rc.bad, err.Error())
		}
		rc.posts = append(rc.posts, ev)
		if rc.answer != nil {
			w.WriteHeader(rc.answer(len(rc.posts)))
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) events() []mailchimp.WebhookEvent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bad) > 0 {
		panic("bad webhook requests: " + strings.Join(rc.bad, "; "))
	}
	return append([]mailchimp.WebhookEvent(nil), rc.posts...)
}

func (rc *receiver) types() string {
	var out []string
	for _, e := range rc.events() {
		out = append(out, e.Type)
	}
	return strings.Join(out, ",")
}

func waitHooks(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWebhookRoutes(t *testing.T) {
	c := newClient(t, Options{})
	id := c.mustList()
	ok := newReceiver(t, nil)
	refusing := newReceiver(t, nil)
	refusing.Config.Handler = http.NotFoundHandler()

	// Creation validates the URL with a GET; defaults are every event,
	// user and admin sources.
	code, w := c.do("POST", "/lists/"+id+"/webhooks", map[string]any{"url": ok.URL + "/a"})
	if code != 200 || ok.gets != 1 {
		t.Fatalf("create: %d %v (validation GETs %d)", code, w, ok.gets)
	}
	ev, src := w["events"].(map[string]any), w["sources"].(map[string]any)
	for _, n := range hookEventNames {
		if ev[n] != true {
			t.Errorf("default event %s = %v", n, ev[n])
		}
	}
	if src["user"] != true || src["admin"] != true || src["api"] != false || w["list_id"] != id || len(w["id"].(string)) != 10 {
		t.Errorf("created webhook %v", w)
	}
	hp := "/lists/" + id + "/webhooks/" + w["id"].(string)

	for _, tt := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"refused by the URL", map[string]any{"url": refusing.URL + "/b"}, "HTTP Code: 404"},
		{"unreachable", map[string]any{"url": "http://127.0.0.1:1/hook"}, "HTTP Code: 0"},
		{"not a URL", map[string]any{"url": "ftp://x/y"}, "validated"},
		{"no URL", map[string]any{"events": map[string]any{"subscribe": true}}, "validated"},
		{"same URL", map[string]any{"url": ok.URL + "/a"}, "validated"},
		{"unknown event", map[string]any{"url": ok.URL + "/c", "events": map[string]any{"bounce": true}}, "validated"},
	} {
		code, out := c.do("POST", "/lists/"+id+"/webhooks", tt.body)
		if code != 400 || !strings.Contains(out["detail"].(string), tt.want) {
			t.Errorf("%s: %d %v, want 400 with %q", tt.name, code, out, tt.want)
		}
	}
	if v := c.s.Validations(); len(v) != 3 || v[1].Status != 404 || v[2].Err == "" {
		t.Errorf("validations %+v", v)
	}

	code, out := c.do("GET", "/lists/"+id+"/webhooks", nil)
	if code != 200 || out["total_items"] != float64(1) || len(out["webhooks"].([]any)) != 1 {
		t.Fatalf("list: %d %v", code, out)
	}
	code, out = c.do("PATCH", hp, map[string]any{"events": map[string]any{"campaign": false}, "sources": map[string]any{"api": true}})
	if code != 200 || out["events"].(map[string]any)["campaign"] != false || out["events"].(map[string]any)["subscribe"] != true ||
		out["sources"].(map[string]any)["api"] != true || out["url"] != ok.URL+"/a" {
		t.Fatalf("patch: %d %v", code, out)
	}
	if code, _ := c.do("PATCH", hp, map[string]any{"url": refusing.URL + "/x"}); code != 400 {
		t.Errorf("patch to a refusing URL: %d", code)
	}
	if code, out = c.do("GET", hp, nil); code != 200 || out["url"] != ok.URL+"/a" {
		t.Fatalf("get: %d %v", code, out)
	}
	if code, _ = c.do("DELETE", hp, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if code, _ = c.do(m, hp, nil); code != 404 {
			t.Errorf("%s after delete: %d", m, code)
		}
	}
	if code, _ = c.do("GET", "/lists/nope/webhooks", nil); code != 404 {
		t.Errorf("unknown list: %d", code)
	}
}

// TestWebhookDelivery: events go, form-encoded, to the webhooks whose
// events and sources want them.
func TestWebhookDelivery(t *testing.T) {
	c := newClient(t, Options{})
	id := c.mustList()
	apiHook, userHook, unsubHook := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	all := map[string]any{"subscribe": true, "unsubscribe": true, "profile": true, "cleaned": true, "upemail": true, "campaign": true}
	for _, h := range []struct {
		rc      *receiver
		events  map[string]any
		sources map[string]any
	}{
		{apiHook, all, map[string]any{"user": false, "admin": false, "api": true}},
		{userHook, all, map[string]any{"user": true, "admin": true, "api": false}},
		{unsubHook, map[string]any{"subscribe": false, "unsubscribe": true, "profile": false, "cleaned": false, "upemail": false, "campaign": false},
			map[string]any{"user": true, "admin": true, "api": true}},
	} {
		if code, out := c.do("POST", "/lists/"+id+"/webhooks", map[string]any{"url": h.rc.URL, "events": h.events, "sources": h.sources}); code != 200 {
			t.Fatalf("create: %d %v", code, out)
		}
	}
	mp := "/lists/" + id + "/members/"
	ann, bob := hashHex(subscriberHash("ann@acme.io")), hashHex(subscriberHash("bob@acme.io"))
	steps := []struct {
		method, path string
		body         any
	}{
		{"POST", mp[:len(mp)-1], map[string]any{"email_address": "ann@acme.io", "status": "subscribed", "merge_fields": map[string]any{"FNAME": "Ann"}}},
		{"PUT", mp + bob, map[string]any{"email_address": "bob@acme.io", "status_if_new": "subscribed"}},
		{"PATCH", mp + ann, map[string]any{"merge_fields": map[string]any{"FNAME": "Anne"}}},
		{"PATCH", mp + ann, map[string]any{"merge_fields": map[string]any{"FNAME": "Anne"}}}, // no change: no event
		{"POST", "/_emulator" + mp + ann + "/unsubscribe", nil},
		{"POST", "/_emulator" + mp + bob + "/bounce", nil},
		{"PATCH", mp + ann, map[string]any{"email_address": "ann.new@acme.io"}},
		{"PATCH", mp + hashHex(subscriberHash("ann.new@acme.io")), map[string]any{"status": "unsubscribed"}}, // already: no event
	}
	for _, s := range steps {
		if code, out := c.do(s.method, s.path, s.body); code != 200 {
			t.Fatalf("%s %s: %d %v", s.method, s.path, code, out)
		}
	}
	waitHooks(t, c.s)
	if got := apiHook.types(); got != "subscribe,subscribe,profile,upemail" {
		t.Errorf("api webhook got %s", got)
	}
	if got := userHook.types(); got != "unsubscribe,cleaned" {
		t.Errorf("user webhook got %s", got)
	}
	if got := unsubHook.types(); got != "unsubscribe" {
		t.Errorf("unsubscribe-only webhook got %s", got)
	}

	evs := apiHook.events()
	if e := evs[0]; e.Email != "ann@acme.io" || e.ListID != id || e.Merges["FNAME"] != "Ann" || e.Merges["EMAIL"] != "ann@acme.io" ||
		time.Since(e.FiredAt) > time.Minute || len(e.ID) != 10 {
		t.Errorf("subscribe event %+v", e)
	}
	if e := evs[2]; e.Merges["FNAME"] != "Anne" {
		t.Errorf("profile event %+v", e)
	}
	up := evs[3]
	if up.OldEmail != "ann@acme.io" || up.NewEmail != "ann.new@acme.io" || up.Email != "" {
		t.Errorf("upemail event %+v", up)
	}
	_, member := c.do("GET", mp+hashHex(subscriberHash("ann.new@acme.io")), nil)
	if up.NewID != member["unique_email_id"] {
		t.Errorf("upemail new_id %s, member unique_email_id %v", up.NewID, member["unique_email_id"])
	}
	u := userHook.events()
	if u[0].Email != "ann@acme.io" || u[0].Action != "unsub" || u[0].Reason != "manual" {
		t.Errorf("unsubscribe event %+v", u[0])
	}
	if u[1].Email != "bob@acme.io" || u[1].Reason != "hard" {
		t.Errorf("cleaned event %+v", u[1])
	}
	for _, d := range c.s.Deliveries() {
		if !d.OK() || d.Attempt != 1 || !d.Final {
			t.Errorf("delivery %+v", d)
		}
	}
}

// TestWebhookRetries: failed deliveries are retried with backoff; a 410
// disables the webhook.
func TestWebhookRetries(t *testing.T) {
	c := newClient(t, Options{WebhookRetries: 3, WebhookRetryDelay: time.Millisecond})
	id := c.mustList()
	flaky := newReceiver(t, func(n int) int {
		if n <= 2 {
			return 500
		}
		return 200
	})
	down := newReceiver(t, func(int) int { return 503 })
	gone := newReceiver(t, func(int) int { return 410 })
	for _, rc := range []*receiver{flaky, down, gone} {
		if code, out := c.do("POST", "/lists/"+id+"/webhooks", map[string]any{"url": rc.URL, "sources": map[string]any{"api": true}}); code != 200 {
			t.Fatalf("create: %d %v", code, out)
		}
	}
	if code, _ := c.do("POST", "/lists/"+id+"/members", map[string]any{"email_address": "ann@acme.io", "status": "subscribed"}); code != 200 {
		t.Fatal(code)
	}
	waitHooks(t, c.s)
	if n := len(flaky.events()); n != 3 {
		t.Errorf("flaky receiver got %d attempts, want 3", n)
	}
	if n := len(down.events()); n != 4 {
		t.Errorf("failing receiver got %d attempts, want 1+3", n)
	}
	if n := len(gone.events()); n != 1 {
		t.Errorf("410 receiver got %d attempts, want 1", n)
	}
	byURL := map[string][]Delivery{}
	for _, d := range c.s.Deliveries() {
		byURL[d.URL] = append(byURL[d.URL], d)
	}
	if ds := byURL[flaky.URL]; len(ds) != 3 || ds[2].Status != 200 || !ds[2].Final || ds[1].Final || ds[1].Attempt != 2 {
		t.Errorf("flaky deliveries %+v", ds)
	}
	if ds := byURL[down.URL]; len(ds) != 4 || !ds[3].Final || ds[3].OK() {
		t.Errorf("failing deliveries %+v", ds)
	}
	hooks, _ := c.s.Webhooks(id)
	for _, h := range hooks {
		if h.Disabled != (h.URL == gone.URL) {
			t.Errorf("webhook %s disabled = %v", h.URL, h.Disabled)
		}
	}
	// A disabled webhook gets nothing more.
	if code, _ := c.do("PUT", "/lists/"+id+"/members/"+hashHex(subscriberHash("bob@acme.io")),
		map[string]any{"email_address": "bob@acme.io", "status_if_new": "subscribed"}); code != 200 {
		t.Fatal(code)
	}
	waitHooks(t, c.s)
	if n := len(gone.events()); n != 1 {
		t.Errorf("disabled webhook got %d posts", n)
	}
}

// TestWebhookClientOverride: deliveries and validations go through
// Options.WebhookClient.
func TestWebhookClientOverride(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.String())
		mu.Unlock()
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
	})}
	c := newClient(t, Options{WebhookClient: hc})
	id := c.mustList()
	if code, out := c.do("POST", "/lists/"+id+"/webhooks", map[string]any{"url": "http://hooks.invalid/x", "sources": map[string]any{"api": true}}); code != 200 {
		t.Fatalf("create: %d %v", code, out)
	}
	c.do("POST", "/lists/"+id+"/members", map[string]any{"email_address": "ann@acme.io", "status": "subscribed"})
	waitHooks(t, c.s)
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, "|") != "GET http://hooks.invalid/x|POST http://hooks.invalid/x" {
		t.Errorf("requests %v", seen)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestWebhookClose: Close ends the worker, even with a retry pending, and
// API calls neither block nor deliver afterwards.
func TestWebhookClose(t *testing.T) {
	s := StartTest(t, Options{WebhookRetryDelay: time.Hour})
	c := &client{t: t, s: s, key: s.Key()}
	id := c.mustList()
	down := newReceiver(t, func(int) int { return 500 })
	c.do("POST", "/lists/"+id+"/webhooks", map[string]any{"url": down.URL, "sources": map[string]any{"api": true}})
	c.do("POST", "/lists/"+id+"/members", map[string]any{"email_address": "ann@acme.io", "status": "subscribed"})
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Deliveries()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	s.Emulator.Close()
	select {
	case <-s.hooks.done:
	default:
		t.Fatal("worker still running after Close")
	}
	c.do("POST", "/lists/"+id+"/members", map[string]any{"email_address": "bob@acme.io", "status": "subscribed"})
	if n := len(down.events()); n != 1 {
		t.Errorf("%d posts, want the first attempt only", n)
	}
	waitHooks(t, s) // returns at once when closed
}

// TestEmailChange: a PATCH or PUT with another email_address moves the
// member, as Mailchimp does.
func TestEmailChange(t *testing.T) {
	c := newClient(t, Options{})
	id := c.mustList()
	lp := "/lists/" + id
	hash := func(e string) string { return hashHex(subscriberHash(e)) }
	if err := c.s.Seed(id,
		SeedContact{Email: "ann@acme.io", Status: "subscribed", MergeFields: map[string]string{"FNAME": "Ann"}, Tags: []string{"VIP"}},
		SeedContact{Email: "opt@acme.io", Status: "unsubscribed-self"},
		SeedContact{Email: "bob@acme.io", Status: "subscribed"},
		SeedContact{Email: "arch@acme.io", Status: "archived"},
		SeedContact{Email: "gone@acme.io", Status: "deleted"},
	); err != nil {
		t.Fatal(err)
	}
	_, before := c.do("GET", lp+"/members/"+hash("ann@acme.io"), nil)

	code, m := c.do("PATCH", lp+"/members/"+hash("ann@acme.io"), map[string]any{"email_address": "Ann.New@acme.io"})
	if code != 200 || m["id"] != hash("ann.new@acme.io") || m["email_address"] != "Ann.New@acme.io" || m["status"] != "subscribed" ||
		m["merge_fields"].(map[string]any)["FNAME"] != "Ann" || m["tags_count"] != float64(1) || m["contact_id"] != before["contact_id"] {
		t.Fatalf("change: %d %v", code, m)
	}
	if code, _ := c.do("GET", lp+"/members/"+hash("ann@acme.io"), nil); code != 404 {
		t.Errorf("old hash answers %d", code)
	}
	if code, _ := c.do("PATCH", lp+"/members/"+hash("ann@acme.io"), map[string]any{"email_address": "ann.new@acme.io"}); code != 404 {
		t.Errorf("repeated change answers %d", code)
	}
	// The tag (static segment) moved with the member.
	_, segs := c.do("GET", lp+"/segments?type=static", nil)
	sid := itoa(int(segs["segments"].([]any)[0].(map[string]any)["id"].(float64)))
	_, sm := c.do("GET", lp+"/segments/"+sid+"/members", nil)
	if ms := sm["members"].([]any); len(ms) != 1 || ms[0].(map[string]any)["email_address"] != "Ann.New@acme.io" {
		t.Errorf("segment members %v", sm["members"])
	}
	// The old address is free again.
	if code, _ := c.do("POST", lp+"/members", map[string]any{"email_address": "ann@acme.io", "status": "subscribed"}); code != 200 {
		t.Errorf("re-adding the old address: %d", code)
	}

	// An opted-out person stays opted out, compliance state included.
	code, m = c.do("PUT", lp+"/members/"+hash("opt@acme.io"), map[string]any{"email_address": "opt.new@acme.io", "status_if_new": "subscribed"})
	if code != 200 || m["status"] != "unsubscribed" {
		t.Fatalf("PUT change of an unsubscribed contact: %d %v", code, m)
	}
	if code, out := c.do("PATCH", lp+"/members/"+hash("opt.new@acme.io"), map[string]any{"status": "subscribed"}); code != 400 || out["title"] != "Member In Compliance State" {
		t.Errorf("re-subscribing after the change: %d %v", code, out)
	}

	// Collisions and forgotten addresses are refused and change nothing.
	for _, tt := range []struct{ to, title, want string }{
		{"bob@acme.io", "Invalid Resource", `"bob@acme.io" is already in this list with a status of "subscribed".`},
		{"arch@acme.io", "Invalid Resource", `with a status of "archived"`},
		{"Ann.New@acme.io", "Invalid Resource", "already in this list"},
		{"gone@acme.io", "Forgotten Email Not Subscribed", "permanently deleted"},
		{"test@example.com", "Invalid Resource", "looks fake or invalid"},
	} {
		code, out := c.do("PATCH", lp+"/members/"+hash("ann@acme.io"), map[string]any{"email_address": tt.to, "merge_fields": map[string]any{"FNAME": "X"}})
		text := ""
		if out != nil {
			text, _ = out["detail"].(string)
			if errs, ok := out["errors"].([]any); ok && len(errs) > 0 {
				text += " " + errs[0].(map[string]any)["message"].(string)
			}
		}
		if code != 400 || out["title"] != tt.title || !strings.Contains(text, tt.want) {
			t.Errorf("change to %s: %d %v", tt.to, code, out)
		}
	}
	if ct, err := c.s.Contact(id, "ann@acme.io"); err != nil || ct.MergeFields["FNAME"] != "" {
		t.Errorf("refused changes changed the contact: %+v %v", ct, err)
	}
	// PUT to an unknown hash with another address is still refused.
	if code, _ := c.do("PUT", lp+"/members/"+hash("nobody@acme.io"), map[string]any{"email_address": "x@acme.io", "status_if_new": "subscribed"}); code != 400 {
		t.Errorf("PUT with a mismatched address: %d", code)
	}
	if code, _ := c.do("PATCH", lp+"/members/"+hash("nobody@acme.io"), map[string]any{"email_address": "x@acme.io"}); code != 404 {
		t.Errorf("PATCH of an unknown member: %d", code)
	}
}
