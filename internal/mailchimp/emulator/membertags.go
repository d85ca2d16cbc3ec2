package emulator

import (
	"fmt"
	"net/http"
	"strings"
)

func checkTagName(name, field string) *apiError {
	name = strings.TrimSpace(name)
	if name == "" {
		return errField(field, "Tag name cannot be blank.")
	}
	if len([]rune(name)) > 100 {
		return errField(field, "Tag name must be 100 characters or fewer.")
	}
	return nil
}

func (e *Emulator) getMemberTags(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	h, err := memberKey(r)
	if err != nil {
		return nil, err
	}
	count, offset, err := pageParams(r)
	if err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	i, ok := l.lookup(h)
	if !ok {
		return nil, errNotFound()
	}
	type tagOut struct {
		ID        int    `json:"id"`
		Name      string `json:"name"`
		DateAdded string `json:"date_added"`
	}
	m := &l.members[i]
	out := []tagOut{}
	for _, r := range pageOf(m.tags, offset, count) {
		t := l.tags[r.idx]
		out = append(out, tagOut{ID: t.id, Name: t.name, DateAdded: isoTime(int64(r.at))})
	}
	return map[string]any{"tags": out, "total_items": len(m.tags), "_links": []any{}}, nil
}

func (e *Emulator) postMemberTags(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	h, err := memberKey(r)
	if err != nil {
		return nil, err
	}
	var body struct {
		Tags []struct {
			Name   *string `json:"name"`
			Status *string `json:"status"`
		} `json:"tags"`
		IsSyncing bool `json:"is_syncing"`
	}
	if err := decodeBody(r, &body); err != nil {
		return nil, err
	}
	if body.Tags == nil {
		return nil, errField("tags", "This value should not be blank.")
	}
	for k, t := range body.Tags {
		field := fmt.Sprintf("tags.%d", k)
		if t.Name == nil {
			return nil, errField(field+".name", "This value should not be blank.")
		}
		if perr := checkTagName(*t.Name, field+".name"); perr != nil {
			return nil, perr
		}
		if t.Status == nil || (*t.Status != "active" && *t.Status != "inactive") {
			return nil, errField(field+".status", "Data did not match any of the schemas described in the options list.")
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.lookup(h)
	if !ok {
		return nil, errNotFound()
	}
	now := e.now().Unix()
	m := &l.members[i]
	for _, t := range body.Tags {
		name := strings.TrimSpace(*t.Name)
		if *t.Status == "active" {
			idx, _ := l.tagIndex(name, true, now, e.newID)
			l.addTag(m, idx, now)
		} else if idx, ok := l.tagIndex(name, false, now, e.newID); ok {
			l.removeTag(m, idx)
		}
	}
	l.touch()
	return nil, nil
}
