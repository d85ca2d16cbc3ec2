package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// This file is the webhooks API (GET|POST /lists/{id}/webhooks,
// GET|PATCH|DELETE …/webhooks/{webhook_id}); delivery is in deliver.go.

// Event sources, as the webhooks API names them.
const (
	sourceUser  = "user"
	sourceAdmin = "admin"
	sourceAPI   = "api"
)

// hookEvents are the event flags of a webhook, in the API's key order.
var hookEventNames = [...]string{"subscribe", "unsubscribe", "profile", "cleaned", "upemail", "campaign"}

// webhook is one registered audience webhook. Guarded by its list's mu.
type webhook struct {
	id       string
	url      string
	events   map[string]bool
	sources  map[string]bool
	disabled bool // it answered 410 Gone: no more deliveries
}

func (w *webhook) wants(typ, source string) bool {
	if w.disabled || !w.events[typ] {
		return false
	}
	return typ == "campaign" || w.sources[source]
}

func (e *Emulator) webhookJSON(l *list, w *webhook) map[string]any {
	ev := map[string]bool{}
	for _, n := range hookEventNames {
		ev[n] = w.events[n]
	}
	return map[string]any{
		"id":      w.id,
		"url":     w.url,
		"events":  ev,
		"sources": map[string]bool{sourceUser: w.sources[sourceUser], sourceAdmin: w.sources[sourceAdmin], sourceAPI: w.sources[sourceAPI]},
		"list_id": l.id,
		"_links":  []any{},
	}
}

// webhookBody is Add_Webhook (POST and PATCH).
type webhookBody struct {
	URL     *string          `json:"url"`
	Events  map[string]*bool `json:"events"`
	Sources map[string]*bool `json:"sources"`
}

func (b *webhookBody) validate() *apiError {
	for k, v := range b.Events {
		if !isHookEvent(k) {
			return errField("events."+k, "This property is not allowed.")
		}
		if v == nil {
			return errField("events."+k, "This value should be of type boolean.")
		}
	}
	for k, v := range b.Sources {
		if k != sourceUser && k != sourceAdmin && k != sourceAPI {
			return errField("sources."+k, "This property is not allowed.")
		}
		if v == nil {
			return errField("sources."+k, "This value should be of type boolean.")
		}
	}
	return nil
}

func isHookEvent(k string) bool {
	for _, n := range hookEventNames {
		if n == k {
			return true
		}
	}
	return false
}

func (b *webhookBody) applyTo(w *webhook) {
	for k, v := range b.Events {
		w.events[k] = *v
	}
	for k, v := range b.Sources {
		w.sources[k] = *v
	}
}

// checkHookURL refuses what is not an absolute http(s) URL, then does what
// Mailchimp does: GET the URL and refuse the webhook unless it answers 200.
func (e *Emulator) checkHookURL(raw string) *apiError {
	u, err := url.Parse(raw)
	if raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errField("url", "Invalid URL")
	}
	req, err := http.NewRequest(http.MethodGet, raw, nil)
	if err != nil {
		return errField("url", "Invalid URL")
	}
	req.Header.Set("User-Agent", webhookUserAgent)
	code := 0
	resp, err := e.hookClient().Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		code = resp.StatusCode
	}
	e.recordValidation(raw, code, err)
	if code != http.StatusOK {
		return &apiError{status: http.StatusBadRequest, title: "Invalid Resource",
			detail: fmt.Sprintf("We couldn't verify the URL is working. Please double check and try again. HTTP Code: %d", code)}
	}
	return nil
}

func newHookID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (e *Emulator) getWebhooks(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]any, 0, len(l.hooks))
	for _, w := range l.hooks {
		out = append(out, e.webhookJSON(l, w))
	}
	return map[string]any{"webhooks": out, "list_id": l.id, "total_items": len(out), "_links": []any{}}, nil
}

func (e *Emulator) postWebhook(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	var b webhookBody
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	if b.URL == nil || strings.TrimSpace(*b.URL) == "" {
		return nil, errField("url", "This value should not be blank.")
	}
	if perr := b.validate(); perr != nil {
		return nil, perr
	}
	if perr := e.checkHookDup(l, *b.URL, ""); perr != nil {
		return nil, perr
	}
	// The validation GET is made without holding the audience's lock.
	if perr := e.checkHookURL(*b.URL); perr != nil {
		return nil, perr
	}
	// Defaults (API 2.0's documented ones; v3 does not say): every event,
	// user and admin sources, not api.
	w := &webhook{id: newHookID(), url: *b.URL, events: map[string]bool{}, sources: map[string]bool{sourceUser: true, sourceAdmin: true}}
	for _, n := range hookEventNames {
		w.events[n] = true
	}
	b.applyTo(w)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.hooks {
		if x.url == w.url {
			return nil, errHookDup()
		}
	}
	l.hooks = append(l.hooks, w)
	return e.webhookJSON(l, w), nil
}

func errHookDup() *apiError {
	return errField("url", "A webhook with this URL already exists for this list.")
}

// checkHookDup refuses a URL another webhook of the audience has (Mailchimp
// keeps one webhook per URL).
func (e *Emulator) checkHookDup(l *list, u, except string) *apiError {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, w := range l.hooks {
		if w.url == u && w.id != except {
			return errHookDup()
		}
	}
	return nil
}

func (l *list) hookFor(r *http.Request) (int, *webhook, error) {
	id := r.PathValue("webhook_id")
	for i, w := range l.hooks {
		if w.id == id {
			return i, w, nil
		}
	}
	return 0, nil, errNotFound()
}

func (e *Emulator) getWebhook(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, w, err := l.hookFor(r)
	if err != nil {
		return nil, err
	}
	return e.webhookJSON(l, w), nil
}

func (e *Emulator) patchWebhook(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	var b webhookBody
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	if perr := b.validate(); perr != nil {
		return nil, perr
	}
	l.mu.RLock()
	_, w, err := l.hookFor(r)
	var oldURL string
	if w != nil {
		oldURL = w.url
	}
	l.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	if b.URL != nil && *b.URL != oldURL {
		if perr := e.checkHookDup(l, *b.URL, w.id); perr != nil {
			return nil, perr
		}
		if perr := e.checkHookURL(*b.URL); perr != nil {
			return nil, perr
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, w, err = l.hookFor(r); err != nil {
		return nil, err
	}
	if b.URL != nil {
		w.url = *b.URL
		w.disabled = false
	}
	b.applyTo(w)
	return e.webhookJSON(l, w), nil
}

func (e *Emulator) deleteWebhook(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i, _, err := l.hookFor(r)
	if err != nil {
		return nil, err
	}
	l.hooks = append(l.hooks[:i], l.hooks[i+1:]...)
	return nil, nil
}

// Webhook is a registered webhook as a test sees it.
type Webhook struct {
	ID       string
	URL      string
	Events   map[string]bool
	Sources  map[string]bool
	Disabled bool // it answered 410 Gone
}

// Webhooks returns the audience's webhooks.
func (e *Emulator) Webhooks(listID string) ([]Webhook, error) {
	l, err := e.list(listID)
	if err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]Webhook, 0, len(l.hooks))
	for _, w := range l.hooks {
		h := Webhook{ID: w.id, URL: w.url, Events: map[string]bool{}, Sources: map[string]bool{}, Disabled: w.disabled}
		for k, v := range w.events {
			h.Events[k] = v
		}
		for k, v := range w.sources {
			h.Sources[k] = v
		}
		out = append(out, h)
	}
	return out, nil
}
