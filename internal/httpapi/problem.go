package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/export"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/hooks"
	"github.com/segsync/segsync/internal/source/connector"
	"github.com/segsync/segsync/internal/store"
)

// Problem is an RFC 9457 problem detail. A handler may return one to choose
// the status and detail itself; other errors are mapped by errorProblem.
type Problem struct {
	Type   string           `json:"type"`
	Title  string           `json:"title"`
	Status int              `json:"status"`
	Detail string           `json:"detail,omitempty"`
	Errors []fielderr.Error `json:"errors,omitempty"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail)
	}
	return fmt.Sprintf("%d %s", p.Status, p.Title)
}

// problemf builds a Problem with the standard title of status.
func problemf(status int, format string, args ...any) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: fmt.Sprintf(format, args...)}
}

// errorProblem maps an error to the problem the client sees. internal reports
// that the error is the server's fault: it is logged and its text hidden.
func errorProblem(err error) (p *Problem, internal bool) {
	var prob *Problem
	var fields fielderr.List
	var fieldErr fielderr.Error
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &prob):
		return prob, prob.Status >= 500
	// The services' own errors. An upstream (Mailchimp, a data source) that
	// fails or cannot be reached is a 502, logged like a server fault.
	case errors.Is(err, connection.ErrUpstream), errors.Is(err, export.ErrUpstream), errors.Is(err, connector.ErrSource):
		return problemf(http.StatusBadGateway, "%s", err.Error()), true
	case errors.Is(err, connection.ErrOAuthDisabled):
		return problemf(http.StatusNotImplemented, "%s", err.Error()), true
	case errors.Is(err, hooks.ErrBadEvent):
		return problemf(http.StatusBadRequest, "%s", err.Error()), false
	case errors.Is(err, hooks.ErrUnknownHook):
		return problemf(http.StatusNotFound, "webhook: %s", err.Error()), false
	case errors.Is(err, auth.ErrThrottled):
		return problemf(http.StatusTooManyRequests, "%s", err.Error()), false
	case errors.As(err, &fields):
		p := problemf(http.StatusBadRequest, "%s", fields.Error())
		p.Errors = fields
		return p, false
	case errors.As(err, &fieldErr):
		p := problemf(http.StatusBadRequest, "%s", fieldErr.Error())
		p.Errors = []fielderr.Error{fieldErr}
		return p, false
	case errors.As(err, &tooLarge):
		return problemf(http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", tooLarge.Limit), false
	case errors.Is(err, store.ErrNotFound):
		return problemf(http.StatusNotFound, "%s", err.Error()), false
	case errors.Is(err, store.ErrConflict):
		return problemf(http.StatusConflict, "%s", err.Error()), false
	case errors.Is(err, store.ErrInvalid):
		return problemf(http.StatusBadRequest, "%s", err.Error()), false
	case errors.Is(err, auth.ErrUnauthenticated):
		return problemf(http.StatusUnauthorized, "%s", err.Error()), false
	case errors.Is(err, auth.ErrForbidden):
		return problemf(http.StatusForbidden, "%s", err.Error()), false
	}
	p = problemf(http.StatusInternalServerError, "")
	p.Detail = "an internal error occurred; it was logged"
	return p, true
}

// writeError writes err as problem+json, logging server faults.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client went away; nobody is left to read an answer.
		s.log.DebugContext(r.Context(), "request cancelled", "method", r.Method, "path", r.URL.Path, "err", err)
		return
	}
	p, internal := errorProblem(err)
	if internal {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "route", r.Pattern, "err", err)
	}
	writeProblem(w, p)
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON writes v as a JSON response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("writing response: %w", err)
	}
	return nil
}

// adapt turns a HandlerFunc into an http.Handler; errors become problems
// unless the handler already started its answer, in which case they are
// only logged (the status line is gone).
func (s *Server) adapt(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		err := h(tw, r)
		if err == nil {
			return
		}
		if tw.wrote {
			if r.Context().Err() == nil {
				s.log.ErrorContext(r.Context(), "request failed after the response started", "method", r.Method, "route", r.Pattern, "err", err)
			}
			return
		}
		s.writeError(w, r, err)
	})
}

// trackingWriter remembers whether the response has started.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) {
	if code >= 200 {
		t.wrote = true
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines, flush).
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
