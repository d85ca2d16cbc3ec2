package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	next := localPath(r.URL.Query().Get("next"))
	if p.SignedIn() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return nil
	}
	p.Title = "Sign in"
	p.Form.Set("next", next)
	u.render(w, r, p, "login", http.StatusOK)
	return nil
}

// login hands the form to POST /api/v1/session, which checks the password,
// throttles guessing and refuses cross-origin sign-in; its session cookie is
// passed on to the browser.
func (u *UI) login(w http.ResponseWriter, r *http.Request, p *Page) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return &APIError{Status: http.StatusBadRequest, Title: "Bad Request", Detail: "the form could not be read"}
	}
	p.Title = "Sign in"
	p.Form = url.Values{"email": {r.PostForm.Get("email")}, "next": {localPath(r.PostForm.Get("next"))}}
	body := url.Values{"email": {r.PostForm.Get("email")}, "password": {r.PostForm.Get("password")}}
	h, err := u.send(r, nil, http.MethodPost, "/api/v1/session", strings.NewReader(body.Encode()), "application/x-www-form-urlencoded", nil)
	for _, c := range h.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", c)
	}
	switch statusOf(err) {
	case 0:
		if err != nil {
			return err
		}
		http.Redirect(w, r, localPath(r.PostForm.Get("next")), http.StatusSeeOther)
		return nil
	case http.StatusUnauthorized, http.StatusBadRequest:
		p.Problem = "That email and password do not match an account. Check them and try again."
	case http.StatusTooManyRequests:
		wait := "a few minutes"
		if s, e := strconv.Atoi(h.Get("Retry-After")); e == nil && s > 0 {
			wait = plural((s+59)/60, "minute")
		}
		p.Problem = "Too many attempts to sign in. Please wait " + wait + " and try again."
	case http.StatusForbidden:
		p.Problem = "Sign-in was refused because the request came from another site. Open segsync directly and try again."
	default:
		return err
	}
	u.render(w, r, p, "login", http.StatusOK)
	return nil
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, p *Page) error {
	h, err := u.send(r, p, http.MethodDelete, "/api/v1/session", nil, "", nil)
	if err != nil && statusOf(err) != http.StatusUnauthorized {
		return err
	}
	for _, c := range h.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", c)
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// home is the exports overview, where marketers spend their day.
func (u *UI) home(w http.ResponseWriter, r *http.Request, p *Page) error {
	http.Redirect(w, r, "/exports", http.StatusSeeOther)
	return nil
}
