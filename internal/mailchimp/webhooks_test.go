package mailchimp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
)

var fastRetries = mailchimp.Config{RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond, MaxRetries: 10}

// TestWebhooksClient: create (validated by the emulator's GET), list and
// delete, with events and sources as sent.
func TestWebhooksClient(t *testing.T) {
	ctx := context.Background()
	em, _, url := startEmulator(t, emulator.Options{})
	c := newClient(t, url, fastRetries)
	l, err := c.CreateList(ctx, testList("Hooks"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []mailchimp.WebhookEvent
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		ev, err := mailchimp.ParseWebhook(r.PostForm)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}))
	defer hook.Close()

	in := mailchimp.Webhook{URL: hook.URL + "/hooks/mailchimp/s3cret",
		Events:  mailchimp.WebhookEvents{Unsubscribe: true, Cleaned: true, Upemail: true},
		Sources: mailchimp.WebhookSources{User: true, Admin: true, API: true}}
	w, err := c.CreateWebhook(ctx, l.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	if w.ID == "" || w.ListID != l.ID || w.URL != in.URL || w.Events != in.Events || w.Sources != in.Sources {
		t.Fatalf("created %+v", w)
	}
	all, err := c.ListWebhooks(ctx, l.ID)
	if err != nil || len(all) != 1 || all[0] != w {
		t.Fatalf("ListWebhooks = %+v, %v", all, err)
	}
	// A URL that does not answer the validation GET with 200 is refused.
	refusing := httptest.NewServer(http.NotFoundHandler())
	defer refusing.Close()
	_, err = c.CreateWebhook(ctx, l.ID, mailchimp.Webhook{URL: refusing.URL})
	if !mailchimp.IsWebhookURLRefused(err) {
		t.Errorf("refused URL: %v", err)
	}
	if _, err = c.CreateWebhook(ctx, l.ID, mailchimp.Webhook{URL: "ftp://hooks.invalid/x"}); !mailchimp.IsWebhookURLRefused(err) {
		t.Errorf("not an http URL: %v", err)
	}
	// The same URL twice is refused, but not as a refused URL.
	if _, err = c.CreateWebhook(ctx, l.ID, in); err == nil || mailchimp.IsWebhookURLRefused(err) {
		t.Errorf("same URL again: %v", err)
	}

	// Events arrive as segsync parses them.
	if _, err := c.AddMember(ctx, l.ID, mailchimp.MemberInput{EmailAddress: "ann@shop.io", Status: mailchimp.StatusSubscribed}); err != nil {
		t.Fatal(err)
	}
	control(t, url, l.ID, "ann@shop.io", "unsubscribe")
	if _, err := c.ChangeEmail(ctx, l.ID, "ann@shop.io", "ann@new.io"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := em.WaitWebhooks(wctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) != 2 || got[0].Type != mailchimp.EventUnsubscribe || got[0].Email != "ann@shop.io" ||
		got[1].Type != mailchimp.EventUpemail || got[1].OldEmail != "ann@shop.io" || got[1].NewEmail != "ann@new.io" {
		t.Errorf("events %+v", got)
	}
	mu.Unlock()

	if err := c.DeleteWebhook(ctx, l.ID, w.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteWebhook(ctx, l.ID, w.ID); err != nil {
		t.Errorf("deleting a deleted webhook: %v", err)
	}
	if all, err := c.ListWebhooks(ctx, l.ID); err != nil || len(all) != 0 {
		t.Errorf("after delete: %+v %v", all, err)
	}
}

// TestChangeEmail: the member keeps status and tags under its new id; a
// collision and an unknown address are typed errors.
func TestChangeEmail(t *testing.T) {
	ctx := context.Background()
	em, _, url := startEmulator(t, emulator.Options{})
	c := newClient(t, url, fastRetries)
	l, err := c.CreateList(ctx, testList("Moves"))
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Seed(l.ID,
		emulator.SeedContact{Email: "opt@shop.io", Status: "unsubscribed-self", Tags: []string{"segsync"}},
		emulator.SeedContact{Email: "bob@shop.io", Status: "subscribed"},
	); err != nil {
		t.Fatal(err)
	}
	m, err := c.ChangeEmail(ctx, l.ID, "opt@shop.io", "opt@new.io")
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != emailaddr.Hash("opt@new.io") || m.EmailAddress != "opt@new.io" || m.Status != mailchimp.StatusUnsubscribed ||
		len(m.Tags) != 1 || m.Tags[0].Name != "segsync" {
		t.Errorf("moved member %+v", m)
	}
	if _, err := c.GetMember(ctx, l.ID, "opt@shop.io"); !mailchimp.IsNotFound(err) {
		t.Errorf("old address: %v", err)
	}
	_, err = c.ChangeEmail(ctx, l.ID, "opt@new.io", "bob@shop.io")
	if !mailchimp.IsEmailExists(err) || mailchimp.IsNotFound(err) {
		t.Errorf("collision: %v", err)
	}
	mustKind(t, err, mailchimp.Permanent, mailchimp.ReasonContactExists)
	if _, err := c.ChangeEmail(ctx, l.ID, "nobody@shop.io", "x@new.io"); !mailchimp.IsNotFound(err) || mailchimp.IsEmailExists(err) {
		t.Errorf("unknown member: %v", err)
	}
}

// TestChangeEmailReplayed: the answer of a PATCH that did the change is
// lost; the retry finds the old hash gone and ChangeEmail returns the
// moved member instead of failing.
func TestChangeEmailReplayed(t *testing.T) {
	ctx := context.Background()
	em := emulator.New(emulator.Options{APIKeys: []string{emuKey}})
	t.Cleanup(em.Close)
	var patches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && patches.Add(1) == 1 {
			em.Handler().ServeHTTP(httptest.NewRecorder(), r) // applied …
			panic(http.ErrAbortHandler)                       // … and the answer is lost
		}
		em.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, fastRetries)
	l, err := c.CreateList(ctx, testList("Lost"))
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Seed(l.ID, emulator.SeedContact{Email: "ann@shop.io", Status: "unsubscribed-self", Tags: []string{"t"}}); err != nil {
		t.Fatal(err)
	}
	m, err := c.ChangeEmail(ctx, l.ID, "ann@shop.io", "ann@new.io")
	if err != nil {
		t.Fatalf("ChangeEmail after a lost answer: %v", err)
	}
	if patches.Load() != 2 || m.EmailAddress != "ann@new.io" || m.Status != mailchimp.StatusUnsubscribed || len(m.Tags) != 1 {
		t.Errorf("after %d PATCHes: %+v", patches.Load(), m)
	}
	// Without a lost answer a 404 stays an error.
	if _, err := c.ChangeEmail(ctx, l.ID, "ann@shop.io", "ann@other.io"); !mailchimp.IsNotFound(err) {
		t.Errorf("change of a moved address: %v", err)
	}
}

// TestChangeEmailUnderFaults: with the emulator failing a third of the
// requests, half of them after applying the change, every change ends
// done exactly once.
func TestChangeEmailUnderFaults(t *testing.T) {
	ctx := context.Background()
	em, _, url := startEmulator(t, emulator.Options{FailRate: 0.35, Seed: 13})
	c := newClient(t, url, fastRetries)
	var l *mailchimp.List
	var err error
	for range 20 { // the setup calls may fail too
		if l, err = c.CreateList(ctx, testList("Faults")); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		if err := em.Seed(l.ID, emulator.SeedContact{Email: fmt.Sprintf("p%d@old.io", i), Status: "subscribed"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		m, err := c.ChangeEmail(ctx, l.ID, fmt.Sprintf("p%d@old.io", i), fmt.Sprintf("p%d@new.io", i))
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		if m.EmailAddress != fmt.Sprintf("p%d@new.io", i) {
			t.Fatalf("change %d returned %+v", i, m)
		}
	}
	all, err := em.Contacts(l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("%d contacts, want %d", len(all), n)
	}
	for i, ct := range all {
		if ct.Email != fmt.Sprintf("p%d@new.io", i) || ct.Status != "subscribed" {
			t.Errorf("contact %d: %+v", i, ct)
		}
	}
}

// TestCreateWebhookReplayed: a creation whose answer was lost is found
// again instead of failing on the duplicate URL.
func TestCreateWebhookReplayed(t *testing.T) {
	ctx := context.Background()
	em := emulator.New(emulator.Options{APIKeys: []string{emuKey}})
	t.Cleanup(em.Close)
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path != "/3.0/lists" && posts.Add(1) == 1 {
			em.Handler().ServeHTTP(httptest.NewRecorder(), r)
			panic(http.ErrAbortHandler)
		}
		em.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hook.Close()
	c := newClient(t, srv.URL, fastRetries)
	l, err := c.CreateList(ctx, testList("Hook"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.CreateWebhook(ctx, l.ID, mailchimp.Webhook{URL: hook.URL, Events: mailchimp.WebhookEvents{Unsubscribe: true}, Sources: mailchimp.WebhookSources{User: true}})
	if err != nil {
		t.Fatalf("CreateWebhook after a lost answer: %v", err)
	}
	all, _ := c.ListWebhooks(ctx, l.ID)
	if posts.Load() != 2 || len(all) != 1 || all[0].ID != w.ID {
		t.Errorf("after %d POSTs: %+v, created %+v", posts.Load(), all, w)
	}
}
