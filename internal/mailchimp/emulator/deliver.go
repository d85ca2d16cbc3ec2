package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segsync/segsync/internal/mailchimp"
)

// Webhook delivery: a member change becomes an event (mailchimp.WebhookEvent,
// encoded with mailchimp.EncodeWebhook so that segsync reads exactly what is
// sent), queued for every webhook of the audience whose events and sources
// want it, and POSTed form-encoded by one worker per emulator. A failed
// attempt (connection error, timeout, or an answer other than 2xx) is
// retried after WebhookRetryDelay, doubling, WebhookRetries times; a 410
// disables the webhook at once, as on Mailchimp. The queue is bounded: an
// event that does not fit is dropped and counted, never waited for.

// webhookUserAgent is what Mailchimp's webhook requests carry.
const webhookUserAgent = "MailChimp.com"

// Defaults of the delivery options.
const (
	DefaultWebhookRetries    = 3
	DefaultWebhookRetryDelay = time.Second
	DefaultWebhookTimeout    = 10 * time.Second // Mailchimp's own limit
	webhookQueueSize         = 4096
	maxDeliveryLog           = 10000
)

// Delivery is one attempt to deliver a webhook event, as a test sees it.
type Delivery struct {
	WebhookID string
	ListID    string
	URL       string
	Type      string     // subscribe, unsubscribe, profile, cleaned, upemail
	Source    string     // user, admin or api
	Form      url.Values // the body sent
	Attempt   int        // 1 for the first
	Status    int        // HTTP status; 0 when there was no answer
	Err       string     // transport error, if any
	At        time.Time
	Final     bool // no further attempt follows (delivered, given up, or disabled)
}

// OK reports whether the attempt was answered 2xx.
func (d Delivery) OK() bool { return d.Status >= 200 && d.Status < 300 }

// Validation is one webhook URL validation (the GET made on creation).
type Validation struct {
	URL    string
	Status int
	Err    string
}

// outbound is one event on its way to one webhook.
type outbound struct {
	l       *list
	hook    *webhook
	url     string
	typ     string
	source  string
	form    url.Values
	attempt int
	due     time.Time
}

// deliverer is the emulator's delivery queue and worker.
type deliverer struct {
	once    sync.Once
	queue   chan *outbound
	stop    chan struct{}
	done    chan struct{}
	closed  bool
	mu      sync.Mutex // guards the fields below and closed
	pending int        // events queued, waiting or in flight
	dropped int
	log     []Delivery
	valid   []Validation
}

func (e *Emulator) hookClient() *http.Client {
	if e.opts.WebhookClient != nil {
		return e.opts.WebhookClient
	}
	return e.defaultHookClient
}

// enqueue hands an event to the worker without ever blocking.
func (e *Emulator) enqueue(o *outbound) {
	d := &e.hooks
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.once.Do(func() {
		d.queue = make(chan *outbound, webhookQueueSize)
		d.stop = make(chan struct{})
		d.done = make(chan struct{})
		go e.deliverLoop()
	})
	select {
	case d.queue <- o:
		d.pending++
	default:
		d.dropped++
		e.log.Warn("emulator: webhook queue full, event dropped", "url", o.url, "type", o.typ)
	}
	d.mu.Unlock()
}

// deliverLoop sends queued events and retries failed ones when due.
func (e *Emulator) deliverLoop() {
	d := &e.hooks
	defer close(d.done)
	var waiting []*outbound // by due time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-d.stop
		cancel()
	}()
	for {
		var due <-chan time.Time
		if len(waiting) > 0 {
			timer.Reset(time.Until(waiting[0].due))
			due = timer.C
		}
		select {
		case <-d.stop:
			return
		case o := <-d.queue:
			if retry := e.attempt(ctx, o); retry {
				waiting = insertByDue(waiting, o)
			}
		case <-due:
			now := time.Now()
			for len(waiting) > 0 && !waiting[0].due.After(now) {
				o := waiting[0]
				waiting = waiting[1:]
				if retry := e.attempt(ctx, o); retry {
					waiting = insertByDue(waiting, o)
				}
			}
		}
		timer.Stop()
	}
}

func insertByDue(w []*outbound, o *outbound) []*outbound {
	i, _ := slices.BinarySearchFunc(w, o, func(a, b *outbound) int { return a.due.Compare(b.due) })
	return slices.Insert(w, i, o)
}

// attempt POSTs o once and reports whether it is to be tried again.
func (e *Emulator) attempt(ctx context.Context, o *outbound) bool {
	o.attempt++
	rec := Delivery{WebhookID: o.hook.id, ListID: o.l.id, URL: o.url, Type: o.typ, Source: o.source, Form: o.form, Attempt: o.attempt, At: time.Now()}
	o.l.mu.RLock()
	disabled := o.hook.disabled
	o.l.mu.RUnlock()
	if disabled {
		e.finish(rec, true)
		return false
	}
	actx, cancel := context.WithTimeout(ctx, e.webhookTimeout())
	req, err := http.NewRequestWithContext(actx, http.MethodPost, o.url, strings.NewReader(o.form.Encode()))
	if err == nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", webhookUserAgent)
		var resp *http.Response
		if resp, err = e.hookClient().Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			rec.Status = resp.StatusCode
		}
	}
	cancel()
	if err != nil {
		rec.Err = err.Error()
	}
	switch {
	case rec.OK():
		e.finish(rec, true)
		return false
	case rec.Status == http.StatusGone:
		o.l.mu.Lock()
		o.hook.disabled = true
		o.l.mu.Unlock()
		e.finish(rec, true)
		return false
	case o.attempt > e.webhookRetries() || ctx.Err() != nil:
		e.finish(rec, true)
		return false
	}
	e.finish(rec, false)
	o.due = time.Now().Add(e.webhookRetryDelay() << (o.attempt - 1))
	return true
}

// finish records an attempt; a final one is no longer pending.
func (e *Emulator) finish(rec Delivery, final bool) {
	rec.Final = final
	d := &e.hooks
	d.mu.Lock()
	if len(d.log) >= maxDeliveryLog {
		d.log = d.log[len(d.log)-maxDeliveryLog/2:]
	}
	d.log = append(d.log, rec)
	if final {
		d.pending--
	}
	d.mu.Unlock()
	e.log.Debug("emulator: webhook delivery", "url", rec.URL, "type", rec.Type, "attempt", rec.Attempt, "status", rec.Status, "err", rec.Err)
}

func (e *Emulator) recordValidation(u string, status int, err error) {
	v := Validation{URL: u, Status: status}
	if err != nil {
		v.Err = err.Error()
	}
	d := &e.hooks
	d.mu.Lock()
	d.valid = append(d.valid, v)
	d.mu.Unlock()
}

func (e *Emulator) webhookRetries() int {
	switch {
	case e.opts.WebhookRetries < 0:
		return 0
	case e.opts.WebhookRetries == 0:
		return DefaultWebhookRetries
	}
	return e.opts.WebhookRetries
}

func (e *Emulator) webhookRetryDelay() time.Duration {
	if e.opts.WebhookRetryDelay > 0 {
		return e.opts.WebhookRetryDelay
	}
	return DefaultWebhookRetryDelay
}

func (e *Emulator) webhookTimeout() time.Duration {
	if e.opts.WebhookTimeout > 0 {
		return e.opts.WebhookTimeout
	}
	return DefaultWebhookTimeout
}

// Close stops webhook delivery: events still queued or waiting for a retry
// are dropped, and the worker has ended when Close returns. The API keeps
// working (events are no longer sent). Server.Close calls it.
func (e *Emulator) Close() {
	d := &e.hooks
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	started := d.stop != nil
	d.mu.Unlock()
	if started {
		close(d.stop)
		<-d.done
	}
}

// WaitWebhooks waits until every queued event was delivered or given up
// (retries included), or ctx ends.
func (e *Emulator) WaitWebhooks(ctx context.Context) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		d := &e.hooks
		d.mu.Lock()
		n, closed := d.pending, d.closed
		d.mu.Unlock()
		if n == 0 || closed {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("emulator: %d webhook events still pending: %w", n, ctx.Err())
		case <-t.C:
		}
	}
}

// Deliveries returns the delivery attempts so far (the most recent
// thousands), oldest first.
func (e *Emulator) Deliveries() []Delivery {
	d := &e.hooks
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.log)
}

// Validations returns the webhook URL validations (GETs) made so far.
func (e *Emulator) Validations() []Validation {
	d := &e.hooks
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.valid)
}

// DroppedWebhooks is the number of events dropped because the queue was full.
func (e *Emulator) DroppedWebhooks() int {
	d := &e.hooks
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped
}

// emit queues an event of the member at index i for every webhook of l
// that wants it. The caller holds l.mu (for writing).
func (e *Emulator) emit(l *list, typ, source string, ev mailchimp.WebhookEvent) {
	if len(l.hooks) == 0 {
		return
	}
	ev.Type = typ
	ev.ListID = l.id
	ev.FiredAt = e.now().UTC().Truncate(time.Second)
	form := mailchimp.EncodeWebhook(ev)
	for _, w := range l.hooks {
		if w.wants(typ, source) {
			e.enqueue(&outbound{l: l, hook: w, url: w.url, typ: typ, source: source, form: form})
		}
	}
}

// memberEvent is the data of a subscribe, unsubscribe or profile event for
// m. The caller holds l.mu.
func (l *list) memberEvent(m *member) mailchimp.WebhookEvent {
	ev := mailchimp.WebhookEvent{ID: l.uniqueEmailID(subscriberHash(m.email)), Email: m.email, EmailType: "html",
		Merges: map[string]string{"EMAIL": m.email}}
	if m.flags&flagTextEmail != 0 {
		ev.EmailType = "text"
	}
	if m.ext != nil {
		ev.IPOpt, ev.IPSignup = m.ext.ipOpt, m.ext.ipSignup
	}
	for slot, f := range l.fields {
		if f.deleted {
			continue
		}
		v := ""
		if slot < len(m.merge) {
			v = m.merge[slot]
		}
		if f.typ == "address" && strings.HasPrefix(v, "{") {
			var parts map[string]any
			if json.Unmarshal([]byte(v), &parts) == nil {
				for k, pv := range parts {
					if !strings.ContainsAny(k, ".[]") {
						ev.Merges[f.tag+"."+k] = fmt.Sprint(pv)
					}
				}
				continue
			}
		}
		ev.Merges[f.tag] = v
	}
	return ev
}

// memberChanged fires what an API write did to a contact: before is the
// contact as it was (nil: created).
func (e *Emulator) memberChanged(l *list, before *member, m *member, source string) {
	if len(l.hooks) == 0 {
		return
	}
	switch {
	case before == nil:
		if m.status == stSubscribed {
			e.emit(l, "subscribe", source, l.memberEvent(m))
		}
	case before.status != m.status && m.status == stSubscribed:
		e.emit(l, "subscribe", source, l.memberEvent(m))
	case before.status != m.status && m.status == stUnsubscribed:
		ev := l.memberEvent(m)
		ev.Action, ev.Reason = "unsub", "manual"
		e.emit(l, "unsubscribe", source, ev)
	case before.status != m.status && m.status == stCleaned:
		e.emit(l, "cleaned", source, mailchimp.WebhookEvent{Email: m.email, Reason: "hard"})
	case !slices.Equal(before.merge, m.merge) || before.flags&(flagTextEmail|flagVIP) != m.flags&(flagTextEmail|flagVIP):
		e.emit(l, "profile", source, l.memberEvent(m))
	}
}
