package hooks_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/hooks"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/mailchimp/emulator/emulatortest"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

type oneClient struct{ mc *mailchimp.Client }

func (c oneClient) ClientFor(context.Context, int64) (*mailchimp.Client, error) { return c.mc, nil }

// receiverHandler answers Mailchimp's validation GET as segsync's API does
// (package httpapi serves the same two calls of the Receiver).
func receiverHandler(rc *hooks.Receiver) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aud, err := rc.Check(r.Context(), strings.TrimPrefix(r.URL.Path, "/hooks/mailchimp/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodPost {
			_ = r.ParseForm()
			if err := rc.Deliver(r.Context(), aud, r.PostForm); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
	})
}

// TestRegistrar: saving registers the export's webhook once (a second
// Ensure finds it), a webhook removed in Mailchimp is made again, one left
// under an old public URL is replaced, moving the export to another
// audience and deleting it remove it, and without a public URL nothing is
// registered at all.
func TestRegistrar(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		srv := emulatortest.Start(t, emulator.Options{})
		listA, _ := srv.CreateList(srv.Key(), "A")
		listB, _ := srv.CreateList(srv.Key(), "B")
		mc, err := mailchimp.New(mailchimp.Config{APIKey: srv.Key(), BaseURL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		conn := int64(1)
		exp := store.Export{Name: "x", ConnectionID: &conn, AudienceID: listA, Mapping: store.Mapping{Email: "email"},
			StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
		if err := db.CreateExport(ctx, &exp); err != nil {
			t.Fatal(err)
		}
		rc := &hooks.Receiver{Store: db}
		ts := httptest.NewServer(receiverHandler(rc))
		t.Cleanup(ts.Close)
		hooksOn := func(list string) []emulator.Webhook {
			t.Helper()
			all, err := srv.Webhooks(list)
			if err != nil {
				t.Fatal(err)
			}
			return all
		}

		if ev, src := strings.Join(hooks.Names(hooks.Events), ","), strings.Join(hooks.Names(hooks.Sources), ","); ev != "cleaned,profile,subscribe,unsubscribe,upemail" || src != "admin,user" {
			t.Errorf("names: events %s, sources %s", ev, src)
		}

		off := &hooks.Registrar{Receiver: rc, Clients: oneClient{mc}}
		if err := off.Ensure(ctx, exp); err != nil || len(hooksOn(listA)) != 0 {
			t.Fatalf("without a public URL: %v, %+v", err, hooksOn(listA))
		}

		rg := &hooks.Registrar{Receiver: rc, Clients: oneClient{mc}, PublicURL: ts.URL + "/"}
		for range 2 {
			if err := rg.Ensure(ctx, exp); err != nil {
				t.Fatal(err)
			}
		}
		want, _ := rc.URLFor(ctx, ts.URL, exp.ID)
		got := hooksOn(listA)
		if len(got) != 1 || got[0].URL != want {
			t.Fatalf("after two saves: %+v, want one at %s", got, want)
		}
		if h := got[0]; !h.Events["unsubscribe"] || !h.Events["upemail"] || !h.Events["cleaned"] || h.Events["campaign"] ||
			!h.Sources["user"] || !h.Sources["admin"] || h.Sources["api"] {
			t.Errorf("events/sources: %+v", h)
		}

		// Someone deletes it in Mailchimp: the next Ensure (before a run) makes it again.
		if err := mc.DeleteWebhook(ctx, listA, got[0].ID); err != nil {
			t.Fatal(err)
		}
		if err := rg.Ensure(ctx, exp); err != nil || len(hooksOn(listA)) != 1 {
			t.Fatalf("re-registration: %v, %+v", err, hooksOn(listA))
		}

		// segsync moved: the webhook under the old public URL is replaced.
		ts2 := httptest.NewServer(receiverHandler(rc))
		t.Cleanup(ts2.Close)
		moved := &hooks.Registrar{Receiver: rc, Clients: oneClient{mc}, PublicURL: ts2.URL}
		if err := moved.Ensure(ctx, exp); err != nil {
			t.Fatal(err)
		}
		if got := hooksOn(listA); len(got) != 1 || !strings.HasPrefix(got[0].URL, ts2.URL+"/hooks/mailchimp/") {
			t.Fatalf("after moving: %+v", got)
		}

		// Another tool's webhook on the audience is left alone.
		other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		t.Cleanup(other.Close)
		if _, err := mc.CreateWebhook(ctx, listA, mailchimp.Webhook{URL: other.URL + "/crm", Events: hooks.Events, Sources: hooks.Sources}); err != nil {
			t.Fatal(err)
		}

		// The export moves to audience B: A's webhook goes, B gets one.
		if err := moved.Remove(ctx, exp); err != nil {
			t.Fatal(err)
		}
		exp.AudienceID = listB
		if err := moved.Ensure(ctx, exp); err != nil {
			t.Fatal(err)
		}
		if a, b := hooksOn(listA), hooksOn(listB); len(a) != 1 || a[0].URL != other.URL+"/crm" || len(b) != 1 {
			t.Fatalf("after moving audiences: A %+v, B %+v", a, b)
		}

		// Deleted: gone; removing again is no error.
		for range 2 {
			if err := moved.Remove(ctx, exp); err != nil {
				t.Fatal(err)
			}
		}
		if b := hooksOn(listB); len(b) != 0 {
			t.Fatalf("after delete: %+v", b)
		}

		// A public URL Mailchimp cannot reach: a clear error naming it.
		ts2.Close()
		err = moved.Ensure(ctx, exp)
		if err == nil || !strings.Contains(err.Error(), "could not reach "+ts2.URL) {
			t.Fatalf("unreachable public URL: %v", err)
		}
	})
}
