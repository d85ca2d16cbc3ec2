package emulator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// This file is the Go-side view for tests: inspecting state and counters,
// and setting up audiences and contacts directly, bypassing the API rules.

// ErrNotFound is returned by the inspection methods for an unknown
// audience or contact.
var ErrNotFound = errors.New("emulator: not found")

// Contact is a member of an audience as a test sees it.
type Contact struct {
	Email       string
	Status      string // subscribed, unsubscribed, cleaned, pending, transactional or archived
	PrevStatus  string // for archived contacts: the status before archiving
	Compliance  bool   // unsubscribed themselves, bounced or cleaned: cannot be re-subscribed
	VIP         bool
	MergeFields map[string]string // non-empty values by merge tag (numbers and addresses as JSON)
	Tags        []string
	LastChanged time.Time
}

// SeedContact describes a contact to put into an audience directly.
type SeedContact struct {
	Email string
	// Status is subscribed, unsubscribed (through the API), unsubscribed-self
	// (the recipient clicked unsubscribe: compliance state), cleaned
	// (bounced: compliance state), pending, transactional, archived or
	// deleted (permanently deleted: the address is forgotten).
	Status       string
	ArchivedFrom string // status before archiving; subscribed when empty
	MergeFields  map[string]string
	Tags         []string
	LastChanged  time.Time // zero: now
}

func (e *Emulator) list(listID string) (*list, error) {
	e.mu.RLock()
	l := e.lists[listID]
	e.mu.RUnlock()
	if l == nil {
		return nil, fmt.Errorf("audience %q: %w", listID, ErrNotFound)
	}
	return l, nil
}

func (e *Emulator) accountOf(apiKey string) (*account, error) {
	e.mu.RLock()
	a := e.byKey[apiKey]
	e.mu.RUnlock()
	if a == nil {
		return nil, fmt.Errorf("account of key: %w", ErrNotFound)
	}
	return a, nil
}

// CreateList creates an audience for the account of apiKey and returns its id.
func (e *Emulator) CreateList(apiKey, name string) (string, error) {
	a, err := e.accountOf(apiKey)
	if err != nil {
		return "", err
	}
	l := e.newList(a, listSettings{
		Name:               name,
		Contact:            []byte(`{"company":"Emulated","address1":"1 Emulator Way","address2":"","city":"Atlanta","state":"GA","zip":"30308","country":"US","phone":""}`),
		PermissionReminder: "You signed up on our site.",
		CampaignDefaults:   []byte(`{"from_name":"Emulated","from_email":"news@segsync-emulator.invalid","subject":"","language":"en"}`),
		EmailTypeOption:    false,
	})
	return l.id, nil
}

// ListIDs returns the audience ids of the account of apiKey in creation order.
func (e *Emulator) ListIDs(apiKey string) []string {
	a, err := e.accountOf(apiKey)
	if err != nil {
		return nil
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]string, len(a.lists))
	for i, l := range a.lists {
		out[i] = l.id
	}
	return out
}

// AddMergeField adds a merge field of type typ (text, number, date, …).
func (e *Emulator) AddMergeField(listID, tag, name, typ string) error {
	l, err := e.list(listID)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, taken := l.fieldByTag(tag); taken {
		return fmt.Errorf("merge field %s already exists", tag)
	}
	f := &mergeField{id: e.newID(), tag: tag, name: name, typ: typ}
	switch typ {
	case "date":
		f.options.DateFormat = "MM/DD/YYYY"
	case "text":
		f.options.Size = 25
	}
	l.fields = append(l.fields, f)
	l.touch()
	return nil
}

// Seed puts contacts into an audience as they are, without the API's rules
// (no fake-address check, any status). An existing contact is replaced.
func (e *Emulator) Seed(listID string, contacts ...SeedContact) error {
	l, err := e.list(listID)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := e.now()
	for _, c := range contacts {
		var m member
		m.email = c.Email
		m.lastChanged = c.LastChanged.Unix()
		if c.LastChanged.IsZero() {
			m.lastChanged = now.Unix()
		}
		deleted := false
		switch c.Status {
		case "subscribed", "":
			m.status = stSubscribed
			m.optAt = m.lastChanged
		case "unsubscribed":
			m.status = stUnsubscribed
		case "unsubscribed-self":
			m.status, m.flags = stUnsubscribed, flagCompliance
		case "cleaned":
			m.status, m.flags = stCleaned, flagCompliance
		case "pending":
			m.status = stPending
		case "transactional":
			m.status = stTransactional
		case "archived":
			m.status = stArchived
			m.prev = stSubscribed
			if c.ArchivedFrom != "" {
				p, ok := parseWritableStatus(strings.TrimSuffix(c.ArchivedFrom, "-self"))
				if !ok {
					return fmt.Errorf("seeding %s: archived from %q: unknown status", c.Email, c.ArchivedFrom)
				}
				m.prev = p
				if strings.HasSuffix(c.ArchivedFrom, "-self") || p == stCleaned {
					m.flags |= flagCompliance
				}
			}
		case "deleted":
			deleted = true
		default:
			return fmt.Errorf("seeding %s: unknown status %q", c.Email, c.Status)
		}
		in := map[string][]byte{}
		for k, v := range c.MergeFields {
			in[k] = appendString(nil, v)
		}
		var mi mergeInput
		for k, raw := range in {
			slot, ok := l.fieldByTag(k)
			if !ok {
				return fmt.Errorf("seeding %s: unknown merge field %s", c.Email, k)
			}
			v, msg := normalizeMerge(l.fields[slot], raw)
			if msg != "" {
				return fmt.Errorf("seeding %s: merge field %s: %s", c.Email, k, msg)
			}
			mi.slots, mi.values = append(mi.slots, slot), append(mi.values, v)
		}
		mi.apply(&m, len(l.fields))
		h := subscriberHash(c.Email)
		if i, ok := l.index[h]; ok {
			old := &l.members[i]
			for _, r := range old.tags {
				l.tags[r.idx].count--
			}
			l.counts[old.status]--
			l.counts[m.status]++
			*old = m
		} else {
			l.addMember(h, m)
		}
		i := l.index[h]
		delete(l.forgotten, h)
		for _, name := range c.Tags {
			idx, _ := l.tagIndex(name, true, m.lastChanged, e.newID)
			l.addTag(&l.members[i], idx, m.lastChanged)
		}
		if deleted {
			l.erase(i, h)
		}
	}
	l.touch()
	return nil
}

// contactOf converts a member. The caller holds l.mu.
func (l *list) contactOf(m *member) Contact {
	c := Contact{
		Email:       m.email,
		Status:      m.status.String(),
		Compliance:  m.flags&flagCompliance != 0,
		VIP:         m.flags&flagVIP != 0,
		MergeFields: map[string]string{},
		LastChanged: time.Unix(m.lastChanged, 0).UTC(),
	}
	if m.status == stArchived {
		c.PrevStatus = m.prev.String()
	}
	for slot, v := range m.merge {
		if v != "" && !l.fields[slot].deleted {
			c.MergeFields[l.fields[slot].tag] = v
		}
	}
	for _, r := range m.tags {
		c.Tags = append(c.Tags, l.tags[r.idx].name)
	}
	return c
}

// Contact returns the contact with this address (archived included).
// A permanently deleted contact is ErrNotFound; see Forgotten.
func (e *Emulator) Contact(listID, email string) (Contact, error) {
	l, err := e.list(listID)
	if err != nil {
		return Contact{}, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	i, ok := l.lookup(subscriberHash(email))
	if !ok {
		return Contact{}, fmt.Errorf("contact %s: %w", email, ErrNotFound)
	}
	return l.contactOf(&l.members[i]), nil
}

// Contacts returns every contact of the audience (archived included,
// permanently deleted ones not) in the order they were added.
func (e *Emulator) Contacts(listID string) ([]Contact, error) {
	l, err := e.list(listID)
	if err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]Contact, 0, len(l.members))
	for i := range l.members {
		if l.members[i].status != stDeleted {
			out = append(out, l.contactOf(&l.members[i]))
		}
	}
	return out, nil
}

// Forgotten reports whether the address was permanently deleted.
func (e *Emulator) Forgotten(listID, email string) bool {
	l, err := e.list(listID)
	if err != nil {
		return false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.forgotten[subscriberHash(email)]
	return ok
}

// StatusCounts returns the number of contacts per status (including
// "archived" and "deleted").
func (e *Emulator) StatusCounts(listID string) (map[string]int, error) {
	l, err := e.list(listID)
	if err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := map[string]int{}
	for s, n := range l.counts {
		if n > 0 {
			out[status(s).String()] = n
		}
	}
	return out, nil
}

// Unsubscribe plays the recipient clicking "unsubscribe" (compliance state).
func (e *Emulator) Unsubscribe(listID, email string) error {
	return e.recipient(listID, email, ctlUnsubscribe)
}

// Bounce plays a hard bounce: the contact becomes cleaned (compliance state).
func (e *Emulator) Bounce(listID, email string) error {
	return e.recipient(listID, email, ctlBounce)
}

func (e *Emulator) recipient(listID, email string, act controlAction) error {
	l, err := e.list(listID)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.lookup(subscriberHash(email))
	if !ok {
		return fmt.Errorf("contact %s: %w", email, ErrNotFound)
	}
	e.recipientAction(l, &l.members[i], act)
	return nil
}

// Calls returns the number of API calls per route since the last reset,
// keyed "METHOD /path/{template}" as in the OpenAPI document, e.g.
// "POST /lists/{list_id}". Requests to unknown paths count as
// "METHOD (unknown)".
func (e *Emulator) Calls() map[string]int {
	e.callMu.Lock()
	defer e.callMu.Unlock()
	return maps.Clone(e.calls)
}

// CallSpan returns when the first API request since the last
// ResetCounters came in and when the last one was answered (zero: none).
func (e *Emulator) CallSpan() (first, last time.Time) {
	e.callMu.Lock()
	defer e.callMu.Unlock()
	return e.callSpan[0], e.callSpan[1]
}

// FirstWrite returns when the first request since the last ResetCounters
// that was not a GET came in (zero: none).
func (e *Emulator) FirstWrite() time.Time {
	e.callMu.Lock()
	defer e.callMu.Unlock()
	return e.firstWrite
}

// Call is one API request: its route (as in Calls), when it came in and
// when it was answered.
type Call struct {
	Route      string
	Start, End time.Time
}

// RecordedCalls returns the requests since the last ResetCounters, in the
// order they were answered; only with Options.RecordCalls.
func (e *Emulator) RecordedCalls() []Call {
	e.callMu.Lock()
	defer e.callMu.Unlock()
	return slices.Clone(e.recorded)
}

// CallCount returns the calls of one route, e.g. "PUT /lists/{list_id}/members/{subscriber_hash}".
func (e *Emulator) CallCount(route string) int {
	e.callMu.Lock()
	defer e.callMu.Unlock()
	return e.calls[route]
}

// WriteCalls returns the number of API calls that were not GET requests.
func (e *Emulator) WriteCalls() int {
	e.callMu.Lock()
	defer e.callMu.Unlock()
	n := 0
	for k, v := range e.calls {
		if !strings.HasPrefix(k, "GET ") {
			n += v
		}
	}
	return n
}

// MaxConcurrent returns the largest number of requests the account of
// apiKey had in flight at once since the last reset (including requests
// refused with 429).
func (e *Emulator) MaxConcurrent(apiKey string) int {
	a, err := e.accountOf(apiKey)
	if err != nil {
		return 0
	}
	return int(a.maxSeen.Load())
}

// ResetCounters clears the call counts and the concurrency maxima.
func (e *Emulator) ResetCounters() {
	e.callMu.Lock()
	clear(e.calls)
	e.callSpan, e.firstWrite, e.recorded = [2]time.Time{}, time.Time{}, nil
	e.callMu.Unlock()
	for _, a := range e.accounts {
		a.maxSeen.Store(0)
	}
}
