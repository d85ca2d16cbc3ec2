package mailchimp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	e := &Error{Status: 400, Title: "Invalid Resource", Detail: "Your merge fields were invalid.",
		Op: "PUT /lists/{list_id}/members/{hash}", Fields: []FieldError{{"LTV", "Please enter a number"}, {"", "bad"}}}
	want := "mailchimp PUT /lists/{list_id}/members/{hash}: 400 Invalid Resource: Your merge fields were invalid. (LTV: Please enter a number; bad)"
	if got := e.Error(); got != want {
		t.Errorf("Error() =\n %s\nwant\n %s", got, want)
	}
}

func TestErrorPredicates(t *testing.T) {
	t.Parallel()
	wrap := func(e *Error) error { return fmt.Errorf("sending contact: %w", e) }
	compliance := wrap(&Error{Status: 400, Title: "Member In Compliance State"})
	forgotten := wrap(&Error{Status: 400, Title: "Forgotten Email Not Subscribed"})
	fake := wrap(&Error{Status: 400, Title: "Invalid Resource", Detail: "x@y.com looks fake or invalid, please enter a real email address."})
	exists := wrap(&Error{Status: 400, Title: "Member Exists"})
	notFound := wrap(&Error{Status: 404, Title: "Resource Not Found"})
	unauth := wrap(&Error{Status: 401, Title: "API Key Invalid"})
	forbidden := wrap(&Error{Status: 403, Title: "Forbidden"})
	limited := wrap(&Error{Status: 429, Title: "Too Many Requests"})
	plain := errors.New("boom")

	tests := []struct {
		name string
		is   func(error) bool
		yes  []error
		no   []error
	}{
		{"IsComplianceState", IsComplianceState, []error{compliance}, []error{forgotten, fake, plain, nil}},
		{"IsForgotten", IsForgotten, []error{forgotten}, []error{compliance, plain}},
		{"IsInvalidResource", IsInvalidResource, []error{fake}, []error{compliance, notFound}},
		{"IsFakeOrInvalidAddress", IsFakeOrInvalidAddress, []error{fake}, []error{compliance}},
		{"IsMemberExists", IsMemberExists, []error{exists}, []error{fake}},
		{"IsNotFound", IsNotFound, []error{notFound}, []error{fake, plain}},
		{"IsAuth", IsAuth, []error{unauth, forbidden}, []error{notFound, limited, plain}},
		{"IsRateLimited", IsRateLimited, []error{limited}, []error{forbidden}},
	}
	for _, tt := range tests {
		for _, err := range tt.yes {
			if !tt.is(err) {
				t.Errorf("%s(%v) = false", tt.name, err)
			}
		}
		for _, err := range tt.no {
			if tt.is(err) {
				t.Errorf("%s(%v) = true", tt.name, err)
			}
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		kind   Kind
		reason string // prefix
	}{
		{"compliance", &Error{Status: 400, Title: "Member In Compliance State", Detail: "a@b.org is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed."}, Permanent, ReasonComplianceState},
		{"forgotten", &Error{Status: 400, Title: "Forgotten Email Not Subscribed", Detail: "a@b.org was permanently deleted and cannot be re-imported."}, Permanent, ReasonForgotten},
		{"fake address", &Error{Status: 400, Title: "Invalid Resource", Detail: "a@example.com looks fake or invalid, please enter a real email address."}, Permanent, ReasonInvalidAddress},
		{"merge value", &Error{Status: 400, Title: "Invalid Resource", Detail: "Your merge fields were invalid.", Fields: []FieldError{{"LTV", "Please enter a number"}}}, Permanent, ReasonInvalidMergeValue},
		{"signup throttle", &Error{Status: 400, Title: "Invalid Resource", Detail: "a@b.org has signed up to a lot of lists very recently; we're not allowing more signups for now"}, Transient, ReasonSignupThrottled},
		{"member exists", &Error{Status: 400, Title: "Member Exists"}, Permanent, ReasonContactExists},
		{"other 400", &Error{Status: 400, Title: "Bad Request", Detail: "x"}, Permanent, ReasonInvalid},
		{"archive refused", &Error{Status: 405, Title: "Method Not Allowed", Detail: "Can not archive a contact that is bounced, pending or archived"}, Permanent, ReasonNotAllowed},
		{"not found", &Error{Status: 404, Title: "Resource Not Found"}, Permanent, ReasonNotFound},
		{"rate limited", &Error{Status: 429, Title: "Too Many Requests"}, Transient, ReasonRateLimited},
		{"auth", &Error{Status: 401, Title: "API Key Invalid"}, Transient, ReasonAuth},
		{"server", &Error{Status: 503, Title: "Service Unavailable"}, Transient, ReasonServer},
		{"timeout", fmt.Errorf("x: %w", ErrTimeout), Transient, ReasonNetwork},
		{"network", errors.New("connection reset by peer"), Transient, ReasonNetwork},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), Transient, ReasonCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, reason := Classify(fmt.Errorf("call: %w", tt.err))
			if kind != tt.kind || !strings.HasPrefix(reason, tt.reason+": ") {
				t.Errorf("Classify = %v, %q; want %v, %s: …", kind, reason, tt.kind, tt.reason)
			}
		})
	}
	if k, r := Classify(nil); k != Transient || r != "" {
		t.Errorf("Classify(nil) = %v, %q", k, r)
	}
}

func TestClassifyBatchError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		be     BatchError
		kind   Kind
		reason string
	}{
		{"exists", BatchError{Error: "a@b.org is already a list member", ErrorCode: "ERROR_CONTACT_EXISTS"}, Permanent, ReasonContactExists},
		{"compliance", BatchError{Error: "a@b.org is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.", ErrorCode: "ERROR_GENERIC"}, Permanent, ReasonComplianceState},
		{"forgotten", BatchError{Error: "a@b.org was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.", ErrorCode: "ERROR_GENERIC"}, Permanent, ReasonForgotten},
		{"fake", BatchError{Error: "a@example.com looks fake or invalid, please enter a real email address.", ErrorCode: "ERROR_GENERIC"}, Permanent, ReasonInvalidAddress},
		{"merge", BatchError{Error: "Your merge fields were invalid.", ErrorCode: "ERROR_GENERIC", Field: "LTV", FieldMessage: "Please enter a number"}, Permanent, ReasonInvalidMergeValue},
		{"throttle", BatchError{Error: "a@b.org has signed up to a lot of lists very recently; we're not allowing more signups for now", ErrorCode: "ERROR_GENERIC"}, Transient, ReasonSignupThrottled},
		{"duplicate", BatchError{Error: "a@b.org appears more than once in this batch request.", ErrorCode: "ERROR_GENERIC"}, Permanent, ReasonDuplicateInBatch},
		{"unknown", BatchError{Error: "Something went wrong", ErrorCode: "ERROR_GENERIC"}, Transient, ReasonServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, reason := ClassifyBatchError(tt.be)
			if kind != tt.kind || !strings.HasPrefix(reason, tt.reason+": ") {
				t.Errorf("ClassifyBatchError = %v, %q; want %v, %s: …", kind, reason, tt.kind, tt.reason)
			}
		})
	}
}
