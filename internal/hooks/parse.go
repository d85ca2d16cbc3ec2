package hooks

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/mailchimp"
)

// event is one webhook delivery.
//
// TODO(consent-emu merge): replace with mailchimp.WebhookEvent and
// mailchimp.ParseWebhook, which branch consent-emu adds to the client
// package (the one home of Mailchimp's formats); this is the minimum the
// receiver needs meanwhile.
type event struct {
	Type                      string
	FiredAt                   time.Time
	ListID                    string
	Email, OldEmail, NewEmail string
}

// parseEvent reads Mailchimp's form: type, fired_at ("2009-03-26
// 21:35:57", UTC) and data[…].
func parseEvent(form url.Values) (event, error) {
	ev := event{Type: form.Get("type"), ListID: form.Get("data[list_id]")}
	if ev.Type == "" {
		return ev, errors.New("no type")
	}
	t, err := time.Parse("2006-01-02 15:04:05", form.Get("fired_at"))
	if err != nil {
		return ev, fmt.Errorf("fired_at %q is not a time", form.Get("fired_at"))
	}
	ev.FiredAt = t.UTC()
	switch ev.Type {
	case "upemail":
		ev.OldEmail, ev.NewEmail = strings.TrimSpace(form.Get("data[old_email]")), strings.TrimSpace(form.Get("data[new_email]"))
		if !mailchimp.PlausibleEmail(ev.OldEmail) || !mailchimp.PlausibleEmail(ev.NewEmail) {
			return ev, errors.New("upemail without old_email and new_email")
		}
	case "campaign":
	default:
		ev.Email = strings.TrimSpace(form.Get("data[email]"))
		if !mailchimp.PlausibleEmail(ev.Email) {
			return ev, errors.New("no data[email]")
		}
	}
	return ev, nil
}
