package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

func segmentJSON(l *list, t *tag) map[string]any {
	out := map[string]any{
		"id":           t.id,
		"name":         t.name,
		"member_count": t.count,
		"type":         t.typ,
		"created_at":   isoTime(t.created),
		"updated_at":   isoTime(t.updated),
		"list_id":      l.id,
		"_links":       []any{},
	}
	if t.options != nil {
		out["options"] = t.options
	}
	return out
}

// segmentFor finds {segment_id} in l. The caller holds l.mu.
func (l *list) segmentFor(r *http.Request) (uint32, *tag, error) {
	id, err := strconv.Atoi(r.PathValue("segment_id"))
	if err != nil {
		return 0, nil, errNotFound()
	}
	idx, ok := l.tagByID[id]
	if !ok || l.tags[idx].deleted {
		return 0, nil, errNotFound()
	}
	return idx, l.tags[idx], nil
}

func (e *Emulator) getSegments(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	count, offset, err := pageParams(r)
	if err != nil {
		return nil, err
	}
	typ := r.URL.Query().Get("type")
	l.mu.RLock()
	defer l.mu.RUnlock()
	var all []*tag
	for _, t := range l.tags {
		if !t.deleted && (typ == "" || t.typ == typ) {
			all = append(all, t)
		}
	}
	out := []any{}
	for _, t := range pageOf(all, offset, count) {
		out = append(out, segmentJSON(l, t))
	}
	return map[string]any{"segments": out, "list_id": l.id, "total_items": len(all), "_links": []any{}}, nil
}

func (e *Emulator) getSegment(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, t, err := l.segmentFor(r)
	if err != nil {
		return nil, err
	}
	return segmentJSON(l, t), nil
}

type segmentBody struct {
	Name          *string         `json:"name"`
	StaticSegment []string        `json:"static_segment"`
	Options       json.RawMessage `json:"options"`
}

func (e *Emulator) postSegment(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	var b segmentBody
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	if b.Name == nil {
		return nil, errField("name", "This value should not be blank.")
	}
	if perr := checkTagName(*b.Name, "name"); perr != nil {
		return nil, perr
	}
	if b.StaticSegment != nil && b.Options != nil {
		return nil, errInvalid("A segment cannot have both static_segment and options.")
	}
	if b.StaticSegment == nil && b.Options == nil {
		return nil, errField("static_segment", "Either static_segment or options is required.")
	}
	if len(b.StaticSegment) > maxBatch {
		return nil, errField("static_segment", fmt.Sprintf("You may only include up to %d members in a static segment operation.", maxBatch))
	}
	name := strings.TrimSpace(*b.Name)
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, exists := l.tagIndex(name, false, 0, nil); exists {
		return nil, errInvalid(fmt.Sprintf("Sorry, the tag or segment \"%s\" already exists.", name))
	}
	now := e.now().Unix()
	idx, _ := l.tagIndex(name, true, now, e.newID)
	t := l.tags[idx]
	if b.Options != nil {
		t.typ = "saved"
		t.options = compactJSON(b.Options)
	}
	for _, email := range b.StaticSegment {
		if i, ok := l.lookup(subscriberHash(email)); ok {
			l.addTag(&l.members[i], idx, now)
		}
	}
	l.touch()
	return segmentJSON(l, t), nil
}

func (e *Emulator) patchSegment(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	var b segmentBody
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	if b.Name == nil {
		return nil, errField("name", "This value should not be blank.")
	}
	if perr := checkTagName(*b.Name, "name"); perr != nil {
		return nil, perr
	}
	if len(b.StaticSegment) > maxBatch {
		return nil, errField("static_segment", fmt.Sprintf("You may only include up to %d members in a static segment operation.", maxBatch))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	idx, t, err := l.segmentFor(r)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(*b.Name)
	if other, exists := l.tagIndex(name, false, 0, nil); exists && other != idx {
		return nil, errInvalid(fmt.Sprintf("Sorry, the tag or segment \"%s\" already exists.", name))
	}
	now := e.now().Unix()
	delete(l.tagByName, strings.ToLower(t.name))
	t.name = name
	l.tagByName[strings.ToLower(name)] = idx
	t.updated = now
	if b.Options != nil {
		t.options = compactJSON(b.Options)
	}
	if b.StaticSegment != nil {
		// An empty (or any) static_segment replaces the membership.
		keep := map[int32]bool{}
		for _, email := range b.StaticSegment {
			if i, ok := l.lookup(subscriberHash(email)); ok {
				keep[i] = true
			}
		}
		for i := range l.members {
			m := &l.members[i]
			if m.status == stDeleted {
				continue
			}
			if keep[int32(i)] {
				l.addTag(m, idx, now)
			} else {
				l.removeTag(m, idx)
			}
		}
	}
	l.touch()
	return segmentJSON(l, t), nil
}

func (e *Emulator) deleteSegment(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	idx, t, err := l.segmentFor(r)
	if err != nil {
		return nil, err
	}
	for i := range l.members {
		l.removeTag(&l.members[i], idx)
	}
	t.deleted = true
	delete(l.tagByName, strings.ToLower(t.name))
	delete(l.tagByID, t.id)
	l.touch()
	return nil, nil
}

// batchSegment is POST /lists/{list_id}/segments/{segment_id}: add and
// remove up to 500 addresses each. Addresses not in the audience are
// reported in errors and otherwise ignored.
func (e *Emulator) batchSegment(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	var b struct {
		Add    []string `json:"members_to_add"`
		Remove []string `json:"members_to_remove"`
	}
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	if b.Add == nil && b.Remove == nil {
		return nil, errField("members_to_add", "This value should not be blank.")
	}
	if len(b.Add) > maxBatch {
		return nil, errField("members_to_add", fmt.Sprintf("You may only add up to %d members in a static segment operation.", maxBatch))
	}
	if len(b.Remove) > maxBatch {
		return nil, errField("members_to_remove", fmt.Sprintf("You may only remove up to %d members in a static segment operation.", maxBatch))
	}
	if err := e.memberDelay(r.Context(), len(b.Add)+len(b.Remove)); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	idx, t, err := l.segmentFor(r)
	if err != nil {
		return nil, err
	}
	if t.typ != "static" {
		return nil, errInvalid("Members can only be added to or removed from static segments (tags).")
	}
	now := e.now().Unix()
	var added, removed []int32
	var missing []string
	for _, email := range b.Add {
		i, ok := l.lookup(subscriberHash(email))
		if !ok {
			missing = append(missing, email)
			continue
		}
		if l.addTag(&l.members[i], idx, now) {
			added = append(added, i)
		}
	}
	var notIn []string
	for _, email := range b.Remove {
		i, ok := l.lookup(subscriberHash(email))
		if !ok {
			missing = append(missing, email)
			continue
		}
		if l.removeTag(&l.members[i], idx) {
			removed = append(removed, i)
		} else {
			notIn = append(notIn, email)
		}
	}
	if len(added)+len(removed) > 0 {
		t.updated = now
		l.touch()
	}
	out := make([]byte, 0, 256+(len(added)+len(removed))*900)
	out = append(out, `{"members_added":[`...)
	for j, i := range added {
		if j > 0 {
			out = append(out, ',')
		}
		m := &l.members[i]
		out = l.appendMember(out, m, subscriberHash(m.email))
	}
	out = append(out, `],"members_removed":[`...)
	for j, i := range removed {
		if j > 0 {
			out = append(out, ',')
		}
		m := &l.members[i]
		out = l.appendMember(out, m, subscriberHash(m.email))
	}
	out = append(out, `],"errors":[`...)
	nerr := 0
	for _, g := range []struct {
		emails []string
		msg    string
	}{{missing, "Email addresses do not belong to this list"}, {notIn, "Email addresses were not in this segment"}} {
		if len(g.emails) == 0 {
			continue
		}
		if nerr > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"email_addresses":[`...)
		for j, s := range g.emails {
			if j > 0 {
				out = append(out, ',')
			}
			out = appendString(out, s)
		}
		out = append(out, `],"error":`...)
		out = appendString(out, g.msg)
		out = append(out, '}')
		nerr += len(g.emails)
	}
	out = append(out, `],"total_added":`...)
	out = strconv.AppendInt(out, int64(len(added)), 10)
	out = append(out, `,"total_removed":`...)
	out = strconv.AppendInt(out, int64(len(removed)), 10)
	out = append(out, `,"error_count":`...)
	out = strconv.AppendInt(out, int64(nerr), 10)
	out = append(out, `,"_links":[]}`...)
	return rawJSON(out), nil
}

// getSegmentMembers lists a segment's members. As Mailchimp does, it leaves
// out unsubscribed, cleaned and transactional contacts unless asked, and
// never lists archived ones.
func (e *Emulator) getSegmentMembers(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	count, offset, err := pageParams(r)
	if err != nil {
		return nil, err
	}
	include := [numStatus]bool{stSubscribed: true, stPending: true,
		stUnsubscribed: boolParam(r, "include_unsubscribed"), stCleaned: boolParam(r, "include_cleaned"),
		stTransactional: boolParam(r, "include_transactional")}
	l.mu.RLock()
	defer l.mu.RUnlock()
	idx, _, err := l.segmentFor(r)
	if err != nil {
		return nil, err
	}
	var match []int32
	for i := range l.members {
		m := &l.members[i]
		if !include[m.status] {
			continue
		}
		if slices.ContainsFunc(m.tags, func(t tagRef) bool { return t.idx == idx }) {
			match = append(match, int32(i))
		}
	}
	page := pageOf(match, offset, count)
	return l.encodeMembers(r, page, len(match), false), nil
}

func (e *Emulator) postSegmentMember(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	var b struct {
		EmailAddress *string `json:"email_address"`
	}
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	if b.EmailAddress == nil || *b.EmailAddress == "" {
		return nil, errField("email_address", "This value should not be blank.")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	idx, t, err := l.segmentFor(r)
	if err != nil {
		return nil, err
	}
	if t.typ != "static" {
		return nil, errInvalid("Members can only be added to static segments (tags).")
	}
	h := subscriberHash(*b.EmailAddress)
	i, ok := l.lookup(h)
	if !ok {
		return nil, errNotFound()
	}
	now := e.now().Unix()
	if l.addTag(&l.members[i], idx, now) {
		t.updated = now
		l.touch()
	}
	return rawJSON(l.appendMember(nil, &l.members[i], h)), nil
}

func (e *Emulator) deleteSegmentMember(r *http.Request, a *account) (any, error) {
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
	idx, t, err := l.segmentFor(r)
	if err != nil {
		return nil, err
	}
	i, ok := l.lookup(h)
	if !ok || !l.removeTag(&l.members[i], idx) {
		return nil, errNotFound()
	}
	t.updated = e.now().Unix()
	l.touch()
	return nil, nil
}

// tagSearch is GET /lists/{list_id}/tag-search: tags whose name starts with name.
func (e *Emulator) tagSearch(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	prefix := strings.ToLower(r.URL.Query().Get("name"))
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := []any{}
	for _, t := range l.tags {
		if !t.deleted && t.typ == "static" && strings.HasPrefix(strings.ToLower(t.name), prefix) {
			out = append(out, map[string]any{"id": t.id, "name": t.name})
		}
	}
	return map[string]any{"tags": out, "total_items": len(out)}, nil
}
