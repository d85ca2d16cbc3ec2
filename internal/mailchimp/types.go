package mailchimp

import (
	"encoding/json"
	"strings"
	"time"
)

// Time is a Mailchimp timestamp ("2015-09-15T14:40:36+00:00"); an empty
// string decodes to the zero time.
type Time struct{ time.Time }

// UnmarshalJSON accepts RFC 3339 strings, "" and null.
func (t *Time) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// MarshalJSON writes RFC 3339, or "" for the zero time.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte(`""`), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339))
}

// Member statuses.
const (
	StatusSubscribed    = "subscribed"
	StatusUnsubscribed  = "unsubscribed"
	StatusCleaned       = "cleaned"
	StatusPending       = "pending"
	StatusTransactional = "transactional"
	StatusArchived      = "archived" // read and filter only
)

// Root is the API root (GET /): the account behind the credential.
type Root struct {
	AccountID        string `json:"account_id"`
	LoginID          string `json:"login_id"`
	AccountName      string `json:"account_name"`
	Email            string `json:"email"`
	FirstName        string `json:"first_name"`
	LastName         string `json:"last_name"`
	Username         string `json:"username"`
	Role             string `json:"role"`
	AccountTimezone  string `json:"account_timezone"`
	PricingPlanType  string `json:"pricing_plan_type"`
	TotalSubscribers int64  `json:"total_subscribers"`
}

// Contact is an audience's postal contact (required by CAN-SPAM).
type Contact struct {
	Company  string `json:"company"`
	Address1 string `json:"address1"`
	Address2 string `json:"address2,omitempty"`
	City     string `json:"city"`
	State    string `json:"state"`
	Zip      string `json:"zip"`
	Country  string `json:"country"`
	Phone    string `json:"phone,omitempty"`
}

// CampaignDefaults are an audience's default sender.
type CampaignDefaults struct {
	FromName  string `json:"from_name"`
	FromEmail string `json:"from_email"`
	Subject   string `json:"subject"`
	Language  string `json:"language"`
}

// ListStats are an audience's (cached) counts.
type ListStats struct {
	MemberCount       int64 `json:"member_count"`
	TotalContacts     int64 `json:"total_contacts"`
	UnsubscribeCount  int64 `json:"unsubscribe_count"`
	CleanedCount      int64 `json:"cleaned_count"`
	MergeFieldCount   int   `json:"merge_field_count"`
	LastSubDate       Time  `json:"last_sub_date"`
	LastUnsubDate     Time  `json:"last_unsub_date"`
	MemberCountSince  int64 `json:"member_count_since_send"`
	UnsubscribeSince  int64 `json:"unsubscribe_count_since_send"`
	CleanedCountSince int64 `json:"cleaned_count_since_send"`
}

// List is an audience.
type List struct {
	ID                 string           `json:"id"`
	WebID              int64            `json:"web_id"`
	Name               string           `json:"name"`
	Contact            Contact          `json:"contact"`
	PermissionReminder string           `json:"permission_reminder"`
	CampaignDefaults   CampaignDefaults `json:"campaign_defaults"`
	EmailTypeOption    bool             `json:"email_type_option"`
	DoubleOptin        bool             `json:"double_optin"`
	DateCreated        Time             `json:"date_created"`
	Stats              ListStats        `json:"stats"`
}

// ListInput creates an audience; every field but DoubleOptin is required by
// Mailchimp.
type ListInput struct {
	Name               string           `json:"name"`
	Contact            Contact          `json:"contact"`
	PermissionReminder string           `json:"permission_reminder"`
	CampaignDefaults   CampaignDefaults `json:"campaign_defaults"`
	EmailTypeOption    bool             `json:"email_type_option"`
	DoubleOptin        bool             `json:"double_optin,omitempty"`
}

// Merge field types.
const (
	MergeText     = "text"
	MergeNumber   = "number"
	MergeDate     = "date"
	MergeBirthday = "birthday"
	MergeAddress  = "address"
	MergePhone    = "phone"
	MergeURL      = "url"
	MergeImageURL = "imageurl"
	MergeRadio    = "radio"
	MergeDropdown = "dropdown"
	MergeZip      = "zip"
)

// MergeFieldOptions are a merge field's type-specific options.
type MergeFieldOptions struct {
	DefaultCountry int      `json:"default_country,omitempty"`
	PhoneFormat    string   `json:"phone_format,omitempty"`
	DateFormat     string   `json:"date_format,omitempty"`
	Choices        []string `json:"choices,omitempty"`
	Size           int      `json:"size,omitempty"`
}

// MergeField is an audience field. As input (CreateMergeField) Name and
// Type are required; MergeID and ListID are ignored.
type MergeField struct {
	MergeID      int                `json:"merge_id,omitempty"`
	Tag          string             `json:"tag,omitempty"`
	Name         string             `json:"name"`
	Type         string             `json:"type"`
	Required     bool               `json:"required,omitempty"`
	DefaultValue string             `json:"default_value,omitempty"`
	Public       bool               `json:"public,omitempty"`
	DisplayOrder int                `json:"display_order,omitempty"`
	Options      *MergeFieldOptions `json:"options,omitempty"`
	HelpText     string             `json:"help_text,omitempty"`
	ListID       string             `json:"list_id,omitempty"`
}

// Tag is a tag as carried by a member.
type Tag struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// Member is an audience member as Mailchimp returns it. With a "fields"
// narrowing only the requested fields are set.
type Member struct {
	ID              string          `json:"id"` // the subscriber hash
	EmailAddress    string          `json:"email_address"`
	UniqueEmailID   string          `json:"unique_email_id,omitempty"`
	ContactID       string          `json:"contact_id,omitempty"`
	WebID           int64           `json:"web_id,omitempty"`
	EmailType       string          `json:"email_type,omitempty"`
	Status          string          `json:"status"`
	MergeFields     map[string]any  `json:"merge_fields,omitempty"`
	Interests       map[string]bool `json:"interests,omitempty"`
	Language        string          `json:"language,omitempty"`
	VIP             bool            `json:"vip,omitempty"`
	TimestampSignup Time            `json:"timestamp_signup"`
	TimestampOpt    Time            `json:"timestamp_opt"`
	LastChanged     Time            `json:"last_changed"`
	TagsCount       int             `json:"tags_count,omitempty"`
	Tags            []Tag           `json:"tags,omitempty"`
	ListID          string          `json:"list_id,omitempty"`
}

// MemberInput is the body of the single-member writes. PutMember needs
// StatusIfNew and leaves an existing member's status alone unless Status is
// set; AddMember needs Status and may carry Tags; PatchMember sends only what
// is set. An empty string in MergeFields clears that field.
type MemberInput struct {
	EmailAddress string         `json:"email_address,omitempty"`
	Status       string         `json:"status,omitempty"`
	StatusIfNew  string         `json:"status_if_new,omitempty"`
	EmailType    string         `json:"email_type,omitempty"`
	MergeFields  map[string]any `json:"merge_fields,omitempty"`
	Language     string         `json:"language,omitempty"`
	VIP          *bool          `json:"vip,omitempty"`
	Tags         []string       `json:"tags,omitempty"`
}

// MemberPage is one page of a member listing.
type MemberPage struct {
	Members    []Member `json:"members"`
	TotalItems int      `json:"total_items"`
}

// BatchMember is one member of a batch subscribe. Status is required.
type BatchMember struct {
	EmailAddress string         `json:"email_address"`
	Status       string         `json:"status"`
	EmailType    string         `json:"email_type,omitempty"`
	MergeFields  map[string]any `json:"merge_fields,omitempty"`
	Language     string         `json:"language,omitempty"`
	VIP          *bool          `json:"vip,omitempty"`
	// EncodedMergeFields, sent when MergeFields is nil, are merge values
	// encoded already, as json.Marshal encodes their map (jsonenc.Map): a
	// caller that keeps its values encoded (for a hash, say) need not
	// build a map.
	EncodedMergeFields json.RawMessage `json:"-"`
}

// BatchError is one refused member of a batch subscribe.
type BatchError struct {
	EmailAddress string `json:"email_address"`
	Error        string `json:"error"`
	ErrorCode    string `json:"error_code"` // ERROR_CONTACT_EXISTS or ERROR_GENERIC
	Field        string `json:"field,omitempty"`
	FieldMessage string `json:"field_message,omitempty"`
}

// MemberRef is a member as a batch answer names it. Mailchimp answers
// with the full member; only what a batch's caller needs is decoded (a
// batch of 500 carries about half a megabyte of members).
type MemberRef struct {
	ID           string `json:"id"` // the subscriber hash
	EmailAddress string `json:"email_address"`
	Status       string `json:"status"`
}

// BatchResult is the answer of a batch subscribe.
type BatchResult struct {
	NewMembers     []MemberRef  `json:"new_members"`
	UpdatedMembers []MemberRef  `json:"updated_members"`
	Errors         []BatchError `json:"errors"`
	TotalCreated   int          `json:"total_created"`
	TotalUpdated   int          `json:"total_updated"`
	ErrorCount     int          `json:"error_count"`
	// Replayed reports that the request was sent again after an attempt
	// that may have been applied (its answer was lost): contacts reported
	// as existing may be ones this very call created.
	Replayed bool `json:"-"`
}

// Segment types.
const (
	SegmentStatic = "static"
	SegmentSaved  = "saved"
	SegmentFuzzy  = "fuzzy"
)

// Segment is a segment or tag (a static segment) of an audience.
type Segment struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	MemberCount int64  `json:"member_count"`
	Type        string `json:"type"`
	CreatedAt   Time   `json:"created_at"`
	UpdatedAt   Time   `json:"updated_at"`
	ListID      string `json:"list_id"`
}

// SegmentError is one refused group of addresses of a segment update.
type SegmentError struct {
	EmailAddresses []string `json:"email_addresses"`
	Error          string   `json:"error"`
}

// SegmentUpdate is the answer of UpdateSegmentMembers: the refusals and
// the counts. Addresses that are not in the audience are ignored by
// Mailchimp and counted in neither total. The members added and removed,
// which Mailchimp also lists (members_added, members_removed: up to a
// thousand member objects), are not asked for: nothing here reads them,
// and decoding them was a twentieth of a first export's allocations.
type SegmentUpdate struct {
	Errors       []SegmentError `json:"errors"`
	TotalAdded   int            `json:"total_added"`
	TotalRemoved int            `json:"total_removed"`
	ErrorCount   int            `json:"error_count"`
}

// TagUpdate adds (Active) or removes a tag of one member.
type TagUpdate struct {
	Name   string
	Active bool
}
