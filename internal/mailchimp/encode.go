package mailchimp

import (
	"encoding/json"
	"strconv"

	"github.com/segsync/segsync/internal/jsonenc"
)

// bodyAppender is a request body that encodes itself as json.Marshal
// would encode it, without reflection.
type bodyAppender interface {
	appendJSON(b []byte) ([]byte, error)
	size() int // about the bytes appendJSON appends, so they are allocated once
}

// batchBody is the body of a batch subscribe.
type batchBody struct {
	members        []BatchMember
	updateExisting bool
}

func (x batchBody) size() int {
	n := 64
	for _, m := range x.members {
		n += 64 + len(m.EmailAddress) + 48*len(m.MergeFields) + len(m.EncodedMergeFields)
	}
	return n
}

func (x batchBody) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"members":[`...)
	for i, m := range x.members {
		if i > 0 {
			b = append(b, ',')
		}
		if m.EmailType != "" || m.Language != "" || m.VIP != nil {
			enc, err := marshalMember(m) // fields segsync does not send
			if err != nil {
				return b, err
			}
			b = append(b, enc...)
			continue
		}
		b = append(b, `{"email_address":`...)
		b = jsonenc.String(b, m.EmailAddress)
		b = append(b, `,"status":`...)
		b = jsonenc.String(b, m.Status)
		switch {
		case len(m.MergeFields) > 0:
			b = append(b, `,"merge_fields":`...)
			var err error
			if b, err = jsonenc.Map(b, m.MergeFields); err != nil {
				return b, err
			}
		case m.MergeFields == nil && len(m.EncodedMergeFields) > len("{}"): // an empty map is left out
			b = append(b, `,"merge_fields":`...)
			b = append(b, m.EncodedMergeFields...)
		}
		b = append(b, '}')
	}
	b = append(b, `],"update_existing":`...)
	return append(strconv.AppendBool(b, x.updateExisting), '}'), nil
}

// marshalMember is json.Marshal of m, its encoded merge values included as
// they are.
func marshalMember(m BatchMember) ([]byte, error) {
	if m.MergeFields != nil || len(m.EncodedMergeFields) <= len("{}") {
		return json.Marshal(m)
	}
	return json.Marshal(struct {
		EmailAddress string          `json:"email_address"`
		Status       string          `json:"status"`
		EmailType    string          `json:"email_type,omitempty"`
		MergeFields  json.RawMessage `json:"merge_fields"`
		Language     string          `json:"language,omitempty"`
		VIP          *bool           `json:"vip,omitempty"`
	}{m.EmailAddress, m.Status, m.EmailType, m.EncodedMergeFields, m.Language, m.VIP})
}

// segmentBody is the body of a static segment's update: both arrays are
// present, empty rather than null.
type segmentBody struct{ add, remove []string }

func (x segmentBody) size() int {
	n := 64
	for _, s := range x.add {
		n += len(s) + 3
	}
	for _, s := range x.remove {
		n += len(s) + 3
	}
	return n
}

func (x segmentBody) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"members_to_add":`...)
	b = jsonenc.Strings(b, x.add)
	b = append(b, `,"members_to_remove":`...)
	return append(jsonenc.Strings(b, x.remove), '}'), nil
}
