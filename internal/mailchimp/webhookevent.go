package mailchimp

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Webhook event types.
const (
	EventSubscribe   = "subscribe"
	EventUnsubscribe = "unsubscribe"
	EventProfile     = "profile"
	EventUpemail     = "upemail"
	EventCleaned     = "cleaned"
	EventCampaign    = "campaign"
)

// FiredAtLayout is the layout of a webhook's fired_at ("2009-03-26
// 21:35:57"), in UTC.
const FiredAtLayout = "2006-01-02 15:04:05"

// WebhookEvent is one audience webhook delivery as Mailchimp POSTs it,
// form-encoded (application/x-www-form-urlencoded):
//
//	type=subscribe|unsubscribe|profile|upemail|cleaned|campaign
//	fired_at=2009-03-26 21:35:57
//	data[list_id]=a6b5da1054
//	subscribe, profile:  data[id] data[email] data[email_type] data[ip_opt]
//	                     data[ip_signup] data[merges][EMAIL] data[merges][FNAME] …
//	unsubscribe:         the same, plus data[action] (unsub|delete),
//	                     data[reason] (manual, …) and data[campaign_id]
//	cleaned:             data[email] data[reason] (hard|abuse) data[campaign_id]
//	upemail:             data[new_id] data[new_email] data[old_email]
//	                     (no data[email])
//	campaign:            data[id] (the campaign) data[subject] data[status]
//	                     data[reason] (no address)
//
// Merges holds data[merges][TAG]; nested values (an address, interest
// groupings) are keyed by their path joined with dots, e.g.
// data[merges][ADDRESS][city] is "ADDRESS.city". Raw is the whole form as
// received; fields not mapped above (data[web_id], data[subject], …) are
// only there.
type WebhookEvent struct {
	Type    string
	FiredAt time.Time // UTC, one-second resolution
	ListID  string
	// ID is data[id]: the member's subscriber hash, or the campaign id for
	// a campaign event.
	ID    string
	Email string // data[email]; empty for upemail and campaign
	// OldEmail, NewEmail and NewID (the new subscriber hash) describe an
	// upemail.
	OldEmail, NewEmail, NewID string
	EmailType                 string // html or text
	IPOpt, IPSignup           string
	Reason                    string // unsubscribe: manual, …; cleaned: hard or abuse
	Action                    string // unsubscribe: unsub or delete
	CampaignID                string
	Merges                    map[string]string
	Raw                       url.Values
}

// fields of the form that WebhookEvent maps (everything but merges).
var webhookFields = []struct {
	key string
	get func(*WebhookEvent) *string
}{
	{"data[id]", func(e *WebhookEvent) *string { return &e.ID }},
	{"data[list_id]", func(e *WebhookEvent) *string { return &e.ListID }},
	{"data[email]", func(e *WebhookEvent) *string { return &e.Email }},
	{"data[email_type]", func(e *WebhookEvent) *string { return &e.EmailType }},
	{"data[old_email]", func(e *WebhookEvent) *string { return &e.OldEmail }},
	{"data[new_email]", func(e *WebhookEvent) *string { return &e.NewEmail }},
	{"data[new_id]", func(e *WebhookEvent) *string { return &e.NewID }},
	{"data[ip_opt]", func(e *WebhookEvent) *string { return &e.IPOpt }},
	{"data[ip_signup]", func(e *WebhookEvent) *string { return &e.IPSignup }},
	{"data[reason]", func(e *WebhookEvent) *string { return &e.Reason }},
	{"data[action]", func(e *WebhookEvent) *string { return &e.Action }},
	{"data[campaign_id]", func(e *WebhookEvent) *string { return &e.CampaignID }},
}

const mergesPrefix = "data[merges]"

// ParseWebhook reads one delivery. It is strict: an unknown type, a
// missing list id or address, a fired_at that is not "YYYY-MM-DD
// HH:MM:SS", a key given twice, or a malformed merges key is an error
// naming the field. Values are not trimmed.
func ParseWebhook(form url.Values) (WebhookEvent, error) {
	var e WebhookEvent
	one := func(key string) (string, error) {
		v := form[key]
		switch len(v) {
		case 0:
			return "", nil
		case 1:
			return v[0], nil
		}
		return "", fmt.Errorf("webhook: %s given %d times", key, len(v))
	}
	var err error
	if e.Type, err = one("type"); err != nil {
		return WebhookEvent{}, err
	}
	switch e.Type {
	case EventSubscribe, EventUnsubscribe, EventProfile, EventUpemail, EventCleaned, EventCampaign:
	case "":
		return WebhookEvent{}, fmt.Errorf("webhook: type is missing")
	default:
		return WebhookEvent{}, fmt.Errorf("webhook: type %q is not a Mailchimp event type", clip(e.Type))
	}
	fired, err := one("fired_at")
	if err != nil {
		return WebhookEvent{}, err
	}
	if fired == "" {
		return WebhookEvent{}, fmt.Errorf("webhook: fired_at is missing")
	}
	if e.FiredAt, err = time.ParseInLocation(FiredAtLayout, fired, time.UTC); err != nil {
		return WebhookEvent{}, fmt.Errorf("webhook: fired_at %q is not YYYY-MM-DD HH:MM:SS", clip(fired))
	}
	for _, f := range webhookFields {
		if *f.get(&e), err = one(f.key); err != nil {
			return WebhookEvent{}, err
		}
	}
	for key, vals := range form {
		rest, ok := strings.CutPrefix(key, mergesPrefix)
		if !ok {
			continue
		}
		path, ok := mergePath(rest)
		if !ok {
			return WebhookEvent{}, fmt.Errorf("webhook: malformed merge field key %q", clip(key))
		}
		if len(vals) != 1 {
			return WebhookEvent{}, fmt.Errorf("webhook: %s given %d times", clip(key), len(vals))
		}
		if e.Merges == nil {
			e.Merges = map[string]string{}
		}
		e.Merges[path] = vals[0]
	}
	if e.ListID == "" {
		return WebhookEvent{}, fmt.Errorf("webhook: data[list_id] is missing")
	}
	switch e.Type {
	case EventUpemail:
		if !strings.Contains(e.NewEmail, "@") {
			return WebhookEvent{}, fmt.Errorf("webhook: data[new_email] is missing or not an address")
		}
		if !strings.Contains(e.OldEmail, "@") {
			return WebhookEvent{}, fmt.Errorf("webhook: data[old_email] is missing or not an address")
		}
	case EventCampaign:
	default:
		if !strings.Contains(e.Email, "@") {
			return WebhookEvent{}, fmt.Errorf("webhook: data[email] is missing or not an address")
		}
	}
	e.Raw = cloneValues(form)
	return e, nil
}

// mergePath turns "[TAG]" or "[TAG][sub][0]" into "TAG" or "TAG.sub.0".
func mergePath(s string) (string, bool) {
	var parts []string
	for s != "" {
		if s[0] != '[' {
			return "", false
		}
		end := strings.IndexByte(s, ']')
		if end <= 1 {
			return "", false
		}
		part := s[1:end]
		if strings.ContainsAny(part, "[.") {
			return "", false
		}
		parts = append(parts, part)
		s = s[end+1:]
	}
	if len(parts) == 0 {
		return "", false
	}
	return strings.Join(parts, "."), true
}

// EncodeWebhook is the form Mailchimp POSTs for e: the fields above (empty
// ones left out), then any other key of e.Raw. ParseWebhook(EncodeWebhook(e))
// gives e back (Raw aside), and EncodeWebhook(ParseWebhook(form)) gives form
// back.
func EncodeWebhook(e WebhookEvent) url.Values {
	form := url.Values{}
	form.Set("type", e.Type)
	if !e.FiredAt.IsZero() {
		form.Set("fired_at", e.FiredAt.UTC().Format(FiredAtLayout))
	}
	for _, f := range webhookFields {
		if v := *f.get(&e); v != "" {
			form.Set(f.key, v)
		}
	}
	keys := make([]string, 0, len(e.Merges))
	for k := range e.Merges {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		form.Set(mergesPrefix+"["+strings.ReplaceAll(k, ".", "][")+"]", e.Merges[k])
	}
	for k, v := range e.Raw {
		if _, set := form[k]; set || k == "type" || k == "fired_at" || strings.HasPrefix(k, mergesPrefix) {
			continue
		}
		if mapped(k) && strings.Join(v, "") != "" {
			continue // e cleared it
		}
		form[k] = append([]string(nil), v...)
	}
	return form
}

func mapped(key string) bool {
	for _, f := range webhookFields {
		if f.key == key {
			return true
		}
	}
	return false
}

// clip shortens attacker-controlled text quoted in an error.
func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
