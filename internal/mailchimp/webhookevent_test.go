package mailchimp

import (
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/emailaddr"
)

func readSample(t testing.TB, name string) url.Values {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "webhooks", name+".form"))
	if err != nil {
		t.Fatal(err)
	}
	form, err := url.ParseQuery(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return form
}

// TestParseWebhookSamples reads Mailchimp's documented payloads.
func TestParseWebhookSamples(t *testing.T) {
	fired := func(s string) time.Time {
		v, _ := time.Parse("2006-01-02 15:04:05", s)
		return v
	}
	tests := []struct {
		name string
		want WebhookEvent
	}{
		{"subscribe", WebhookEvent{Type: EventSubscribe, FiredAt: fired("2009-03-26 21:35:57"), ListID: "a6b5da1054", ID: "8a25ff1d98",
			Email: "api@mailchimp.com", EmailType: "html", IPOpt: "10.20.10.30", IPSignup: "10.20.10.30",
			Merges: map[string]string{"EMAIL": "api@mailchimp.com", "FNAME": "Mailchimp", "LNAME": "API", "INTERESTS": "Group1,Group2"}}},
		{"unsubscribe", WebhookEvent{Type: EventUnsubscribe, FiredAt: fired("2009-03-26 21:40:57"), ListID: "a6b5da1054", ID: "8a25ff1d98",
			Email: "api+unsub@mailchimp.com", EmailType: "html", IPOpt: "10.20.10.30", Action: "unsub", Reason: "manual", CampaignID: "cb398d21d2",
			Merges: map[string]string{"EMAIL": "api+unsub@mailchimp.com", "FNAME": "Mailchimp", "LNAME": "API", "INTERESTS": "Group1,Group2"}}},
		{"unsubscribe-delete", WebhookEvent{Type: EventUnsubscribe, FiredAt: fired("2009-03-26 21:41:12"), ListID: "a6b5da1054", ID: "8a25ff1d98",
			Email: "api+del@mailchimp.com", EmailType: "html", IPOpt: "10.20.10.30", Action: "delete", Reason: "manual",
			Merges: map[string]string{"EMAIL": "api+del@mailchimp.com"}}},
		{"profile", WebhookEvent{Type: EventProfile, FiredAt: fired("2009-03-26 21:31:21"), ListID: "a6b5da1054", ID: "8a25ff1d98",
			Email: "api@mailchimp.com", EmailType: "html", IPOpt: "10.20.10.30",
			Merges: map[string]string{"EMAIL": "api@mailchimp.com", "FNAME": "Mailchimp", "LNAME": "API", "INTERESTS": "Group1,Group2",
				"ADDRESS.addr1": "675 Ponce de Leon Ave NE", "ADDRESS.city": "Atlanta", "ADDRESS.country": "US"}}},
		{"upemail", WebhookEvent{Type: EventUpemail, FiredAt: fired("2009-03-26 22:15:09"), ListID: "a6b5da1054",
			NewID: "51da8c3259", NewEmail: "api+new@mailchimp.com", OldEmail: "api+old@mailchimp.com"}},
		{"cleaned", WebhookEvent{Type: EventCleaned, FiredAt: fired("2009-03-26 22:01:00"), ListID: "a6b5da1054",
			Email: "api+cleaned@mailchimp.com", Reason: "hard", CampaignID: "4fjk2ma9xd"}},
		{"cleaned-abuse", WebhookEvent{Type: EventCleaned, FiredAt: fired("2009-03-26 22:02:00"), ListID: "a6b5da1054",
			Email: "api+abuse@mailchimp.com", Reason: "abuse", CampaignID: "4fjk2ma9xd"}},
		{"campaign", WebhookEvent{Type: EventCampaign, FiredAt: fired("2009-03-26 21:31:21"), ListID: "a6b5da1054", ID: "5aa2102003"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := readSample(t, tt.name)
			got, err := ParseWebhook(form)
			if err != nil {
				t.Fatal(err)
			}
			if got.FiredAt.Location() != time.UTC {
				t.Errorf("FiredAt %v is not UTC", got.FiredAt)
			}
			if !reflect.DeepEqual(got.Raw, form) {
				t.Errorf("Raw = %v, want the form", got.Raw)
			}
			got.Raw = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseWebhook =\n%+v\nwant\n%+v", got, tt.want)
			}
			// The form comes back as it was, including keys only in Raw
			// (data[web_id], data[subject]) and empty values.
			got.Raw = form
			if back := EncodeWebhook(got); !reflect.DeepEqual(back, form) {
				t.Errorf("EncodeWebhook(ParseWebhook(form)) =\n%v\nwant\n%v", back, form)
			}
		})
	}
}

// TestEncodeWebhookRoundTrip: what the emulator sends is what segsync reads.
func TestEncodeWebhookRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 5, 13, 4, 5, 0, time.UTC)
	for _, e := range []WebhookEvent{
		{Type: EventSubscribe, FiredAt: at, ListID: "l1", ID: emailaddr.Hash("a@shop.io"), Email: "a@shop.io", EmailType: "html",
			Merges: map[string]string{"EMAIL": "a@shop.io", "FNAME": "Ann & Co", "LNAME": "", "ADDRESS.zip": "10115"}},
		{Type: EventUnsubscribe, FiredAt: at, ListID: "l1", Email: "a+b@shop.io", Action: "unsub", Reason: "manual"},
		{Type: EventUpemail, FiredAt: at, ListID: "l1", OldEmail: "old@shop.io", NewEmail: "new@shop.io", NewID: emailaddr.Hash("new@shop.io")},
		{Type: EventCleaned, FiredAt: at, ListID: "l1", Email: "gone@shop.io", Reason: "hard"},
		{Type: EventCampaign, FiredAt: at, ListID: "l1", ID: "c1"},
	} {
		form := EncodeWebhook(e)
		body := form.Encode()
		back, err := url.ParseQuery(body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseWebhook(back)
		if err != nil {
			t.Fatalf("%s: %v\nbody: %s", e.Type, err, body)
		}
		got.Raw = nil
		if !reflect.DeepEqual(got, e) {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", e.Type, got, e)
		}
	}
}

// TestParseWebhookRefuses: garbage is an error naming the field.
func TestParseWebhookRefuses(t *testing.T) {
	base := readSample(t, "subscribe")
	with := func(edit func(url.Values)) url.Values {
		f := cloneValues(base)
		edit(f)
		return f
	}
	tests := []struct {
		name  string
		form  url.Values
		field string
	}{
		{"empty", url.Values{}, "type"},
		{"unknown type", with(func(f url.Values) { f.Set("type", "subscribed") }), "type"},
		{"type twice", with(func(f url.Values) { f.Add("type", "profile") }), "type"},
		{"no fired_at", with(func(f url.Values) { f.Del("fired_at") }), "fired_at"},
		{"RFC 3339 fired_at", with(func(f url.Values) { f.Set("fired_at", "2009-03-26T21:35:57Z") }), "fired_at"},
		{"no list", with(func(f url.Values) { f.Del("data[list_id]") }), "data[list_id]"},
		{"no email", with(func(f url.Values) { f.Del("data[email]") }), "data[email]"},
		{"not an address", with(func(f url.Values) { f.Set("data[email]", "nobody") }), "data[email]"},
		{"email twice", with(func(f url.Values) { f.Add("data[email]", "x@y.io") }), "data[email]"},
		{"bad merge key", with(func(f url.Values) { f.Set("data[merges]FNAME", "x") }), "merge"},
		{"empty merge tag", with(func(f url.Values) { f.Set("data[merges][]", "x") }), "merge"},
		{"upemail without new_email", with(func(f url.Values) {
			f.Set("type", "upemail")
			f.Set("data[old_email]", "a@b.io")
		}), "data[new_email]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWebhook(tt.form)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
}

// FuzzParseWebhook: any body parses or is refused, never panics; what
// parses encodes and parses again to the same event.
func FuzzParseWebhook(f *testing.F) {
	for _, name := range []string{"subscribe", "unsubscribe", "profile", "upemail", "cleaned", "campaign"} {
		f.Add(readSample(f, name).Encode())
	}
	f.Add("type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data[list_id]=x&data[email]=@&data[merges][A][B][C]=1")
	f.Add("type=upemail&data[merges][[]=1")
	f.Add("%zz=1&type=")
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		e, err := ParseWebhook(form)
		if err != nil {
			return
		}
		if e.ListID == "" || e.FiredAt.IsZero() && form.Get("fired_at") != "0001-01-01 00:00:00" {
			t.Fatalf("accepted without list or time: %q", body)
		}
		again, err := ParseWebhook(EncodeWebhook(e))
		if err != nil {
			t.Fatalf("re-encoded event refused: %v (body %q)", err, body)
		}
		e.Raw, again.Raw = nil, nil
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", e, again)
		}
	})
}
