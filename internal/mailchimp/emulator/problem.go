package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
)

// errorDocs is the "type" Mailchimp puts in every problem document.
const errorDocs = "https://mailchimp.com/developer/marketing/docs/errors/"

// fieldError is one entry of a problem document's errors array.
type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// apiError is a Mailchimp problem+json answer.
type apiError struct {
	status int
	title  string
	detail string
	errors []fieldError
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.title, e.detail) }

const detailValidation = "The resource submitted could not be validated. For field-specific details, see the 'errors' array."

func errNotFound() *apiError {
	return &apiError{status: http.StatusNotFound, title: "Resource Not Found", detail: "The requested resource could not be found."}
}

func errInvalid(detail string, errs ...fieldError) *apiError {
	if detail == "" {
		detail = detailValidation
	}
	return &apiError{status: http.StatusBadRequest, title: "Invalid Resource", detail: detail, errors: errs}
}

func errField(field, message string) *apiError {
	return errInvalid("", fieldError{Field: field, Message: message})
}

func errJSON() *apiError {
	return &apiError{status: http.StatusBadRequest, title: "JSON Parse Error", detail: "We encountered an unspecified JSON parsing error."}
}

func errMemberExists(email string) *apiError {
	return &apiError{status: http.StatusBadRequest, title: "Member Exists",
		detail: email + " is already a list member. Use PUT to insert or update list members."}
}

func errCompliance(email string) *apiError {
	return &apiError{status: http.StatusBadRequest, title: "Member In Compliance State",
		detail: email + " is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed."}
}

func errForgotten(email string) *apiError {
	return &apiError{status: http.StatusBadRequest, title: "Forgotten Email Not Subscribed",
		detail: email + " was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list."}
}

func errFakeEmail(email string) *apiError {
	return &apiError{status: http.StatusBadRequest, title: "Invalid Resource",
		detail: email + " looks fake or invalid, please enter a real email address."}
}

func errMergeFields(errs []fieldError) *apiError {
	return &apiError{status: http.StatusBadRequest, title: "Invalid Resource", detail: "Your merge fields were invalid.", errors: errs}
}

func errMethod(detail string) *apiError {
	return &apiError{status: http.StatusMethodNotAllowed, title: "Method Not Allowed", detail: detail}
}

// writeProblem writes e as Mailchimp does: problem+json with an instance id
// that is repeated in X-Request-Id.
func writeProblem(w http.ResponseWriter, e *apiError) {
	instance := newInstanceID()
	doc := struct {
		Type     string       `json:"type"`
		Title    string       `json:"title"`
		Status   int          `json:"status"`
		Detail   string       `json:"detail"`
		Instance string       `json:"instance"`
		Errors   []fieldError `json:"errors,omitempty"`
	}{errorDocs, e.title, e.status, e.detail, instance, e.errors}
	body, _ := json.Marshal(doc)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json; charset=utf-8")
	h.Set("X-Request-Id", instance)
	h.Set("Link", `<https://api.mailchimp.com/schema/3.0/ProblemDetailDocument.json>; rel="describedBy"`)
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

func newInstanceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}
