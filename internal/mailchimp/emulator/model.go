package emulator

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"time"
)

// status is a member's subscription state, stored in one byte.
type status uint8

const (
	stSubscribed status = iota
	stUnsubscribed
	stCleaned
	stPending
	stTransactional
	stArchived
	stDeleted // permanently deleted: a tombstone, invisible to the API
	numStatus
)

var statusNames = [numStatus]string{"subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived", "deleted"}

func (s status) String() string { return statusNames[s] }

// parseWritableStatus accepts the statuses a caller may set.
func parseWritableStatus(s string) (status, bool) {
	for i := stSubscribed; i <= stTransactional; i++ {
		if statusNames[i] == s {
			return i, true
		}
	}
	return 0, false
}

// member flags.
const (
	flagCompliance uint8 = 1 << iota // unsubscribed themselves, bounced or set cleaned: cannot be re-subscribed
	flagVIP
	flagTextEmail // email_type "text"
)

// member is one contact of an audience. It is kept small: merge values are
// positional by merge field slot, tags are small ids, the subscriber hash is
// the index key and is recomputed when needed.
type member struct {
	email       string
	merge       []string // by list.fields slot; "" is empty
	tags        []tagRef
	ext         *memberExt
	lastChanged int64 // unix seconds
	signupAt    int64
	optAt       int64
	status      status
	prev        status // status before it was archived
	flags       uint8
}

// memberExt holds rarely used member data.
type memberExt struct {
	language string
	ipSignup string
	ipOpt    string
	// firstHash is the subscriber hash of the contact's first address,
	// kept once the address was changed (moved) for a stable contact_id.
	firstHash [16]byte
	moved     bool
}

// tagRef is a tag on a member: the list-local tag index and when it was added.
type tagRef struct {
	idx uint32
	at  uint32 // unix seconds
}

// tag is a static segment (Mailchimp: "static segments are now known as
// tags") or a saved segment.
type tag struct {
	id      int
	name    string
	typ     string // static or saved
	created int64
	updated int64
	count   int // members carrying it
	options json.RawMessage
	deleted bool
}

// mergeField is one audience field definition.
type mergeField struct {
	id           int
	tag          string
	name         string
	typ          string
	required     bool
	public       bool
	defaultValue string
	displayOrder int
	helpText     string
	options      mergeOptions
	deleted      bool
}

type mergeOptions struct {
	DefaultCountry int      `json:"default_country,omitempty"`
	PhoneFormat    string   `json:"phone_format,omitempty"`
	DateFormat     string   `json:"date_format,omitempty"`
	Choices        []string `json:"choices,omitempty"`
	Size           int      `json:"size,omitempty"`
}

// listSettings are the audience's descriptive settings as the API shows them.
type listSettings struct {
	Name                 string          `json:"name"`
	Contact              json.RawMessage `json:"contact"`
	PermissionReminder   string          `json:"permission_reminder"`
	UseArchiveBar        bool            `json:"use_archive_bar"`
	CampaignDefaults     json.RawMessage `json:"campaign_defaults"`
	NotifyOnSubscribe    string          `json:"notify_on_subscribe"`
	NotifyOnUnsubscribe  string          `json:"notify_on_unsubscribe"`
	EmailTypeOption      bool            `json:"email_type_option"`
	DoubleOptin          bool            `json:"double_optin"`
	MarketingPermissions bool            `json:"marketing_permissions"`
}

// list is one audience with its own lock.
type list struct {
	mu      sync.RWMutex
	id      string
	webID   int
	account *account
	created int64
	set     listSettings

	fields    []*mergeField // slots; deleted ones stay to keep slots stable
	members   []member
	index     map[[16]byte]int32
	forgotten map[[16]byte]struct{}
	counts    [numStatus]int
	tags      []*tag
	tagByName map[string]uint32 // lower-cased name -> index
	tagByID   map[int]uint32

	lastSub   int64
	lastUnsub int64
	hooks     []*webhook // registered webhooks, creation order
	version   uint64     // bumped on every change to members; invalidates the listing cache
	cache     *listingCache
}

// subscriberHash is Mailchimp's member id: MD5 of the lower-cased address.
// It is Mailchimp's side, written apart from segsync's emailaddr.Hash on
// purpose, so that tests against the emulator catch a wrong hash in segsync.
func subscriberHash(email string) [16]byte {
	return md5.Sum([]byte(strings.ToLower(email)))
}

func hashHex(h [16]byte) string { return hex.EncodeToString(h[:]) }

// parseMemberKey turns the {subscriber_hash} path value (an MD5 hash or the
// address itself) into a hash.
func parseMemberKey(s string) ([16]byte, bool) {
	var h [16]byte
	if strings.Contains(s, "@") {
		return subscriberHash(s), true
	}
	if len(s) != 32 {
		return h, false
	}
	if _, err := hex.Decode(h[:], []byte(strings.ToLower(s))); err != nil {
		return h, false
	}
	return h, true
}

// lookup returns the index of a member that is not permanently deleted.
func (l *list) lookup(h [16]byte) (int32, bool) {
	i, ok := l.index[h]
	if !ok || l.members[i].status == stDeleted {
		return 0, false
	}
	return i, true
}

// setStatus changes a member's status and keeps the counts.
func (l *list) setStatus(m *member, s status, now int64) {
	if m.status == s {
		return
	}
	l.counts[m.status]--
	l.counts[s]++
	if s == stArchived {
		m.prev = m.status
	}
	m.status = s
	switch s {
	case stSubscribed:
		l.lastSub = now
		m.optAt = now
	case stUnsubscribed:
		l.lastUnsub = now
	}
}

// addMember appends a new member and indexes it.
func (l *list) addMember(h [16]byte, m member) int32 {
	i := int32(len(l.members))
	l.members = append(l.members, m)
	l.index[h] = i
	l.counts[m.status]++
	if m.status == stSubscribed {
		l.lastSub = m.lastChanged
	}
	return i
}

// liveFields returns the field slots in use, in slot order.
func (l *list) liveFields() []int {
	out := make([]int, 0, len(l.fields))
	for i, f := range l.fields {
		if !f.deleted {
			out = append(out, i)
		}
	}
	return out
}

func (l *list) fieldByTag(tagName string) (int, bool) {
	for i, f := range l.fields {
		if !f.deleted && f.tag == tagName {
			return i, true
		}
	}
	return 0, false
}

// tagIndex returns the index of the tag named name, creating it when create.
func (l *list) tagIndex(name string, create bool, now int64, nextID func() int) (uint32, bool) {
	key := strings.ToLower(name)
	if i, ok := l.tagByName[key]; ok {
		return i, true
	}
	if !create {
		return 0, false
	}
	t := &tag{id: nextID(), name: name, typ: "static", created: now, updated: now}
	i := uint32(len(l.tags))
	l.tags = append(l.tags, t)
	l.tagByName[key] = i
	l.tagByID[t.id] = i
	return i, true
}

// addTag puts tag idx on m; it reports whether m did not carry it.
func (l *list) addTag(m *member, idx uint32, now int64) bool {
	for _, r := range m.tags {
		if r.idx == idx {
			return false
		}
	}
	m.tags = append(m.tags, tagRef{idx: idx, at: uint32(now)})
	l.tags[idx].count++
	return true
}

// removeTag takes tag idx off m; it reports whether m carried it.
func (l *list) removeTag(m *member, idx uint32) bool {
	for j, r := range m.tags {
		if r.idx == idx {
			m.tags = append(m.tags[:j], m.tags[j+1:]...)
			if len(m.tags) == 0 {
				m.tags = nil
			}
			l.tags[idx].count--
			return true
		}
	}
	return false
}

func (l *list) touch() { l.version++; l.cache = nil }

func isoTime(sec int64) string {
	if sec == 0 {
		return ""
	}
	return time.Unix(sec, 0).UTC().Format("2006-01-02T15:04:05+00:00")
}

// defaultFields are the fields of a new audience.
func (e *Emulator) defaultFields() []*mergeField {
	return []*mergeField{
		{id: 1, tag: "FNAME", name: "First Name", typ: "text", public: true, displayOrder: 2, options: mergeOptions{Size: 25}},
		{id: 2, tag: "LNAME", name: "Last Name", typ: "text", public: true, displayOrder: 3, options: mergeOptions{Size: 25}},
		{id: 3, tag: "ADDRESS", name: "Address", typ: "address", public: false, displayOrder: 4, options: mergeOptions{DefaultCountry: 164}},
		{id: 4, tag: "PHONE", name: "Phone Number", typ: "phone", public: false, displayOrder: 5, options: mergeOptions{PhoneFormat: "none"}},
	}
}
