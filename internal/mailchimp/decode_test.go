package mailchimp

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestDecodeAnswerIsUnmarshal decodes answers of every shape the client
// reads, and some that Mailchimp is not known to send (names in another
// case, a name twice, invalid UTF-8, nulls, unknown members), with
// decodeAnswer and with json.Unmarshal: the results must be the same, and
// so must the fact of an error.
func TestDecodeAnswerIsUnmarshal(t *testing.T) {
	tests := []struct {
		name   string
		answer string
		target func() any
	}{
		{"batch", `{"new_members":[{"id":"a1","email_address":"a@x.io","status":"subscribed","last_changed":"2026-12-06T10:00:00+00:00","merge_fields":{"FNAME":"A"}}],
			"updated_members":[],"errors":[{"email_address":"b@x.io","error":"b@x.io is already a list member","error_code":"ERROR_CONTACT_EXISTS"}],
			"total_created":1,"total_updated":0,"error_count":1,"_links":[{"rel":"self"}]}`, func() any { return &BatchResult{} }},
		{"batch names in other case", `{"New_Members":[{"ID":"a1","Email_Address":"a@x.io","STATUS":"pending"}],"TOTAL_CREATED":1}`, func() any { return &BatchResult{} }},
		{"names without their underscores", `{"newmembers":[{"id":"a"}],"total-created":1,"TotalCreated":2,"errorcount":3}`, func() any { return &BatchResult{} }},
		{"batch name twice", `{"total_created":1,"total_created":2,"new_members":[{"id":"a"}],"new_members":[{"id":"b"},{"id":"c"}]}`, func() any { return &BatchResult{} }},
		{"batch nulls", `{"new_members":null,"updated_members":[null,{"id":null,"status":"subscribed"}],"errors":null,"total_created":null}`, func() any { return &BatchResult{} }},
		{"invalid UTF-8", "{\"new_members\":[{\"id\":\"a\",\"email_address\":\"\xff\xfe@x.io\"}]}", func() any { return &BatchResult{} }},
		{"escapes", `{"errors":[{"email_address":"\u00e9@x.io","error":"line\nbreak \ud83d\ude00 \u2028"}]}`, func() any { return &BatchResult{} }},
		{"segment update", `{"members_added":[{"id":"a","email_address":"a@x.io","status":"subscribed"}],"members_removed":[],
			"errors":[{"email_addresses":["c@x.io","d@x.io"],"error":"not in the audience"}],"total_added":1,"total_removed":0,"error_count":2}`, func() any { return &SegmentUpdate{} }},
		{"member", `{"id":"a","email_address":"a@x.io","status":"unsubscribed","merge_fields":{"FNAME":"Ä","AGE":42,"SCORE":1.5e3,"VIP":true,"ADDR":{"addr1":"x","zip":"1234"},"NONE":null},
			"interests":{"abc":true},"vip":false,"timestamp_signup":"","timestamp_opt":null,"last_changed":"2026-12-06T10:00:00+00:00",
			"tags_count":2,"tags":[{"id":7,"name":"VIP"},{"id":8,"name":"Lapsed"}],"list_id":"L1","web_id":123456789}`, func() any { return &Member{} }},
		{"page", `{"members":[{"id":"a"}],"total_items":1,"_links":[]}`, func() any { return &map[string]json.RawMessage{} }},
		{"total", `1234`, func() any { n := 0; return &n }},
		{"flex id number", `{"id":12345}`, func() any { return &struct{ ID FlexID }{} }},
		{"flex id string", `{"id":"us1-abc"}`, func() any { return &struct{ ID FlexID }{} }},
		{"flex id null", `{"id":null}`, func() any { return &struct{ ID FlexID }{} }},
		{"bad time", `{"last_changed":"yesterday"}`, func() any { return &Member{} }},
		{"wrong type", `{"total_created":"1"}`, func() any { return &BatchResult{} }},
		{"truncated", `{"new_members":[{"id":"a"`, func() any { return &BatchResult{} }},
		{"trailing data", `{"total_created":1} x`, func() any { return &BatchResult{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, got := tt.target(), tt.target()
			werr := json.Unmarshal([]byte(tt.answer), want)
			gerr := decodeAnswer([]byte(tt.answer), got)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("error %v, json.Unmarshal's %v", gerr, werr)
			}
			if werr == nil && !reflect.DeepEqual(got, want) {
				t.Errorf("decoded %#v\njson.Unmarshal %#v", got, want)
			}
		})
	}
}
