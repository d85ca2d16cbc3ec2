package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// pageParams reads count (default 10, at most 1000) and offset.
func pageParams(r *http.Request) (int, int, error) {
	q := r.URL.Query()
	count, offset := 10, 0
	if s := q.Get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, 0, errField("count", "This value should be a valid integer.")
		}
		if n > 1000 {
			return 0, 0, errField("count", "This value should be less than or equal to 1000.")
		}
		count = n
	}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, 0, errField("offset", "This value should be a valid integer.")
		}
		offset = n
	}
	return count, offset, nil
}

// listingCache keeps the filtered, sorted member indexes of the last listing
// query, so paging through a large audience is not quadratic.
type listingCache struct {
	key     string
	version uint64
	idx     []int32
}

var cacheMu sync.Mutex // guards list.cache across readers holding l.mu.RLock

func (e *Emulator) getMembers(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	count, offset, err := pageParams(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var want status = numStatus // numStatus: every status but archived
	if s := q.Get("status"); s != "" {
		found := false
		for i := stSubscribed; i <= stArchived; i++ {
			if statusNames[i] == s {
				want, found = i, true
			}
		}
		if !found {
			return nil, errField("status", "Data did not match any of the schemas described in the options list.")
		}
	}
	var since, before int64 = -1, -1
	if s := q.Get("since_last_changed"); s != "" {
		t, ok := parseTime(s)
		if !ok {
			return nil, errField("since_last_changed", "This value should be a valid datetime.")
		}
		since = t.Unix()
	}
	if s := q.Get("before_last_changed"); s != "" {
		t, ok := parseTime(s)
		if !ok {
			return nil, errField("before_last_changed", "This value should be a valid datetime.")
		}
		before = t.Unix()
	}
	sortField, sortDir := q.Get("sort_field"), strings.ToUpper(q.Get("sort_dir"))
	if sortField != "" && sortField != "timestamp_opt" && sortField != "timestamp_signup" && sortField != "last_changed" {
		return nil, errField("sort_field", "Data did not match any of the schemas described in the options list.")
	}
	if sortDir != "" && sortDir != "ASC" && sortDir != "DESC" {
		return nil, errField("sort_dir", "Data did not match any of the schemas described in the options list.")
	}
	vipOnly := boolParam(r, "vip_only")
	key := fmt.Sprint(want, since, before, sortField, sortDir, vipOnly)

	l.mu.RLock()
	defer l.mu.RUnlock()
	cacheMu.Lock()
	c := l.cache
	cacheMu.Unlock()
	if c == nil || c.key != key || c.version != l.version {
		c = &listingCache{key: key, version: l.version}
		for i := range l.members {
			m := &l.members[i]
			switch {
			case m.status == stDeleted,
				want == numStatus && m.status == stArchived,
				want != numStatus && m.status != want,
				since >= 0 && m.lastChanged <= since,
				before >= 0 && m.lastChanged >= before,
				vipOnly && m.flags&flagVIP == 0:
				continue
			}
			c.idx = append(c.idx, int32(i))
		}
		if sortField != "" {
			keyOf := func(m *member) int64 {
				switch sortField {
				case "timestamp_opt":
					return m.optAt
				case "timestamp_signup":
					return m.signupAt
				}
				return m.lastChanged
			}
			slices.SortStableFunc(c.idx, func(x, y int32) int {
				d := keyOf(&l.members[x]) - keyOf(&l.members[y])
				if sortDir == "DESC" {
					d = -d
				}
				return int(min(max(d, -1), 1))
			})
		} else if sortDir == "DESC" {
			slices.Reverse(c.idx)
		}
		cacheMu.Lock()
		l.cache = c
		cacheMu.Unlock()
	}
	page := pageOf(c.idx, offset, count)
	return l.encodeMembers(r, page, len(c.idx), true), nil
}

// encodeMembers renders a page of members as a collection, applying fields
// and exclude_fields directly when they are simple enough.
func (l *list) encodeMembers(r *http.Request, page []int32, total int, withListID bool) any {
	q := r.URL.Query()
	p, fast := parseProjection(q.Get("fields"), q.Get("exclude_fields"), "members")
	b := make([]byte, 0, 64+len(page)*900)
	b = append(b, '{')
	n := 0
	key := func(k string) bool {
		if !p.wantsTop(k) {
			return false
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = appendKey(b, k)
		return true
	}
	if key("members") {
		b = append(b, '[')
		needHash := p.wants("id") || p.wants("unique_email_id") || p.wants("contact_id") || p.wants("web_id")
		for j, i := range page {
			if j > 0 {
				b = append(b, ',')
			}
			m := &l.members[i]
			var h [16]byte
			if needHash {
				h = subscriberHash(m.email)
			}
			b = l.appendMemberP(b, m, h, p)
		}
		b = append(b, ']')
	}
	if withListID && key("list_id") {
		b = appendString(b, l.id)
	}
	if key("total_items") {
		b = strconv.AppendInt(b, int64(total), 10)
	}
	if key("_links") {
		b = append(b, "[]"...)
	}
	b = append(b, '}')
	if fast && p != nil {
		return projectedJSON(b)
	}
	return rawJSON(b)
}

// pageOf is the part of s that a listing's offset and count select.
func pageOf[T any](s []T, offset, count int) []T {
	return s[min(offset, len(s)):min(offset+count, len(s))]
}
