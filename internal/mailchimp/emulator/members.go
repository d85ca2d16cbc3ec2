package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/mailchimp"
)

// memberBody is the union of the member write bodies (POST, PUT, PATCH and
// a batch-subscribe entry).
type memberBody struct {
	EmailAddress         *string                    `json:"email_address"`
	Status               *string                    `json:"status"`
	StatusIfNew          *string                    `json:"status_if_new"`
	EmailType            *string                    `json:"email_type"`
	MergeFields          map[string]json.RawMessage `json:"merge_fields"`
	Interests            map[string]bool            `json:"interests"`
	Language             *string                    `json:"language"`
	VIP                  *bool                      `json:"vip"`
	Location             json.RawMessage            `json:"location"`
	MarketingPermissions json.RawMessage            `json:"marketing_permissions"`
	IPSignup             *string                    `json:"ip_signup"`
	TimestampSignup      *string                    `json:"timestamp_signup"`
	IPOpt                *string                    `json:"ip_opt"`
	TimestampOpt         *string                    `json:"timestamp_opt"`
	Tags                 []string                   `json:"tags"`
}

// change is a validated member write.
type change struct {
	email     string
	newStatus status // status of a created contact
	hasNew    bool
	setStatus status // status set on an existing contact
	hasSet    bool
	body      *memberBody
	syncTags  bool
	skipMerge bool
}

// existing says what a write does to a contact already in the audience.
type existing uint8

const (
	existingUpdate  existing = iota // PUT, PATCH, batch with update_existing
	existingRefuse                  // POST: "Member Exists", archived included
	existingRestore                 // batch without update_existing: archived contacts are restored, others refused
)

// validateBody checks the parts of a member body that do not depend on the
// audience. prefix names the field path in errors (e.g. "members.3.").
func validateBody(b *memberBody, prefix string) *apiError {
	if b.EmailType != nil && *b.EmailType != "html" && *b.EmailType != "text" {
		return errField(prefix+"email_type", "Data did not match any of the schemas described in the options list.")
	}
	for name, s := range map[string]*string{"timestamp_signup": b.TimestampSignup, "timestamp_opt": b.TimestampOpt} {
		if s != nil && *s != "" {
			if _, ok := parseTime(*s); !ok {
				return errField(prefix+name, "This value should be a valid datetime.")
			}
		}
	}
	if b.Language != nil && len(*b.Language) > 10 {
		return errField(prefix+"language", "This value is too long.")
	}
	return nil
}

// statusField parses an optional status field.
func statusField(s *string, name string) (status, bool, *apiError) {
	if s == nil {
		return 0, false, nil
	}
	st, ok := parseWritableStatus(*s)
	if !ok {
		if *s == "" {
			return 0, false, errField(name, "This value should not be blank.")
		}
		return 0, false, errField(name, "Data did not match any of the schemas described in the options list.")
	}
	return st, true, nil
}

// upsert applies c to the contact with hash h. The caller holds l.mu.
func (e *Emulator) upsert(l *list, h [16]byte, c change, ex existing) (int32, bool, *apiError) {
	now := e.now().Unix()
	i, found := l.lookup(h)
	if found && (ex == existingRefuse || ex == existingRestore && l.members[i].status != stArchived) {
		return i, false, errMemberExists(l.members[i].email)
	}
	if !found {
		if _, gone := l.forgotten[h]; gone {
			return 0, false, errForgotten(c.email)
		}
		if err := checkEmail(c.email); err != nil {
			return 0, false, err
		}
		if !c.hasNew {
			return 0, false, errField("status", "This value should not be blank.")
		}
		mi, errs := l.parseMerge(c.body.MergeFields, true, c.skipMerge)
		if len(errs) > 0 {
			return 0, false, errMergeFields(errs)
		}
		m := member{email: c.email, status: c.newStatus, lastChanged: now}
		if c.newStatus == stCleaned {
			m.flags |= flagCompliance
		}
		if c.newStatus == stSubscribed {
			m.optAt = now
		}
		mi.apply(&m, len(l.fields))
		applyAttrs(&m, c.body)
		i = l.addMember(h, m)
		for _, name := range c.body.Tags {
			if idx, ok := l.tagIndex(name, true, now, e.newID); ok {
				l.addTag(&l.members[i], idx, now)
			}
		}
		l.touch()
		e.memberChanged(l, nil, &l.members[i], sourceAPI)
		return i, true, nil
	}

	m := &l.members[i]
	var before *member
	if len(l.hooks) > 0 {
		b := *m
		b.merge = slices.Clone(m.merge)
		before = &b
	}
	target := m.status
	switch {
	case m.status == stArchived && c.hasSet:
		target = c.setStatus
	case m.status == stArchived && c.hasNew:
		target = c.newStatus
	case m.status == stArchived:
		target = m.prev
	case c.hasSet:
		target = c.setStatus
	}
	if target != m.status && m.flags&flagCompliance != 0 && !complianceAllows(m, target) {
		return i, false, errCompliance(m.email)
	}
	mi, errs := l.parseMerge(c.body.MergeFields, false, c.skipMerge)
	if len(errs) > 0 {
		return i, false, errMergeFields(errs)
	}
	l.setStatus(m, target, now)
	if target == stCleaned {
		m.flags |= flagCompliance
	}
	mi.apply(m, len(l.fields))
	applyAttrs(m, c.body)
	if c.body.EmailAddress != nil && *c.body.EmailAddress != m.email && strings.EqualFold(*c.body.EmailAddress, m.email) {
		m.email = *c.body.EmailAddress
	}
	if c.syncTags {
		want := make([]uint32, 0, len(c.body.Tags))
		for _, name := range c.body.Tags {
			if idx, ok := l.tagIndex(name, true, now, e.newID); ok {
				want = append(want, idx)
			}
		}
		for _, r := range slices.Clone(m.tags) {
			if !slices.Contains(want, r.idx) {
				l.removeTag(m, r.idx)
			}
		}
		for _, idx := range want {
			l.addTag(m, idx, now)
		}
	} else {
		for _, name := range c.body.Tags {
			if idx, ok := l.tagIndex(name, true, now, e.newID); ok {
				l.addTag(m, idx, now)
			}
		}
	}
	m.lastChanged = now
	l.touch()
	if before != nil {
		e.memberChanged(l, before, m, sourceAPI)
	}
	return i, false, nil
}

// complianceAllows says whether a contact in compliance state (unsubscribed
// by themselves, bounced, or set cleaned) may move to target: only a
// self-unsubscribed contact may be asked to re-confirm (pending), and a
// cleaned one may be marked unsubscribed. Everything else is refused.
func complianceAllows(m *member, target status) bool {
	from := m.status
	if from == stArchived {
		from = m.prev
		if target == from {
			return true
		}
	}
	switch target {
	case stPending:
		return from == stUnsubscribed
	case stUnsubscribed:
		return true
	}
	return false
}

func applyAttrs(m *member, b *memberBody) {
	if b.EmailType != nil {
		if *b.EmailType == "text" {
			m.flags |= flagTextEmail
		} else {
			m.flags &^= flagTextEmail
		}
	}
	if b.VIP != nil {
		if *b.VIP {
			m.flags |= flagVIP
		} else {
			m.flags &^= flagVIP
		}
	}
	if b.TimestampSignup != nil {
		t, _ := parseTime(*b.TimestampSignup)
		m.signupAt = unixOrZero(t)
	}
	if b.TimestampOpt != nil {
		t, _ := parseTime(*b.TimestampOpt)
		m.optAt = unixOrZero(t)
	}
	if b.Language != nil || b.IPSignup != nil || b.IPOpt != nil {
		if m.ext == nil {
			m.ext = &memberExt{}
		}
		if b.Language != nil {
			m.ext.language = *b.Language
		}
		if b.IPSignup != nil {
			m.ext.ipSignup = *b.IPSignup
		}
		if b.IPOpt != nil {
			m.ext.ipOpt = *b.IPOpt
		}
	}
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// parseTime accepts the ISO 8601 forms Mailchimp documents.
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func (e *Emulator) newID() int { return int(e.nextID.Add(1)) }

// listFor finds the request's audience, which must belong to a.
func (e *Emulator) listFor(r *http.Request, a *account) (*list, error) {
	e.mu.RLock()
	l := e.lists[r.PathValue("list_id")]
	e.mu.RUnlock()
	if l == nil || l.account != a {
		return nil, errNotFound()
	}
	return l, nil
}

func memberKey(r *http.Request) ([16]byte, error) {
	h, ok := parseMemberKey(r.PathValue("subscriber_hash"))
	if !ok {
		return h, errNotFound()
	}
	return h, nil
}

func boolParam(r *http.Request, name string) bool {
	v, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return v
}

func (e *Emulator) getMember(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	h, err := memberKey(r)
	if err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	i, ok := l.lookup(h)
	if !ok {
		return nil, errNotFound()
	}
	return rawJSON(l.appendMember(nil, &l.members[i], h)), nil
}

func (e *Emulator) postMember(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	var b memberBody
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	if b.EmailAddress == nil || *b.EmailAddress == "" {
		return nil, errField("email_address", "This value should not be blank.")
	}
	if b.Status == nil {
		return nil, errField("status", "This value should not be blank.")
	}
	st, _, perr := statusField(b.Status, "status")
	if perr != nil {
		return nil, perr
	}
	if perr := validateBody(&b, ""); perr != nil {
		return nil, perr
	}
	for _, t := range b.Tags {
		if perr := checkTagName(t, "tags"); perr != nil {
			return nil, perr
		}
	}
	c := change{email: *b.EmailAddress, newStatus: st, hasNew: true, body: &b, skipMerge: boolParam(r, "skip_merge_validation")}
	h := subscriberHash(c.email)
	l.mu.Lock()
	defer l.mu.Unlock()
	i, _, perr := e.upsert(l, h, c, existingRefuse)
	if perr != nil {
		return nil, perr
	}
	return rawJSON(l.appendMember(nil, &l.members[i], h)), nil
}

func (e *Emulator) putMember(r *http.Request, a *account) (any, error) {
	return e.writeMember(r, a, true)
}

func (e *Emulator) patchMember(r *http.Request, a *account) (any, error) {
	return e.writeMember(r, a, false)
}

// writeMember is PUT (upsert) and PATCH (update only).
func (e *Emulator) writeMember(r *http.Request, a *account, put bool) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	h, err := memberKey(r)
	if err != nil {
		return nil, err
	}
	var b memberBody
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	if put {
		if b.EmailAddress == nil || *b.EmailAddress == "" {
			return nil, errField("email_address", "This value should not be blank.")
		}
		if b.StatusIfNew == nil {
			return nil, errField("status_if_new", "This value should not be blank.")
		}
	}
	// An email_address that does not hash to the path's member changes
	// that member's address (see changeEmail); checked under the lock.
	moving := b.EmailAddress != nil && subscriberHash(*b.EmailAddress) != h
	st, hasSet, perr := statusField(b.Status, "status")
	if perr != nil {
		return nil, perr
	}
	stNew, hasNew, perr := statusField(b.StatusIfNew, "status_if_new")
	if perr != nil {
		return nil, perr
	}
	if !put && b.StatusIfNew != nil {
		hasNew = false
	}
	if perr := validateBody(&b, ""); perr != nil {
		return nil, perr
	}
	if put && hasSet {
		// Undocumented which wins for a new contact; status (the one that
		// may subscribe directly) does.
		stNew = st
	}
	c := change{newStatus: stNew, hasNew: hasNew, setStatus: st, hasSet: hasSet, body: &b, skipMerge: boolParam(r, "skip_merge_validation")}
	if b.EmailAddress != nil {
		c.email = *b.EmailAddress
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, found := l.lookup(h)
	switch {
	case !found && !put:
		return nil, errNotFound()
	case !found && moving:
		return nil, errField("email_address", "The email address does not match the subscriber hash of the request.")
	case moving:
		return e.changeEmail(l, h, c)
	}
	i, _, perr := e.upsert(l, h, c, existingUpdate)
	if perr != nil {
		return nil, perr
	}
	return rawJSON(l.appendMember(nil, &l.members[i], h)), nil
}

// changeEmail applies a PUT or PATCH whose email_address is another
// address than that of the member at h: the rest of the body is applied as
// usual, then the member moves to the new address (its id becomes the new
// subscriber hash; the old one answers 404). An address that already is a
// contact of the audience (archived included) is refused as Mailchimp
// does, a permanently deleted one with "Forgotten Email Not Subscribed";
// both change nothing. The caller holds l.mu.
func (e *Emulator) changeEmail(l *list, h [16]byte, c change) (any, error) {
	newH := subscriberHash(c.email)
	if j, taken := l.lookup(newH); taken {
		return nil, errInvalid("", fieldError{Field: "email_address",
			Message: fmt.Sprintf("%q is already in this list with a status of %q.", c.email, l.members[j].status.String())})
	}
	if _, gone := l.forgotten[newH]; gone {
		return nil, errForgotten(c.email)
	}
	if perr := checkEmail(c.email); perr != nil {
		return nil, perr
	}
	if _, tomb := l.index[newH]; tomb {
		// A tombstone without the forgotten mark (cannot happen today);
		// refuse rather than overwrite it.
		return nil, errForgotten(c.email)
	}
	i, _, perr := e.upsert(l, h, c, existingUpdate)
	if perr != nil {
		return nil, perr
	}
	m := &l.members[i]
	old := m.email
	if m.ext == nil {
		m.ext = &memberExt{}
	}
	if !m.ext.moved {
		m.ext.firstHash, m.ext.moved = h, true
	}
	m.email = c.email
	delete(l.index, h)
	l.index[newH] = i
	m.lastChanged = e.now().Unix()
	l.touch()
	e.emit(l, "upemail", sourceAPI, mailchimp.WebhookEvent{OldEmail: old, NewEmail: m.email, NewID: l.uniqueEmailID(newH)})
	return rawJSON(l.appendMember(nil, m, newH)), nil
}

// archiveMember is DELETE: Mailchimp archives the contact.
func (e *Emulator) archiveMember(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	h, err := memberKey(r)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.lookup(h)
	if !ok {
		return nil, errNotFound()
	}
	m := &l.members[i]
	switch m.status {
	case stCleaned, stPending, stArchived:
		return nil, errMethod("Can not archive a contact that is bounced, pending or archived")
	}
	now := e.now().Unix()
	l.setStatus(m, stArchived, now)
	m.lastChanged = now
	l.touch()
	return nil, nil
}

// deletePermanent erases the contact; its address can never be re-added.
func (e *Emulator) deletePermanent(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	h, err := memberKey(r)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.lookup(h)
	if !ok {
		return nil, errNotFound()
	}
	if len(l.hooks) > 0 {
		ev := l.memberEvent(&l.members[i])
		ev.Action, ev.Reason = "delete", "manual"
		e.emit(l, "unsubscribe", sourceAPI, ev)
	}
	l.erase(i, h)
	return nil, nil
}

// erase turns member i into a tombstone and forgets its address.
func (l *list) erase(i int32, h [16]byte) {
	m := &l.members[i]
	for _, r := range m.tags {
		l.tags[r.idx].count--
	}
	l.counts[m.status]--
	l.counts[stDeleted]++
	*m = member{status: stDeleted}
	l.forgotten[h] = struct{}{}
	l.touch()
}
