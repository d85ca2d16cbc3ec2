package web

import (
	"errors"
	"net/http"
	"strings"
)

// formErrors puts the API's refusal of a form next to its fields: each
// field error under the form field fieldOf names (the field itself when
// fieldOf is nil or returns ""), in friendlier words from messages when it
// has some for the field. It returns nil when the form should be shown again
// with the messages, and err itself for everything else (sign-in needed,
// forbidden, server faults).
func (p *Page) formErrors(err error, fieldOf func(string) string, messages map[string]string) error {
	var ae *APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Status {
	case http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadGateway,
		http.StatusNotImplemented, http.StatusRequestEntityTooLarge:
	default:
		return err
	}
	if len(ae.Errors) == 0 {
		msg := friendly(ae.Detail)
		switch ae.Status {
		case http.StatusBadGateway:
			msg = "Mailchimp could not be reached or refused the request: " + msg
		case http.StatusConflict:
			if msg == "" {
				msg = "This conflicts with something that already exists."
			}
		}
		p.Problem = msg
		return nil
	}
	for _, fe := range ae.Errors {
		field := fe.Field
		if fieldOf != nil {
			if f := fieldOf(fe.Field); f != "" {
				field = f
			}
		}
		msg := messages[field]
		if msg == "" {
			msg = friendly(fe.Message)
		}
		if field == "" {
			p.Problem = joinMsg(p.Problem, msg)
			continue
		}
		if prev := p.Errors[field]; prev != "" && prev != msg {
			msg = prev + " " + msg
		}
		p.Errors[field] = msg
	}
	return nil
}

func joinMsg(a, b string) string {
	if a == "" {
		return b
	}
	return a + " " + b
}

// formErr adds one form error the UI found itself (a value it cannot turn
// into what the API expects).
func (p *Page) formErr(field, msg string) { p.Errors[field] = msg }

// hasErrors tells whether the form has any message.
func (p *Page) hasErrors() bool { return len(p.Errors) > 0 || p.Problem != "" }

// trimmed is a trimmed form value.
func (p *Page) trimmed(field string) string { return strings.TrimSpace(p.Form.Get(field)) }
