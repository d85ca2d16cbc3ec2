package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/export"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/hooks"
	"github.com/segsync/segsync/internal/source/connector"
	"github.com/segsync/segsync/internal/store"
)

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	type inner struct {
		N int `json:"n"`
	}
	type body struct {
		Name  string `json:"name"`
		Inner inner  `json:"inner"`
	}
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int    // 0: success
		wantField   string // the field named in errors[0]
	}{
		{"ok", "application/json", `{"name":"a","inner":{"n":1}}`, 0, ""},
		{"ok with charset", "application/json; charset=utf-8", `{"name":"a"}`, 0, ""},
		{"wrong content type", "text/plain", `{"name":"a"}`, 415, ""},
		{"no content type", "", `{"name":"a"}`, 415, ""},
		{"unknown field", "application/json", `{"name":"a","nmae":"b"}`, 400, "nmae"},
		{"wrong type names the field", "application/json", `{"inner":{"n":"x"}}`, 400, "inner.n"},
		{"trailing data", "application/json", `{"name":"a"} {"name":"b"}`, 400, ""},
		{"trailing garbage", "application/json", `{"name":"a"}x`, 400, ""},
		{"malformed", "application/json", `{"name":`, 400, ""},
		{"syntax error", "application/json", `{"name" 1}`, 400, ""},
		{"empty", "application/json", ``, 400, ""},
		{"too large", "application/json", `{"name":"` + strings.Repeat("a", maxJSONBody) + `"}`, 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			var dst body
			err := decodeJSON(httptest.NewRecorder(), r, &dst)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("decodeJSON: %v", err)
				}
				return
			}
			p, _ := errorProblem(err)
			if p.Status != tt.wantStatus {
				t.Fatalf("status %d (%v), want %d", p.Status, err, tt.wantStatus)
			}
			if tt.wantField != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tt.wantField) {
				t.Fatalf("errors %+v, want field %q", p.Errors, tt.wantField)
			}
		})
	}
}

func TestErrorProblem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err          error
		wantStatus   int
		wantInternal bool
	}{
		{store.ErrNotFound, 404, false},
		{errors.Join(errors.New("segment 3"), store.ErrNotFound), 404, false},
		{store.ErrConflict, 409, false},
		{store.ErrInvalid, 400, false},
		{fielderr.New("rule.all[2].op", "unknown operator"), 400, false},
		{auth.ErrUnauthenticated, 401, false},
		{fmt.Errorf("role viewer: %w", auth.ErrForbidden), 403, false},
		{&auth.ThrottledError{Wait: time.Second}, 429, false},
		{fmt.Errorf("connection 1: %w: 500", connection.ErrUpstream), 502, true},
		{fmt.Errorf("audience: %w", export.ErrUpstream), 502, true},
		{fmt.Errorf("pulling: %w", connector.ErrSource), 502, true},
		{connection.ErrOAuthDisabled, 501, true},
		{fmt.Errorf("%w: no type", hooks.ErrBadEvent), 400, false},
		{hooks.ErrUnknownHook, 404, false},
		{problemf(http.StatusTeapot, "short and stout"), 418, false},
		{&http.MaxBytesError{Limit: 10}, 413, false},
		{errors.New("database exploded at 10.0.0.3"), 500, true},
	}
	for _, tt := range tests {
		p, internal := errorProblem(tt.err)
		if p.Status != tt.wantStatus || internal != tt.wantInternal {
			t.Errorf("errorProblem(%v) = %d internal=%v, want %d internal=%v", tt.err, p.Status, internal, tt.wantStatus, tt.wantInternal)
		}
		if internal && strings.Contains(p.Detail, "10.0.0.3") {
			t.Errorf("internal error text leaked: %q", p.Detail)
		}
	}
}

func TestProblemShape(t *testing.T) {
	t.Parallel()
	s := New(Deps{})
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	s.writeError(rec, r, fielderr.New("rule.all[2].op", "unknown operator \"like\""))
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q", ct)
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"type", "title", "status", "detail", "errors"} {
		if _, ok := got[k]; !ok {
			t.Errorf("problem lacks %q: %s", k, rec.Body.Bytes())
		}
	}
	if !bytes.Contains(rec.Body.Bytes(), []byte(`{"field":"rule.all[2].op","message":"unknown operator \"like\""}`)) {
		t.Errorf("errors not as expected: %s", rec.Body.Bytes())
	}
}
