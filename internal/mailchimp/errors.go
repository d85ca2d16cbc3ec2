package mailchimp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error is an error answer from Mailchimp. It keeps the problem+json
// document; answers without one (a 429 or 403 under load, a proxy's HTML
// page) get the HTTP status text as Title and a short excerpt as Detail.
type Error struct {
	Status   int          `json:"status"`
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Detail   string       `json:"detail"`
	Instance string       `json:"instance"`
	Fields   []FieldError `json:"errors,omitempty"`

	// Op names the call, e.g. "PUT /lists/{list_id}/members/{hash}".
	Op string `json:"-"`
	// Problem reports whether the answer carried a problem+json document.
	Problem bool `json:"-"`
	// RetryAfter is the server's Retry-After hint, when it gave one.
	RetryAfter string `json:"-"`
}

// FieldError is one entry of a validation error's "errors" array.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("mailchimp")
	if e.Op != "" {
		b.WriteString(" ")
		b.WriteString(e.Op)
	}
	fmt.Fprintf(&b, ": %d %s", e.Status, e.Title)
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(" (")
		} else {
			b.WriteString("; ")
		}
		if f.Field != "" {
			b.WriteString(f.Field)
			b.WriteString(": ")
		}
		b.WriteString(f.Message)
		if i == len(e.Fields)-1 {
			b.WriteString(")")
		}
	}
	return b.String()
}

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func statusIs(err error, codes ...int) bool {
	e, ok := AsError(err)
	if !ok {
		return false
	}
	for _, c := range codes {
		if e.Status == c {
			return true
		}
	}
	return false
}

func titleIs(err error, status int, title string) bool {
	e, ok := AsError(err)
	return ok && e.Status == status && strings.EqualFold(e.Title, title)
}

// IsNotFound reports a 404: unknown audience, member, segment or merge field.
func IsNotFound(err error) bool { return statusIs(err, http.StatusNotFound) }

// IsAuth reports a 401 or 403: the key or token is invalid, disabled,
// revoked, for another data center, or its user may not do this. Such an
// error concerns the whole account, not one contact.
func IsAuth(err error) bool { return statusIs(err, http.StatusUnauthorized, http.StatusForbidden) }

// IsRateLimited reports a 429 that outlasted the retries.
func IsRateLimited(err error) bool { return statusIs(err, http.StatusTooManyRequests) }

// IsComplianceState reports "Member In Compliance State": the contact
// unsubscribed, bounced or is under review and cannot be subscribed.
func IsComplianceState(err error) bool {
	return titleIs(err, http.StatusBadRequest, "Member In Compliance State")
}

// IsForgotten reports "Forgotten Email Not Subscribed": the address was
// permanently deleted and cannot be re-imported.
func IsForgotten(err error) bool {
	return titleIs(err, http.StatusBadRequest, "Forgotten Email Not Subscribed")
}

// IsMemberExists reports "Member Exists" (POST of an address already in the
// audience).
func IsMemberExists(err error) bool { return titleIs(err, http.StatusBadRequest, "Member Exists") }

// IsInvalidResource reports "Invalid Resource": a fake or invalid address,
// invalid merge values, or another validation failure.
func IsInvalidResource(err error) bool {
	return titleIs(err, http.StatusBadRequest, "Invalid Resource")
}

// IsFakeOrInvalidAddress reports Mailchimp refusing the address itself.
func IsFakeOrInvalidAddress(err error) bool {
	e, ok := AsError(err)
	return ok && e.Status == http.StatusBadRequest && addressRefused(e.Detail)
}

// Kind says whether retrying the same request can succeed.
type Kind int

const (
	// Transient failures may succeed later: throttling, server faults,
	// network trouble, auth problems of the account, unknown errors.
	Transient Kind = iota
	// Permanent failures concern the contact's data or state; sending the
	// same data again cannot succeed.
	Permanent
)

func (k Kind) String() string {
	if k == Permanent {
		return "permanent"
	}
	return "transient"
}

// Reason codes used as the prefix of classification reasons.
const (
	ReasonComplianceState   = "compliance_state"
	ReasonForgotten         = "forgotten"
	ReasonInvalidAddress    = "invalid_address"
	ReasonInvalidMergeValue = "invalid_merge_value"
	ReasonContactExists     = "contact_exists"
	ReasonDuplicateInBatch  = "duplicate_in_batch"
	ReasonNotAllowed        = "not_allowed"
	ReasonNotFound          = "not_found"
	ReasonInvalid           = "invalid"
	ReasonSignupThrottled   = "signup_throttled"
	ReasonRateLimited       = "rate_limited"
	ReasonAuth              = "auth"
	ReasonServer            = "server_error"
	ReasonNetwork           = "network"
	ReasonCanceled          = "canceled"
)

// Classify sorts the error of a member-level call. The reason is
// "<code>: <Mailchimp's words>", e.g. "compliance_state: Member In
// Compliance State: a@b.org is in a compliance state …"; it holds no
// credential and is suitable for storing. A nil error is Transient with an
// empty reason.
func Classify(err error) (Kind, string) {
	if err == nil {
		return Transient, ""
	}
	if errors.Is(err, ErrTimeout) {
		return Transient, ReasonNetwork + ": " + err.Error()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Transient, ReasonCanceled + ": " + err.Error()
	}
	e, ok := AsError(err)
	if !ok {
		return Transient, ReasonNetwork + ": " + err.Error()
	}
	words := e.Title
	if e.Detail != "" {
		words += ": " + e.Detail
	}
	for _, f := range e.Fields {
		words += "; " + strings.TrimPrefix(f.Field+": ", ": ") + f.Message
	}
	switch {
	case e.Status == http.StatusTooManyRequests:
		return Transient, ReasonRateLimited + ": " + words
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return Transient, ReasonAuth + ": " + words
	case e.Status >= 500:
		return Transient, ReasonServer + ": " + words
	case e.Status == http.StatusNotFound:
		return Permanent, ReasonNotFound + ": " + words
	case e.Status == http.StatusMethodNotAllowed:
		return Permanent, ReasonNotAllowed + ": " + words
	case e.Status != http.StatusBadRequest:
		return Transient, ReasonInvalid + ": " + words
	}
	lower := strings.ToLower(e.Title + " " + e.Detail)
	switch {
	case IsComplianceState(e) || strings.Contains(lower, "compliance state"):
		return Permanent, ReasonComplianceState + ": " + words
	case IsForgotten(e) || strings.Contains(lower, "permanently deleted"):
		return Permanent, ReasonForgotten + ": " + words
	case IsMemberExists(e) || IsEmailExists(e):
		return Permanent, ReasonContactExists + ": " + words
	case strings.Contains(lower, "signed up to a lot of lists"):
		return Transient, ReasonSignupThrottled + ": " + words
	case addressRefused(e.Detail):
		return Permanent, ReasonInvalidAddress + ": " + words
	case len(e.Fields) > 0 || strings.Contains(lower, "merge field"):
		return Permanent, ReasonInvalidMergeValue + ": " + words
	default:
		return Permanent, ReasonInvalid + ": " + words
	}
}

// ClassifyBatchError sorts one per-member error of a batch subscribe.
func ClassifyBatchError(be BatchError) (Kind, string) {
	words := be.Error
	if be.Field != "" || be.FieldMessage != "" {
		words += " (" + strings.TrimPrefix(be.Field+": ", ": ") + be.FieldMessage + ")"
	}
	lower := strings.ToLower(be.Error)
	switch {
	case be.ErrorCode == "ERROR_CONTACT_EXISTS":
		return Permanent, ReasonContactExists + ": " + words
	case strings.Contains(lower, "compliance state"):
		return Permanent, ReasonComplianceState + ": " + words
	case strings.Contains(lower, "permanently deleted") || strings.Contains(lower, "forgotten"):
		return Permanent, ReasonForgotten + ": " + words
	case strings.Contains(lower, "signed up to a lot of lists"):
		return Transient, ReasonSignupThrottled + ": " + words
	case strings.Contains(lower, "appears more than once"):
		// The first occurrence in the batch was processed; this one is moot.
		return Permanent, ReasonDuplicateInBatch + ": " + words
	case addressRefused(be.Error):
		return Permanent, ReasonInvalidAddress + ": " + words
	case be.Field != "" || strings.Contains(lower, "merge field") || strings.Contains(lower, "please enter"):
		return Permanent, ReasonInvalidMergeValue + ": " + words
	case strings.Contains(lower, "invalid resource") || strings.Contains(lower, "is invalid"):
		return Permanent, ReasonInvalid + ": " + words
	default:
		return Transient, ReasonServer + ": " + words
	}
}

// addressRefused recognizes Mailchimp's words for an address it will not
// take ("looks fake or invalid, please enter a real email address", "…an
// invalid email address", "Please provide a valid email address.").
func addressRefused(detail string) bool {
	d := strings.ToLower(detail)
	return strings.Contains(d, "looks fake or invalid") ||
		strings.Contains(d, "invalid email address") ||
		strings.Contains(d, "valid email address") ||
		strings.Contains(d, "real email address")
}
