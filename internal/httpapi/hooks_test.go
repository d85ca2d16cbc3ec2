package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/hooks"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/mailchimp/emulator/emulatortest"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/syncer"
)

// TestMailchimpWebhooks: the receiver at the edges: GET validation, a
// wrong secret, garbage, an unknown address and audience (ignored and
// counted), events replayed out of order (the newest fired_at wins), and
// an address change recorded on the synced state.
func TestMailchimpWebhooks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.UpsertProfiles(ctx, []store.ProfilePatch{{CustomerID: "c1", Attrs: `{"email":"ann@shop.io"}`}}); err != nil {
			t.Fatal(err)
		}
		conn := int64(1)
		exp := store.Export{Name: "x", ConnectionID: &conn, AudienceID: "aud1", Mapping: store.Mapping{Email: "email"},
			StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
		if err := db.CreateExport(ctx, &exp); err != nil {
			t.Fatal(err)
		}
		h := emailaddr.Hash("ann@shop.io")
		if err := db.ApplySynced(ctx, exp.ID, []store.SyncedChange{{Hash: h, Set: &store.Synced{Hash: h, Email: "ann@shop.io",
			CustomerID: "c1", InAudience: true, InExport: true, Status: "subscribed"}}}); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		rc := &hooks.Receiver{Store: db, Metrics: hooks.NewMetrics(reg)}
		ts := httptest.NewServer(New(Deps{Store: db, Loopback: true, Hooks: rc}).Handler())
		t.Cleanup(ts.Close)
		hookURL, err := rc.URLFor(ctx, ts.URL, exp.ID)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := http.Get(ts.URL + "/api/v1/exports/999/webhook"); err != nil || resp.StatusCode != 404 {
			t.Errorf("webhook of an unknown export: %v %v", resp, err)
		}
		post := func(u string, form url.Values) int {
			resp, err := http.PostForm(u, form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		event := func(typ, email, fired string) url.Values {
			return url.Values{"type": {typ}, "fired_at": {fired}, "data[email]": {email}, "data[list_id]": {"aud1"}}
		}
		if resp, err := http.Get(hookURL); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET validation: %v %v", resp, err)
		}
		if again, _ := rc.URLFor(ctx, ts.URL, exp.ID); again != hookURL {
			t.Errorf("the URL changed: %s, %s", hookURL, again)
		}
		wrong := hookURL[:len(hookURL)-4] + "0000"
		if st := post(wrong, event("unsubscribe", "ann@shop.io", "2026-01-02 10:00:00")); st != 404 {
			t.Errorf("wrong secret: %d", st)
		}
		if st := post(ts.URL+"/hooks/mailchimp/nonsense", nil); st != 404 {
			t.Errorf("malformed secret: %d", st)
		}
		for _, bad := range []url.Values{{}, {"type": {"unsubscribe"}, "fired_at": {"yesterday"}}, event("unsubscribe", "not an address", "2026-01-02 10:00:00")} {
			if st := post(hookURL, bad); st != 400 {
				t.Errorf("garbage %v: %d", bad, st)
			}
		}
		big := url.Values{"type": {"profile"}, "x": {strings.Repeat("a", hooks.MaxBody)}}
		if st := post(hookURL, big); st != 400 {
			t.Errorf("oversized body: %d", st)
		}
		if st := post(hookURL, event("unsubscribe", "nobody@shop.io", "2026-01-02 10:00:00")); st != 200 {
			t.Errorf("unknown address: %d", st)
		}
		other := event("unsubscribe", "ann@shop.io", "2026-01-02 10:00:00")
		other.Set("data[list_id]", "aud2")
		if st := post(hookURL, other); st != 200 {
			t.Errorf("other audience: %d", st)
		}
		// Newest first, then an older event replayed: the newest wins.
		if st := post(hookURL, event("unsubscribe", "ann@shop.io", "2026-01-02 10:00:00")); st != 200 {
			t.Errorf("unsubscribe: %d", st)
		}
		if st := post(hookURL, event("subscribe", "ANN@shop.io", "2026-01-01 09:00:00")); st != 200 {
			t.Errorf("older subscribe: %d", st)
		}
		p, _ := db.GetProfile(ctx, "c1")
		var attrs map[string]any
		_ = json.Unmarshal(p.Attrs, &attrs)
		if attrs[attrjson.StatusAttr("aud1")] != "unsubscribed" || attrs[attrjson.StatusChangedAttr("aud1")] != "2026-01-02T10:00:00Z" {
			t.Errorf("profile after the events: %v", attrs)
		}
		var status string
		_ = db.StreamSynced(ctx, exp.ID, func(s store.Synced) error { status = s.Status; return nil })
		if status != "unsubscribed" {
			t.Errorf("synced status %q", status)
		}
		if n := counterValue(rc.Metrics.Events().WithLabelValues("unsubscribe", "ignored_unknown")); n != 2 {
			t.Errorf("ignored unknown: %v", n)
		}
		if n := counterValue(rc.Metrics.Events().WithLabelValues("subscribe", "stale")); n != 1 {
			t.Errorf("stale: %v", n)
		}
		// An address changed in Mailchimp: the synced row follows it.
		up := url.Values{"type": {"upemail"}, "fired_at": {"2026-01-03 10:00:00"}, "data[list_id]": {"aud1"},
			"data[old_email]": {"ann@shop.io"}, "data[new_email]": {"ann@new.io"}}
		if st := post(hookURL, up); st != 200 {
			t.Errorf("upemail: %d", st)
		}
		var rows []store.Synced
		_ = db.StreamSynced(ctx, exp.ID, func(s store.Synced) error { rows = append(rows, s); return nil })
		if len(rows) != 1 || rows[0].Email != "ann@new.io" || rows[0].Hash != emailaddr.Hash("ann@new.io") || rows[0].CustomerID != "c1" {
			t.Errorf("synced after upemail: %+v", rows)
		}
	})
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestWebhookFromEmulator: end to end, offline: a run sends a contact, the
// export's webhook is registered on the emulator's audience, the person
// unsubscribes in "Mailchimp", and the emulator's delivery shows on the
// profile within seconds.
func TestWebhookFromEmulator(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		srv := emulatortest.Start(t, emulator.Options{WebhookRetryDelay: 10 * time.Millisecond})
		list, err := srv.CreateList(srv.Key(), "Newsletter")
		if err != nil {
			t.Fatal(err)
		}
		mc, err := mailchimp.New(mailchimp.Config{APIKey: srv.Key(), BaseURL: srv.URL, Limiter: mailchimp.NewLocalLimiter(10)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.UpsertProfiles(ctx, []store.ProfilePatch{{CustomerID: "c1", Attrs: `{"email":"ann@shop.io","tier":"gold"}`}}); err != nil {
			t.Fatal(err)
		}
		rule, err := segment.Parse([]byte(`{"attribute":"tier","op":"eq","value":"gold"}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		seg := store.Segment{Name: "Gold", Rule: rule}
		if err := db.CreateSegment(ctx, &seg); err != nil {
			t.Fatal(err)
		}
		conn := int64(1)
		exp := store.Export{Name: "x", ConnectionID: &conn, AudienceID: list, SegmentIDs: []int64{seg.ID}, Mapping: store.Mapping{Email: "email"},
			StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
		if err := db.CreateExport(ctx, &exp); err != nil {
			t.Fatal(err)
		}
		if _, err := (&syncer.Engine{Store: db, Source: db}).Execute(ctx, exp, mc, syncer.Options{}); err != nil {
			t.Fatal(err)
		}
		status := func() string {
			p, _ := db.GetProfile(ctx, "c1")
			var attrs map[string]any
			_ = json.Unmarshal(p.Attrs, &attrs)
			s, _ := attrs[attrjson.StatusAttr(list)].(string)
			return s
		}
		if s := status(); s != "subscribed" {
			t.Fatalf("after the run: %q", s)
		}
		rc := &hooks.Receiver{Store: db}
		ts := httptest.NewServer(New(Deps{Store: db, Loopback: true, Hooks: rc}).Handler())
		t.Cleanup(ts.Close)
		// Registered as segsync does it when --public-url is set: Mailchimp
		// validates the URL with a GET to this server first.
		rg := &hooks.Registrar{Receiver: rc, Clients: oneClient{mc}, PublicURL: ts.URL}
		if err := rg.Ensure(ctx, exp); err != nil {
			t.Fatal(err)
		}
		if err := srv.Unsubscribe(list, "ann@shop.io"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for status() != "unsubscribed" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if s := status(); s != "unsubscribed" {
			t.Errorf("the unsubscribe did not reach the profile: %q; deliveries %+v", s, srv.Deliveries())
		}
	})
}

type oneClient struct{ mc *mailchimp.Client }

func (c oneClient) ClientFor(context.Context, int64) (*mailchimp.Client, error) { return c.mc, nil }
