package web

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/segsync/segsync/internal/auth"
)

// Me is the signed-in user as GET /api/v1/me tells it.
type Me struct {
	ID        int64     `json:"id"`
	Email     string    `json:"email"`
	Role      auth.Role `json:"role"`
	CSRFToken string    `json:"csrf_token"`
}

// Page is what every template gets: who is signed in, the CSRF token for
// forms, the section of the navigation, a flash message, the form's values
// and field errors, and the page's own data.
type Page struct {
	Me      Me
	Title   string
	Section string
	Flash   string
	// FlashError marks the flash as a problem rather than a success.
	FlashError bool
	// Errors are messages by form field; Problem is a message for the form
	// as a whole.
	Errors  map[string]string
	Problem string
	Form    url.Values
	Data    any
	// Reload, when positive, reloads the page after that many seconds
	// (pages that follow a pull or a refresh without script).
	Reload int

	formCSRF string
}

// CSRF is the token every form posts back.
func (p *Page) CSRF() string { return p.Me.CSRFToken }

// SignedIn reports whether someone is signed in.
func (p *Page) SignedIn() bool { return p.Me.ID != 0 }

// IsAdmin and CanWrite gate what the templates offer; the API decides.
func (p *Page) IsAdmin() bool  { return p.Me.Role.AtLeast(auth.Admin) }
func (p *Page) CanWrite() bool { return p.Me.Role.AtLeast(auth.Contributor) }

// Err is the error message of a form field, if any.
func (p *Page) Err(field string) string { return p.Errors[field] }

// Value is a form value as submitted.
func (p *Page) Value(field string) string { return p.Form.Get(field) }

// Checked reports whether a checkbox was ticked.
func (p *Page) Checked(field string) bool {
	v := p.Form.Get(field)
	return v == "on" || v == "true" || v == "1"
}

const flashCookie = "segsync_flash"

// page wraps a page handler with sign-in, the access decision and errors.
func (u *UI) page(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := &Page{Errors: map[string]string{}, Form: url.Values{}}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		if err := u.call(r, nil, http.MethodGet, "/api/v1/me", nil, &p.Me); err != nil {
			if statusOf(err) != http.StatusUnauthorized {
				u.fail(w, r, p, err)
				return
			}
			p.Me = Me{}
			if rt.Access != Public {
				u.toSignIn(w, r)
				return
			}
		}
		if rt.Access != Public && !p.Me.Role.AtLeast(rt.Access.role()) {
			u.fail(w, r, p, &APIError{Status: http.StatusForbidden, Title: "Forbidden"})
			return
		}
		if c, err := r.Cookie(flashCookie); err == nil {
			if msg, err := url.QueryUnescape(c.Value); err == nil && msg != "" {
				p.Flash, p.FlashError = strings.CutPrefix(msg, "!")
			}
			http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
		if r.Method == http.MethodPost && rt.Access != Public && !rt.Upload {
			// Every other form is small and URL-encoded; its token is
			// checked before the handler runs.
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if err := r.ParseForm(); err != nil || strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
				u.fail(w, r, p, &APIError{Status: http.StatusBadRequest, Title: "Bad Request", Detail: "the form could not be read"})
				return
			}
			p.Form = r.PostForm
			if err := u.checkCSRF(p, r.PostForm.Get("csrf_token")); err != nil {
				u.fail(w, r, p, err)
				return
			}
		}
		if err := rt.Handle(w, r, p); err != nil {
			u.fail(w, r, p, err)
		}
	})
}

// checkCSRF compares a form's token with the session's.
func (u *UI) checkCSRF(p *Page, got string) error {
	p.formCSRF = got
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(p.Me.CSRFToken)) != 1 {
		return &APIError{Status: http.StatusForbidden, Title: "Forbidden",
			Detail: "This form has expired. Go back, reload the page and try again."}
	}
	return nil
}

func (u *UI) toSignIn(w http.ResponseWriter, r *http.Request) {
	target := "/login"
	if r.Method == http.MethodGet && r.URL.Path != "/" {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// redirect sends the browser on after a successful change, with a message
// for the next page. A message starting with "!" is shown as a problem.
func redirect(w http.ResponseWriter, r *http.Request, to, flash string) error {
	if flash != "" {
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(flash), Path: "/", MaxAge: 60,
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// fail shows an error page fitting err.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, p *Page, err error) {
	if r.Context().Err() != nil {
		return
	}
	status, msg := http.StatusInternalServerError, "Something went wrong on our side. It was logged; please try again."
	var ae *APIError
	if errors.As(err, &ae) {
		status = ae.Status
		switch {
		case ae.Status == http.StatusUnauthorized:
			u.toSignIn(w, r)
			return
		case ae.Status == http.StatusForbidden:
			msg = "Your role does not allow this. Ask an administrator if you need it."
			if ae.Detail != "" && strings.HasPrefix(ae.Detail, "This form") {
				msg = ae.Detail
			}
		case ae.Status == http.StatusNotFound:
			msg = "This page or item does not exist (any more)."
		case ae.Status < 500:
			msg = friendly(ae.Detail)
			if msg == "" {
				msg = ae.Title
			}
		default:
			u.log.ErrorContext(r.Context(), "page failed", "path", r.URL.Path, "err", err)
		}
	} else {
		u.log.ErrorContext(r.Context(), "page failed", "path", r.URL.Path, "err", err)
	}
	p.Title = http.StatusText(status)
	p.Data = struct {
		Status  int
		Message string
	}{status, msg}
	u.render(w, r, p, "error", status)
}

// render writes a page.
func (u *UI) render(w http.ResponseWriter, r *http.Request, p *Page, name string, status int) {
	t, ok := u.pages[name]
	if !ok {
		u.log.ErrorContext(r.Context(), "no such template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		u.log.ErrorContext(r.Context(), "rendering page", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, buf.String())
}

// parseTemplates parses layout.html with each page template.
func parseTemplates() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: parsing the layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: listing templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		if _, err := t.ParseFS(templateFS, n); err != nil {
			return nil, fmt.Errorf("web: parsing %s: %w", n, err)
		}
		out[name] = t
	}
	return out, nil
}
