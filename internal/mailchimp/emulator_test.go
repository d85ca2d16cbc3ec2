package mailchimp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
)

const emuKey = "00112233445566778899aabbccddeeff-us7"

// counting is a mailchimp.Metrics that counts answers by status and
// retries by reason.
type counting struct {
	mu      sync.Mutex
	status  map[int]int
	retries map[string]int
}

func newCounting() *counting { return &counting{status: map[int]int{}, retries: map[string]int{}} }

func (m *counting) ObserveRequest(_ string, status int, _ time.Duration) {
	m.mu.Lock()
	m.status[status]++
	m.mu.Unlock()
}

func (m *counting) ObserveRetry(_, reason string) {
	m.mu.Lock()
	m.retries[reason]++
	m.mu.Unlock()
}

func (m *counting) ObserveLimiterWait(time.Duration) {}

func (m *counting) get(status int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status[status]
}

func (m *counting) retried() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, v := range m.retries {
		n += v
	}
	return n
}

// peakHandler records the most API requests it had in flight at once.
type peakHandler struct {
	next     http.Handler
	inFlight atomic.Int32
	peak     atomic.Int32
}

func (p *peakHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	for {
		old := p.peak.Load()
		if n <= old || p.peak.CompareAndSwap(old, n) {
			break
		}
	}
	p.next.ServeHTTP(w, r)
}

func startEmulator(t *testing.T, opts emulator.Options) (*emulator.Emulator, *peakHandler, string) {
	t.Helper()
	if len(opts.APIKeys) == 0 {
		opts.APIKeys = []string{emuKey}
	}
	em := emulator.New(opts)
	t.Cleanup(em.Close)
	ph := &peakHandler{next: em.Handler()}
	srv := httptest.NewServer(ph)
	t.Cleanup(srv.Close)
	return em, ph, srv.URL
}

func newClient(t *testing.T, url string, cfg mailchimp.Config) *mailchimp.Client {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = emuKey
	}
	cfg.BaseURL = url + "/3.0"
	if cfg.Limiter == nil {
		cfg.Limiter = mailchimp.NewLocalLimiter(10)
	}
	c, err := mailchimp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testList(name string) mailchimp.ListInput {
	return mailchimp.ListInput{
		Name:               name,
		Contact:            mailchimp.Contact{Company: "Shop", Address1: "1 Main St", City: "Utrecht", State: "UT", Zip: "3511", Country: "NL"},
		PermissionReminder: "You bought something from us.",
		CampaignDefaults:   mailchimp.CampaignDefaults{FromName: "Shop", FromEmail: "news@shop.org", Subject: "News", Language: "en"},
		EmailTypeOption:    false,
	}
}

// control plays a recipient's own action through the emulator's control
// endpoint.
func control(t *testing.T, url, listID, email, action string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/_emulator/lists/"+listID+"/members/"+emailaddr.Hash(email)+"/"+action, nil)
	req.SetBasicAuth("x", emuKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("control %s: %s", action, resp.Status)
	}
}

func mustKind(t *testing.T, err error, kind mailchimp.Kind, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v %s", kind, reason)
	}
	k, r := mailchimp.Classify(err)
	if k != kind || !strings.HasPrefix(r, reason+": ") {
		t.Fatalf("Classify(%v) = %v %q, want %v %s", err, k, r, kind, reason)
	}
}

func TestEmulatorWalkthrough(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, _, url := startEmulator(t, emulator.Options{})
	c := newClient(t, url, mailchimp.Config{})

	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	root, err := c.Root(ctx)
	if err != nil || root.AccountID == "" || root.AccountName == "" {
		t.Fatalf("root %+v %v", root, err)
	}
	bad := newClient(t, url, mailchimp.Config{APIKey: "ffffffffffffffffffffffffffffffff-us7"})
	if err := bad.Ping(ctx); !mailchimp.IsAuth(err) {
		t.Fatalf("wrong key: %v", err)
	} else if strings.Contains(err.Error(), "ffffffff") {
		t.Fatalf("error leaks the key: %v", err)
	}

	list, err := c.CreateList(ctx, testList("Customers"))
	if err != nil {
		t.Fatal(err)
	}
	lists, err := c.Lists(ctx)
	if err != nil || len(lists) != 1 || lists[0].ID != list.ID {
		t.Fatalf("lists %+v %v", lists, err)
	}
	if _, err := c.GetList(ctx, "nope"); !mailchimp.IsNotFound(err) {
		t.Fatalf("unknown list: %v", err)
	}

	if _, err := c.CreateMergeField(ctx, list.ID, mailchimp.MergeField{Tag: "LTV", Name: "Lifetime value", Type: mailchimp.MergeNumber}); err != nil {
		t.Fatal(err)
	}
	fields, err := c.MergeFields(ctx, list.ID)
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, f := range fields {
		tags[f.Tag] = f.Type
	}
	if tags["LTV"] != "number" || tags["FNAME"] != "text" {
		t.Fatalf("merge fields %v", tags)
	}

	// Batch subscribe: two new contacts, one fake address.
	res, err := c.BatchSubscribe(ctx, list.ID, []mailchimp.BatchMember{
		{EmailAddress: "ann@shop.org", Status: mailchimp.StatusSubscribed, MergeFields: map[string]any{"FNAME": "Ann", "LTV": 12.5}},
		{EmailAddress: "bob@shop.org", Status: mailchimp.StatusSubscribed},
		{EmailAddress: "fake@example.com", Status: mailchimp.StatusSubscribed},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalCreated != 2 || res.ErrorCount != 1 || len(res.NewMembers) != 2 || res.NewMembers[0].Status != mailchimp.StatusSubscribed {
		t.Fatalf("batch %+v", res)
	}
	if k, r := mailchimp.ClassifyBatchError(res.Errors[0]); k != mailchimp.Permanent || !strings.HasPrefix(r, mailchimp.ReasonInvalidAddress) {
		t.Fatalf("fake address classified %v %s", k, r)
	}
	res, err = c.BatchSubscribe(ctx, list.ID, []mailchimp.BatchMember{{EmailAddress: "ann@shop.org", Status: mailchimp.StatusSubscribed}}, false)
	if err != nil || res.ErrorCount != 1 || res.Errors[0].ErrorCode != "ERROR_CONTACT_EXISTS" {
		t.Fatalf("existing contact: %+v %v", res, err)
	}
	if k, r := mailchimp.ClassifyBatchError(res.Errors[0]); k != mailchimp.Permanent || !strings.HasPrefix(r, mailchimp.ReasonContactExists) {
		t.Fatalf("exists classified %v %s", k, r)
	}

	// Upsert without status never changes it; new contacts get status_if_new.
	m, err := c.PutMember(ctx, list.ID, mailchimp.MemberInput{EmailAddress: "Cid@Shop.org", StatusIfNew: mailchimp.StatusPending,
		MergeFields: map[string]any{"FNAME": "Cid"}})
	if err != nil || m.Status != mailchimp.StatusPending || m.ID != emailaddr.Hash("cid@shop.org") {
		t.Fatalf("put new: %+v %v", m, err)
	}
	m, err = c.GetMember(ctx, list.ID, "CID@shop.org")
	if err != nil || m.MergeFields["FNAME"] != "Cid" {
		t.Fatalf("get: %+v %v", m, err)
	}

	// Paging: one member per page.
	var seen []string
	err = c.ListMembers(ctx, list.ID, mailchimp.MemberQuery{Count: 1, Fields: []string{"members.email_address", "members.status"}},
		func(ms []mailchimp.Member) error {
			if len(ms) != 1 {
				t.Errorf("page of %d", len(ms))
			}
			for _, m := range ms {
				seen = append(seen, m.EmailAddress)
			}
			return nil
		})
	if err != nil || len(seen) != 3 {
		t.Fatalf("listed %v %v", seen, err)
	}
	var pending []string
	err = c.ListMembers(ctx, list.ID, mailchimp.MemberQuery{Status: mailchimp.StatusPending}, func(ms []mailchimp.Member) error {
		for _, m := range ms {
			pending = append(pending, m.EmailAddress)
		}
		return nil
	})
	if err != nil || len(pending) != 1 || emailaddr.Normalize(pending[0]) != "cid@shop.org" {
		t.Fatalf("pending %v %v", pending, err)
	}

	// Refusals, classified.
	_, err = c.PatchMember(ctx, list.ID, "ann@shop.org", mailchimp.MemberInput{MergeFields: map[string]any{"LTV": "lots"}})
	mustKind(t, err, mailchimp.Permanent, mailchimp.ReasonInvalidMergeValue)
	_, err = c.AddMember(ctx, list.ID, mailchimp.MemberInput{EmailAddress: "ann@shop.org", Status: mailchimp.StatusSubscribed})
	if !mailchimp.IsMemberExists(err) {
		t.Fatalf("add existing: %v", err)
	}
	control(t, url, list.ID, "bob@shop.org", "unsubscribe")
	_, err = c.PutMember(ctx, list.ID, mailchimp.MemberInput{EmailAddress: "bob@shop.org", StatusIfNew: mailchimp.StatusSubscribed, Status: mailchimp.StatusSubscribed})
	if !mailchimp.IsComplianceState(err) {
		t.Fatalf("resubscribe: %v", err)
	}
	mustKind(t, err, mailchimp.Permanent, mailchimp.ReasonComplianceState)
	_, err = c.AddMember(ctx, list.ID, mailchimp.MemberInput{EmailAddress: "nobody@example.com", Status: mailchimp.StatusSubscribed})
	mustKind(t, err, mailchimp.Permanent, mailchimp.ReasonInvalidAddress)

	// Tags per member and in bulk through a static segment.
	if err := c.UpdateMemberTags(ctx, list.ID, "ann@shop.org", []mailchimp.TagUpdate{{Name: "VIP", Active: true}}); err != nil {
		t.Fatal(err)
	}
	mt, err := c.MemberTags(ctx, list.ID, "ann@shop.org")
	if err != nil || len(mt) != 1 || mt[0].Name != "VIP" {
		t.Fatalf("member tags %+v %v", mt, err)
	}
	seg, err := c.CreateStaticSegment(ctx, list.ID, "Gold")
	if err != nil || seg.ID == 0 {
		t.Fatalf("segment %+v %v", seg, err)
	}
	up, err := c.UpdateSegmentMembers(ctx, list.ID, seg.ID, []string{"ann@shop.org", "cid@shop.org", "stranger@shop.org"}, nil)
	if err != nil || up.TotalAdded != 2 {
		t.Fatalf("segment add %+v %v", up, err)
	}
	up, err = c.UpdateSegmentMembers(ctx, list.ID, seg.ID, nil, []string{"cid@shop.org"})
	if err != nil || up.TotalRemoved != 1 {
		t.Fatalf("segment remove %+v %v", up, err)
	}
	var inSeg []string
	if err := c.SegmentMembers(ctx, list.ID, seg.ID, func(ms []mailchimp.Member) error {
		for _, m := range ms {
			inSeg = append(inSeg, m.EmailAddress)
		}
		return nil
	}); err != nil || len(inSeg) != 1 || inSeg[0] != "ann@shop.org" {
		t.Fatalf("segment members %v %v", inSeg, err)
	}
	segs, err := c.ListSegments(ctx, list.ID, mailchimp.SegmentStatic)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range segs {
		names[s.Name] = true
	}
	if !names["Gold"] || !names["VIP"] {
		t.Fatalf("static segments %v", names)
	}

	// Archive, restore by upsert, permanent delete, forgotten.
	if err := c.ArchiveMember(ctx, list.ID, "bob@shop.org"); err != nil {
		t.Fatal(err)
	}
	if m, err := c.GetMember(ctx, list.ID, "bob@shop.org"); err != nil || m.Status != mailchimp.StatusArchived {
		t.Fatalf("archived: %+v %v", m, err)
	}
	mustKind(t, c.ArchiveMember(ctx, list.ID, "cid@shop.org"), mailchimp.Permanent, mailchimp.ReasonNotAllowed) // pending
	if err := c.DeletePermanent(ctx, list.ID, "ann@shop.org"); err != nil {
		t.Fatal(err)
	}
	_, err = c.PutMember(ctx, list.ID, mailchimp.MemberInput{EmailAddress: "ann@shop.org", StatusIfNew: mailchimp.StatusSubscribed})
	if !mailchimp.IsForgotten(err) {
		t.Fatalf("re-add forgotten: %v", err)
	}
	mustKind(t, err, mailchimp.Permanent, mailchimp.ReasonForgotten)

	// since_last_changed narrows the listing to later changes.
	cut := time.Now().Add(time.Second).Truncate(time.Second)
	var changed []mailchimp.Member
	if err := c.ListMembers(ctx, list.ID, mailchimp.MemberQuery{SinceLastChanged: cut}, func(ms []mailchimp.Member) error {
		changed = append(changed, ms...)
		return nil
	}); err != nil || len(changed) != 0 {
		t.Fatalf("since future: %d %v", len(changed), err)
	}
}

// Under injected faults (500, 503, dropped connections, some after the
// change was applied) every call still completes and the audience ends up
// exactly as intended, because the retried calls are idempotent.
func TestEmulatorFailRate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, _, url := startEmulator(t, emulator.Options{FailRate: 0.3, Seed: 42})
	m := newCounting()
	c := newClient(t, url, mailchimp.Config{Metrics: m, MaxRetries: 30,
		RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond})

	list, err := c.CreateList(ctx, testList("Faulty"))
	if err != nil {
		t.Fatal(err)
	}
	seg, err := c.CreateStaticSegment(ctx, list.ID, "Everyone")
	if err != nil {
		t.Fatal(err)
	}
	const batches, per = 8, 100
	var wg sync.WaitGroup
	errs := make(chan error, batches)
	for b := range batches {
		wg.Go(func() {
			members := make([]mailchimp.BatchMember, per)
			emails := make([]string, per)
			for i := range members {
				emails[i] = fmt.Sprintf("p%d-%d@shop.org", b, i)
				members[i] = mailchimp.BatchMember{EmailAddress: emails[i], Status: mailchimp.StatusSubscribed,
					MergeFields: map[string]any{"FNAME": fmt.Sprint("P", b, i)}}
			}
			// update_existing: a replay of an applied batch updates
			// instead of failing with ERROR_CONTACT_EXISTS.
			res, err := c.BatchSubscribe(ctx, list.ID, members, true)
			if err != nil {
				errs <- err
				return
			}
			if res.ErrorCount != 0 || res.TotalCreated+res.TotalUpdated != per {
				errs <- fmt.Errorf("batch %d: %+v", b, res)
				return
			}
			if _, err := c.UpdateSegmentMembers(ctx, list.ID, seg.ID, emails, nil); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Per-contact upserts and merge-field patches, replayed after lost
	// answers, converge too.
	work := make(chan int)
	errs = make(chan error, 100)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				email := fmt.Sprintf("p0-%d@shop.org", i)
				if _, err := c.PutMember(ctx, list.ID, mailchimp.MemberInput{EmailAddress: email, StatusIfNew: mailchimp.StatusSubscribed,
					MergeFields: map[string]any{"LNAME": "Put"}}); err != nil {
					errs <- err
				}
				if _, err := c.PatchMember(ctx, list.ID, email, mailchimp.MemberInput{MergeFields: map[string]any{"FNAME": "Patched"}}); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range per {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	if err := c.ListMembers(ctx, list.ID, mailchimp.MemberQuery{Status: mailchimp.StatusSubscribed, Count: 300}, func(ms []mailchimp.Member) error {
		total += len(ms)
		for _, m := range ms {
			if strings.HasPrefix(m.EmailAddress, "p0-") && (m.MergeFields["FNAME"] != "Patched" || m.MergeFields["LNAME"] != "Put") {
				t.Errorf("%s has merge fields %v", m.EmailAddress, m.MergeFields)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	inSeg := 0
	if err := c.SegmentMembers(ctx, list.ID, seg.ID, func(ms []mailchimp.Member) error { inSeg += len(ms); return nil }); err != nil {
		t.Fatal(err)
	}
	if total != batches*per || inSeg != batches*per {
		t.Errorf("%d subscribed, %d in segment; want %d", total, inSeg, batches*per)
	}
	if m.retried() == 0 || m.get(500)+m.get(503)+m.get(0) == 0 {
		t.Errorf("no faults were retried (status counts %v, retries %v)", m.status, m.retries)
	}
	t.Logf("answers by status %v, retries by reason %v", m.status, m.retries)
}

// The emulator answers 429 beyond MaxConns concurrent requests. A limiter
// above that limit gets 429s and recovers through retries; a limiter at
// the limit never gets one, however many callers there are.
func TestEmulatorMaxConns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		limit      int
		want429    bool
		maxAtLimit bool
	}{
		{"limiter above the account's limit", 10, true, false},
		{"limiter at the account's limit", 3, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			_, ph, url := startEmulator(t, emulator.Options{MaxConns: 3, Latency: 50 * time.Millisecond})
			m := newCounting()
			lim := mailchimp.NewLocalLimiter(tt.limit)
			// Two clients of one account share the limiter, as two runs would.
			a := newClient(t, url, mailchimp.Config{Limiter: lim, Metrics: m, RateLimitRetries: 100,
				RetryBaseDelay: time.Millisecond, RetryMaxDelay: 10 * time.Millisecond, MaxRetryAfter: 10 * time.Millisecond})
			b := newClient(t, url, mailchimp.Config{Limiter: lim, Metrics: m, RateLimitRetries: 100,
				RetryBaseDelay: time.Millisecond, RetryMaxDelay: 10 * time.Millisecond, MaxRetryAfter: 10 * time.Millisecond})
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for i := range 40 {
				c := a
				if i%2 == 1 {
					c = b
				}
				wg.Go(func() { errs <- c.Ping(ctx) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			got429 := m.get(http.StatusTooManyRequests)
			if tt.want429 && got429 == 0 {
				t.Errorf("no 429s with a limiter above the limit (peak %d)", ph.peak.Load())
			}
			if !tt.want429 && got429 != 0 {
				t.Errorf("%d 429s with a limiter at the limit", got429)
			}
			if tt.maxAtLimit && ph.peak.Load() > 3 {
				t.Errorf("peak concurrency %d > 3", ph.peak.Load())
			}
			if m.get(200) != 40 {
				t.Errorf("%d successful answers, want 40", m.get(200))
			}
			t.Logf("peak in flight %d, 429s %d, retries %v", ph.peak.Load(), got429, m.retries)
		})
	}
}

// The OAuth flow end to end: authorize, exchange the code, look up the
// metadata, and call the API with the token at the metadata's endpoint.
func TestEmulatorOAuth(t *testing.T) {
	t.Parallel()
	_, _, url := startEmulator(t, emulator.Options{})
	cfg := mailchimp.OAuthConfig("client-1", "secret-1", url, "http://127.0.0.1:1/oauth/mailchimp/callback")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(cfg.AuthCodeURL("state-1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("state") != "state-1" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize redirect %v %v", loc, err)
	}
	ctx := context.Background()
	tok, err := cfg.Exchange(ctx, loc.Query().Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	md, err := mailchimp.FetchMetadata(ctx, url, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	base, err := md.BaseURL()
	if err != nil || base != url+"/3.0" || md.DC != "us7" || md.AccountName == "" {
		t.Fatalf("metadata %+v base %s %v", md, base, err)
	}
	c, err := mailchimp.New(mailchimp.Config{AccessToken: tok.AccessToken, BaseURL: base, Limiter: mailchimp.NewLocalLimiter(10)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Root(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := mailchimp.FetchMetadata(ctx, url, "not-a-token"); !mailchimp.IsAuth(err) || strings.Contains(err.Error(), "not-a-token") {
		t.Fatalf("bad token: %v", err)
	}
}
