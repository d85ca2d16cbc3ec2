package emulator

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
)

func (e *Emulator) getPing(r *http.Request, a *account) (any, error) {
	return rawJSON(`{"health_status":"Everything's Chimpy!"}`), nil
}

func (e *Emulator) getRoot(r *http.Request, a *account) (any, error) {
	e.mu.RLock()
	total := 0
	for _, l := range a.lists {
		l.mu.RLock()
		total += l.counts[stSubscribed]
		l.mu.RUnlock()
	}
	e.mu.RUnlock()
	return map[string]any{
		"account_id":        a.id,
		"login_id":          a.id[:8],
		"account_name":      a.name,
		"email":             "owner@segsync-emulator.invalid",
		"first_name":        "Emulated",
		"last_name":         "Owner",
		"username":          "emulated-" + a.id[:6],
		"avatar_url":        "",
		"role":              "owner",
		"member_since":      "2020-01-01T00:00:00+00:00",
		"pricing_plan_type": "monthly",
		"account_timezone":  "UTC",
		"account_industry":  "Software",
		"contact": map[string]string{"company": a.name, "addr1": "1 Emulator Way", "addr2": "", "city": "Atlanta",
			"state": "GA", "zip": "30308", "country": "US"},
		"pro_enabled":       false,
		"last_login":        isoTime(e.now().Unix()),
		"total_subscribers": total,
		"industry_stats":    map[string]float64{"open_rate": 0, "bounce_rate": 0, "click_rate": 0},
		"_links":            []any{},
	}, nil
}

// listBody is the POST/PATCH /lists body.
type listBody struct {
	Name                 *string         `json:"name"`
	Contact              json.RawMessage `json:"contact"`
	PermissionReminder   *string         `json:"permission_reminder"`
	UseArchiveBar        *bool           `json:"use_archive_bar"`
	CampaignDefaults     json.RawMessage `json:"campaign_defaults"`
	NotifyOnSubscribe    *string         `json:"notify_on_subscribe"`
	NotifyOnUnsubscribe  *string         `json:"notify_on_unsubscribe"`
	EmailTypeOption      *bool           `json:"email_type_option"`
	DoubleOptin          *bool           `json:"double_optin"`
	MarketingPermissions *bool           `json:"marketing_permissions"`
}

// checkObject validates a nested object's required string fields.
func checkObject(raw json.RawMessage, field string, required []string, errs *[]fieldError) {
	var m map[string]any
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || m == nil {
		*errs = append(*errs, fieldError{Field: field, Message: "This value should not be blank."})
		return
	}
	for _, k := range required {
		if s, ok := m[k].(string); !ok || s == "" {
			*errs = append(*errs, fieldError{Field: field + "." + k, Message: "This value should not be blank."})
		}
	}
}

func (b *listBody) validate(create bool) *apiError {
	var errs []fieldError
	if create || b.Name != nil {
		if b.Name == nil || *b.Name == "" {
			errs = append(errs, fieldError{Field: "name", Message: "This value should not be blank."})
		}
	}
	if create || b.Contact != nil {
		checkObject(b.Contact, "contact", []string{"company", "address1", "city", "country"}, &errs)
	}
	if create || b.PermissionReminder != nil {
		if b.PermissionReminder == nil || *b.PermissionReminder == "" {
			errs = append(errs, fieldError{Field: "permission_reminder", Message: "This value should not be blank."})
		}
	}
	if create || b.CampaignDefaults != nil {
		checkObject(b.CampaignDefaults, "campaign_defaults", []string{"from_name", "from_email", "subject", "language"}, &errs)
	}
	if create && b.EmailTypeOption == nil {
		errs = append(errs, fieldError{Field: "email_type_option", Message: "This value should not be blank."})
	}
	if len(errs) > 0 {
		return errInvalid("", errs...)
	}
	return nil
}

func (b *listBody) applyTo(s *listSettings) {
	if b.Name != nil {
		s.Name = *b.Name
	}
	if b.Contact != nil {
		s.Contact = compactJSON(b.Contact)
	}
	if b.PermissionReminder != nil {
		s.PermissionReminder = *b.PermissionReminder
	}
	if b.UseArchiveBar != nil {
		s.UseArchiveBar = *b.UseArchiveBar
	}
	if b.CampaignDefaults != nil {
		s.CampaignDefaults = compactJSON(b.CampaignDefaults)
	}
	if b.NotifyOnSubscribe != nil {
		s.NotifyOnSubscribe = *b.NotifyOnSubscribe
	}
	if b.NotifyOnUnsubscribe != nil {
		s.NotifyOnUnsubscribe = *b.NotifyOnUnsubscribe
	}
	if b.EmailTypeOption != nil {
		s.EmailTypeOption = *b.EmailTypeOption
	}
	if b.DoubleOptin != nil {
		s.DoubleOptin = *b.DoubleOptin
	}
	if b.MarketingPermissions != nil {
		s.MarketingPermissions = *b.MarketingPermissions
	}
}

func compactJSON(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return raw
	}
	return buf.Bytes()
}

// newList creates an audience for a.
func (e *Emulator) newList(a *account, set listSettings) *list {
	now := e.now()
	sum := md5.Sum(fmt.Appendf(nil, "%s/%d/%d", a.key, now.UnixNano(), e.newID()))
	l := &list{
		id:        hex.EncodeToString(sum[:5]),
		webID:     e.newID(),
		account:   a,
		created:   now.Unix(),
		set:       set,
		fields:    e.defaultFields(),
		index:     map[[16]byte]int32{},
		forgotten: map[[16]byte]struct{}{},
		tagByName: map[string]uint32{},
		tagByID:   map[int]uint32{},
	}
	e.mu.Lock()
	e.lists[l.id] = l
	a.lists = append(a.lists, l)
	e.mu.Unlock()
	return l
}

func (e *Emulator) postLists(r *http.Request, a *account) (any, error) {
	var b listBody
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	if perr := b.validate(true); perr != nil {
		return nil, perr
	}
	var set listSettings
	b.applyTo(&set)
	l := e.newList(a, set)
	l.mu.RLock()
	defer l.mu.RUnlock()
	return e.listJSON(l, false), nil
}

func (e *Emulator) getLists(r *http.Request, a *account) (any, error) {
	count, offset, err := pageParams(r)
	if err != nil {
		return nil, err
	}
	incTotal := boolParam(r, "include_total_contacts")
	e.mu.RLock()
	all := append([]*list(nil), a.lists...)
	e.mu.RUnlock()
	if r.URL.Query().Get("sort_dir") == "DESC" {
		for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
			all[i], all[j] = all[j], all[i]
		}
	}
	out := []any{}
	for _, l := range pageOf(all, offset, count) {
		l.mu.RLock()
		out = append(out, e.listJSON(l, incTotal))
		l.mu.RUnlock()
	}
	return map[string]any{
		"lists":       out,
		"total_items": len(all),
		"constraints": map[string]any{"may_create": true, "max_instances": 100000, "current_total_instances": len(all)},
		"_links":      []any{},
	}, nil
}

func (e *Emulator) getList(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return e.listJSON(l, boolParam(r, "include_total_contacts")), nil
}

func (e *Emulator) patchList(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	var b listBody
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	// The document marks the same fields required on PATCH as on POST.
	if perr := b.validate(true); perr != nil {
		return nil, perr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b.applyTo(&l.set)
	return e.listJSON(l, false), nil
}

func (e *Emulator) deleteList(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	delete(e.lists, l.id)
	for i, x := range a.lists {
		if x == l {
			a.lists = append(a.lists[:i], a.lists[i+1:]...)
			break
		}
	}
	e.mu.Unlock()
	return nil, nil
}

// listJSON renders an audience. The caller holds l.mu for reading.
func (e *Emulator) listJSON(l *list, incTotal bool) map[string]any {
	nfields := 0
	for _, f := range l.fields {
		if !f.deleted {
			nfields++
		}
	}
	stats := map[string]any{
		"member_count":                 l.counts[stSubscribed],
		"unsubscribe_count":            l.counts[stUnsubscribed],
		"cleaned_count":                l.counts[stCleaned],
		"member_count_since_send":      l.counts[stSubscribed],
		"unsubscribe_count_since_send": l.counts[stUnsubscribed],
		"cleaned_count_since_send":     l.counts[stCleaned],
		"campaign_count":               0,
		"campaign_last_sent":           "",
		"merge_field_count":            nfields,
		"avg_sub_rate":                 0,
		"avg_unsub_rate":               0,
		"target_sub_rate":              0,
		"open_rate":                    0,
		"click_rate":                   0,
		"last_sub_date":                isoTime(l.lastSub),
		"last_unsub_date":              isoTime(l.lastUnsub),
	}
	if incTotal {
		total := 0
		for s, n := range l.counts {
			if status(s) != stDeleted {
				total += n
			}
		}
		stats["total_contacts"] = total
	}
	contact, defaults := l.set.Contact, l.set.CampaignDefaults
	if contact == nil {
		contact = json.RawMessage(`{}`)
	}
	if defaults == nil {
		defaults = json.RawMessage(`{}`)
	}
	return map[string]any{
		"id":                    l.id,
		"web_id":                l.webID,
		"name":                  l.set.Name,
		"contact":               contact,
		"permission_reminder":   l.set.PermissionReminder,
		"use_archive_bar":       l.set.UseArchiveBar,
		"campaign_defaults":     defaults,
		"notify_on_subscribe":   l.set.NotifyOnSubscribe,
		"notify_on_unsubscribe": l.set.NotifyOnUnsubscribe,
		"date_created":          isoTime(l.created),
		"list_rating":           0,
		"email_type_option":     l.set.EmailTypeOption,
		"subscribe_url_short":   "http://eepurl.com/emulated",
		"subscribe_url_long":    "https://emulator.invalid/subscribe?id=" + l.id,
		"beamer_address":        "us1-" + l.id + "@inbound.mailchimp.com",
		"visibility":            "prv",
		"double_optin":          l.set.DoubleOptin,
		"has_welcome":           false,
		"marketing_permissions": l.set.MarketingPermissions,
		"modules":               []string{},
		"stats":                 stats,
		"_links":                []any{},
	}
}
