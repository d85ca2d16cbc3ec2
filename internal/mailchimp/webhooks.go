package mailchimp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// Webhook is an audience (list) webhook: Mailchimp POSTs the audience's
// events, form-encoded, to URL (see WebhookEvent).
type Webhook struct {
	ID      string         `json:"id,omitempty"`
	URL     string         `json:"url"`
	ListID  string         `json:"list_id,omitempty"`
	Events  WebhookEvents  `json:"events"`
	Sources WebhookSources `json:"sources"`
}

// WebhookEvents selects the event types a webhook receives. Every flag is
// sent explicitly on creation: Mailchimp's defaults for omitted flags are
// undocumented.
type WebhookEvents struct {
	Subscribe   bool `json:"subscribe"`
	Unsubscribe bool `json:"unsubscribe"`
	Profile     bool `json:"profile"`
	Cleaned     bool `json:"cleaned"`
	Upemail     bool `json:"upemail"`
	Campaign    bool `json:"campaign"`
}

// WebhookSources selects whose changes a webhook hears about: the
// recipient's own (User: unsubscribe links, signup and preference forms,
// bounces), an account user's in the web app (Admin), or API calls (API).
// Campaign events ignore sources.
type WebhookSources struct {
	User  bool `json:"user"`
	Admin bool `json:"admin"`
	API   bool `json:"api"`
}

func webhooksPath(listID string) string { return listPath(listID) + "/webhooks" }

// ListWebhooks returns the audience's webhooks.
func (c *Client) ListWebhooks(ctx context.Context, listID string) ([]Webhook, error) {
	var out struct {
		Webhooks []Webhook `json:"webhooks"`
	}
	q := url.Values{"exclude_fields": {"webhooks._links,_links"}}
	if err := c.do(ctx, request{op: "GET /lists/{list_id}/webhooks", method: http.MethodGet,
		path: webhooksPath(listID), query: q, out: &out}); err != nil {
		return nil, err
	}
	return out.Webhooks, nil
}

// CreateWebhook registers w.URL on the audience with w's events and
// sources (ID and ListID are ignored). Mailchimp first sends a GET to the
// URL and refuses the webhook (400, see IsWebhookURLRefused) unless it
// answers 200. A creation retried after a lost answer may find its own
// webhook already there; CreateWebhook then returns that one.
func (c *Client) CreateWebhook(ctx context.Context, listID string, w Webhook) (Webhook, error) {
	if strings.TrimSpace(w.URL) == "" {
		return Webhook{}, errors.New("mailchimp: a webhook needs a URL")
	}
	body := struct {
		URL     string         `json:"url"`
		Events  WebhookEvents  `json:"events"`
		Sources WebhookSources `json:"sources"`
	}{w.URL, w.Events, w.Sources}
	var out Webhook
	var replayed bool
	err := c.do(ctx, request{op: "POST /lists/{list_id}/webhooks", method: http.MethodPost,
		path: webhooksPath(listID), query: url.Values{"exclude_fields": {"_links"}}, body: body, out: &out, replayed: &replayed})
	if err != nil && replayed && statusIs(err, http.StatusBadRequest) {
		// The first attempt may have created it: the retry then hears
		// that the URL is taken.
		if all, lerr := c.ListWebhooks(ctx, listID); lerr == nil {
			for _, h := range all {
				if h.URL == w.URL && h.Events == w.Events && h.Sources == w.Sources {
					return h, nil
				}
			}
		}
	}
	if err != nil {
		return Webhook{}, err
	}
	return out, nil
}

// DeleteWebhook removes a webhook; one that is already gone (404) is not
// an error.
func (c *Client) DeleteWebhook(ctx context.Context, listID, webhookID string) error {
	err := c.do(ctx, request{op: "DELETE /lists/{list_id}/webhooks/{webhook_id}", method: http.MethodDelete,
		path: webhooksPath(listID) + "/" + url.PathEscape(webhookID)})
	if IsNotFound(err) {
		return nil
	}
	return err
}

// IsWebhookURLRefused reports Mailchimp refusing a webhook URL on
// creation: it did not answer the validation GET with 200, or it is not a
// valid URL.
func IsWebhookURLRefused(err error) bool {
	e, ok := AsError(err)
	if !ok || e.Status != http.StatusBadRequest {
		return false
	}
	if strings.Contains(strings.ToLower(e.Detail), "verify the url") {
		return true
	}
	for _, f := range e.Fields {
		if f.Field == "url" && strings.Contains(strings.ToLower(f.Message), "invalid url") {
			return true
		}
	}
	return false
}

// ChangeEmail changes the address of the member at oldEmail to newEmail
// (PATCH /lists/{list_id}/members/{hash(oldEmail)} {"email_address":
// newEmail}) and returns the member as Mailchimp answers: its id is now the
// subscriber hash of newEmail; status, tags, merge fields and history are
// the member's own. A newEmail that already is a member of the audience is
// refused (IsEmailExists) and changes nothing; an unknown oldEmail is
// IsNotFound.
//
// Safe to retry: when an attempt whose answer was lost did the change, the
// repeated PATCH finds the old hash gone (404). ChangeEmail then looks up
// newEmail and returns that member: the old address vanished and the new
// one exists, which a refused change (the old one stays) or a missing
// member (the new one would not exist either, barring a concurrent
// creation) cannot produce.
func (c *Client) ChangeEmail(ctx context.Context, listID, oldEmail, newEmail string) (Member, error) {
	if strings.TrimSpace(oldEmail) == "" || strings.TrimSpace(newEmail) == "" {
		return Member{}, errors.New("mailchimp: changing an address needs the old and the new one")
	}
	body := struct {
		EmailAddress string `json:"email_address"`
	}{newEmail}
	var out Member
	var replayed bool
	err := c.do(ctx, request{op: "PATCH /lists/{list_id}/members/{hash}", method: http.MethodPatch,
		path: memberPath(listID, oldEmail), query: url.Values{"exclude_fields": {"_links"}}, body: body, out: &out, replayed: &replayed})
	if err != nil && replayed && IsNotFound(err) {
		m, gerr := c.GetMember(ctx, listID, newEmail)
		if gerr == nil {
			return *m, nil
		}
		if !IsNotFound(gerr) {
			return Member{}, gerr
		}
	}
	if err != nil {
		return Member{}, err
	}
	return out, nil
}

// IsEmailExists reports Mailchimp refusing an address change because the
// new address already is a member of the audience (400 Invalid Resource,
// "… is already in this list with a status of …").
func IsEmailExists(err error) bool {
	e, ok := AsError(err)
	if !ok || e.Status != http.StatusBadRequest {
		return false
	}
	if strings.Contains(strings.ToLower(e.Detail), "is already in this list") {
		return true
	}
	for _, f := range e.Fields {
		if strings.Contains(strings.ToLower(f.Message), "is already in this list") {
			return true
		}
	}
	return false
}
