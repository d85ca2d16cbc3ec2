package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/segsync/segsync/internal/fielderr"
)

// maxAPIResponse bounds what one in-process API call may buffer; listings
// the UI shows are far smaller, and large downloads are streamed instead.
const maxAPIResponse = 32 << 20

type fieldError = fielderr.Error

// APIError is a problem+json answer of the API.
type APIError struct {
	Status int              `json:"status"`
	Title  string           `json:"title"`
	Detail string           `json:"detail"`
	Errors []fielderr.Error `json:"errors"`
}

func (e *APIError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, e.Title, e.Detail)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Title)
}

// statusOf is the HTTP status of an API error, 0 for other errors.
func statusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// memWriter collects an in-process answer.
type memWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	over   bool
}

func newMemWriter() *memWriter { return &memWriter{header: http.Header{}} }

func (m *memWriter) Header() http.Header { return m.header }

func (m *memWriter) WriteHeader(code int) {
	if m.status == 0 {
		m.status = code
	}
}

func (m *memWriter) Write(b []byte) (int, error) {
	if m.status == 0 {
		m.status = http.StatusOK
	}
	if m.body.Len()+len(b) > maxAPIResponse {
		m.over = true
		return 0, errors.New("web: API answer too large to buffer")
	}
	return m.body.Write(b)
}

// apiRequest builds an in-process request to the API on behalf of the
// browser request r: it carries r's context, session cookie and origin
// headers (so the API's cross-origin protection judges the browser's
// request), and, for state-changing calls, csrf as the CSRF header.
func (u *UI) apiRequest(r *http.Request, p *Page, method, path string, body io.Reader, contentType string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(r.Context(), method, path, body)
	if err != nil {
		return nil, fmt.Errorf("building API request %s %s: %w", method, path, err)
	}
	req.Host = r.Host
	req.RemoteAddr = r.RemoteAddr
	req.TLS = r.TLS
	for _, h := range []string{"Cookie", "Origin", "Sec-Fetch-Site", "Referer", "User-Agent", "X-Forwarded-Proto", "X-Forwarded-For"} {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if method != http.MethodGet && method != http.MethodHead && p != nil {
		// The token the form carried, not the session's own: the API
		// compares the two, so a forged form fails there.
		req.Header.Set("X-CSRF-Token", p.formCSRF)
	}
	return req, nil
}

// call makes one API call and decodes its JSON answer into out (when not
// nil). A problem answer is an *APIError.
func (u *UI) call(r *http.Request, p *Page, method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the request to %s: %w", path, err)
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	_, err := u.send(r, p, method, path, body, ct, out)
	return err
}

// send makes one API call with a raw body and returns the answer's header.
func (u *UI) send(r *http.Request, p *Page, method, path string, body io.Reader, contentType string, out any) (http.Header, error) {
	req, err := u.apiRequest(r, p, method, path, body, contentType)
	if err != nil {
		return nil, err
	}
	mw := newMemWriter()
	u.deps.API.ServeHTTP(mw, req)
	if mw.over {
		return mw.header, fmt.Errorf("%s %s: the answer is too large", method, path)
	}
	if mw.status == 0 {
		mw.status = http.StatusOK
	}
	if mw.status >= 400 {
		ae := &APIError{Status: mw.status}
		if err := json.Unmarshal(mw.body.Bytes(), ae); err != nil || ae.Status == 0 {
			ae = &APIError{Status: mw.status, Title: http.StatusText(mw.status)}
		}
		return mw.header, ae
	}
	if out != nil && mw.status != http.StatusNoContent && mw.body.Len() > 0 {
		dec := json.NewDecoder(&mw.body)
		dec.UseNumber()
		if err := dec.Decode(out); err != nil {
			return mw.header, fmt.Errorf("decoding the answer of %s %s: %w", method, path, err)
		}
	}
	return mw.header, nil
}

// proxy hands the browser's request to the API as is, for downloads that
// are streamed (rejections as CSV).
func (u *UI) proxy(w http.ResponseWriter, r *http.Request, p *Page, path, accept string) error {
	req, err := u.apiRequest(r, p, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	req.Header.Set("Accept", accept)
	u.deps.API.ServeHTTP(w, req)
	return nil
}

// apiPath joins path segments and a query into an API path.
func apiPath(query url.Values, segs ...string) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('/')
			s = url.PathEscape(s)
		}
		b.WriteString(s)
	}
	if len(query) > 0 {
		b.WriteByte('?')
		b.WriteString(query.Encode())
	}
	return b.String()
}
