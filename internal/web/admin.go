package web

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/store"
)

type userJSON struct {
	ID          int64     `json:"id"`
	Email       string    `json:"email"`
	Role        string    `json:"role"`
	HasPassword bool      `json:"has_password"`
	Disabled    bool      `json:"disabled"`
	CreatedAt   time.Time `json:"created_at"`
}

type tokenJSON struct {
	ID         int64      `json:"id"`
	UserID     int64      `json:"user_id"`
	User       string     `json:"user"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Token      string     `json:"token,omitempty"`
}

var userMessages = map[string]string{
	"email":    "Enter the person's email address, like name@company.com.",
	"password": "",
}

func (u *UI) usersPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	return u.showUsers(w, r, p, http.StatusOK)
}

func (u *UI) showUsers(w http.ResponseWriter, r *http.Request, p *Page, status int) error {
	var out struct {
		Users []userJSON `json:"users"`
	}
	if err := u.call(r, p, http.MethodGet, "/api/v1/users", nil, &out); err != nil {
		return err
	}
	if p.Form.Get("role") == "" {
		p.Form.Set("role", "contributor")
	}
	p.Title, p.Section, p.Data = "Users", "users", out.Users
	u.render(w, r, p, "users", status)
	return nil
}

func (u *UI) createUser(w http.ResponseWriter, r *http.Request, p *Page) error {
	in := map[string]string{"email": p.trimmed("email"), "role": p.Form.Get("role"), "password": p.Form.Get("password")}
	var out userJSON
	if err := u.call(r, p, http.MethodPost, "/api/v1/users", in, &out); err != nil {
		msgs := map[string]string{}
		if statusOf(err) == http.StatusConflict {
			err = &APIError{Status: http.StatusBadRequest, Errors: []fieldError{{Field: "email", Message: "someone with this email address already has an account"}}}
		} else {
			msgs["email"] = userMessages["email"]
		}
		if err := p.formErrors(err, nil, msgs); err != nil {
			return err
		}
		p.Form.Del("password")
		return u.showUsers(w, r, p, http.StatusBadRequest)
	}
	return redirect(w, r, "/users", "Account created for "+out.Email+" ("+out.Role+").")
}

// updateUser changes a role, disables or enables a user, or sets a password.
func (u *UI) updateUser(w http.ResponseWriter, r *http.Request, p *Page) error {
	in := map[string]any{}
	switch p.Form.Get("do") {
	case "role":
		in["role"] = p.Form.Get("role")
	case "disable":
		in["disabled"] = true
	case "enable":
		in["disabled"] = false
	case "password":
		in["password"] = p.Form.Get("password")
	default:
		return &APIError{Status: http.StatusBadRequest, Title: "Bad Request", Detail: "unknown change"}
	}
	if err := u.call(r, p, http.MethodPatch, "/api/v1/users/"+url.PathEscape(r.PathValue("id")), in, nil); err != nil {
		if statusOf(err) == http.StatusBadRequest {
			_ = p.formErrors(err, func(string) string { return "" }, nil)
			return redirect(w, r, "/users", "!"+p.Problem)
		}
		return err
	}
	return redirect(w, r, "/users", "Saved. The person has to sign in again.")
}

type tokensData struct {
	Tokens []tokenJSON
	New    *tokenJSON
	All    bool
	Users  []userJSON
}

func (u *UI) tokensPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	return u.showTokens(w, r, p, nil, http.StatusOK)
}

func (u *UI) showTokens(w http.ResponseWriter, r *http.Request, p *Page, created *tokenJSON, status int) error {
	d := tokensData{New: created, All: p.IsAdmin()}
	path := "/api/v1/tokens"
	if d.All {
		path += "?all=true"
		var us struct {
			Users []userJSON `json:"users"`
		}
		if err := u.call(r, p, http.MethodGet, "/api/v1/users", nil, &us); err != nil {
			return err
		}
		d.Users = us.Users
	}
	var out struct {
		Tokens []tokenJSON `json:"tokens"`
	}
	if err := u.call(r, p, http.MethodGet, path, nil, &out); err != nil {
		return err
	}
	d.Tokens = out.Tokens
	p.Title, p.Section, p.Data = "Your account", "tokens", d
	w.Header().Set("Cache-Control", "no-store")
	u.render(w, r, p, "tokens", status)
	return nil
}

// createToken makes a token and shows its secret this once, on this page.
func (u *UI) createToken(w http.ResponseWriter, r *http.Request, p *Page) error {
	in := map[string]any{"name": p.trimmed("name")}
	if id, err := strconv.ParseInt(p.Form.Get("user_id"), 10, 64); err == nil && id > 0 {
		in["user_id"] = id
	}
	var t tokenJSON
	if err := u.call(r, p, http.MethodPost, "/api/v1/tokens", in, &t); err != nil {
		if err := p.formErrors(err, nil, nil); err != nil {
			return err
		}
		return u.showTokens(w, r, p, nil, http.StatusBadRequest)
	}
	p.Form = url.Values{}
	return u.showTokens(w, r, p, &t, http.StatusCreated)
}

func (u *UI) revokeToken(w http.ResponseWriter, r *http.Request, p *Page) error {
	if err := u.call(r, p, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(r.PathValue("id")), nil, nil); err != nil {
		return err
	}
	return redirect(w, r, "/tokens", "Token revoked: programs using it can no longer sign in.")
}

// changePassword sets the signed-in user's password. It ends all their
// sessions, this one too, so they sign in again with the new password.
func (u *UI) changePassword(w http.ResponseWriter, r *http.Request, p *Page) error {
	pw, again := p.Form.Get("password"), p.Form.Get("password_again")
	if pw != again {
		p.formErr("password_again", "The two passwords differ. Type the same password twice.")
		p.Form = url.Values{}
		return u.showTokens(w, r, p, nil, http.StatusBadRequest)
	}
	err := u.call(r, p, http.MethodPatch, "/api/v1/users/"+strconv.FormatInt(p.Me.ID, 10), map[string]string{"password": pw, "current_password": p.Form.Get("current_password")}, nil)
	if err != nil {
		if err := p.formErrors(err, nil, map[string]string{
			"current_password": "This is not your current password.",
		}); err != nil {
			return err
		}
		p.Form = url.Values{}
		return u.showTokens(w, r, p, nil, http.StatusBadRequest)
	}
	return redirect(w, r, "/login", "Your password was changed. Please sign in with the new one.")
}

type auditData struct {
	Events     []store.AuditEvent
	NextBefore int64
	Kinds      []kindChoice
	// Older is the query of the next page's link.
	Older string
}

// kindChoice is one kind of the audit page's filter.
type kindChoice struct {
	Name    string
	Checked bool
}

// auditPage shows the audit log, filtered by kinds (checkboxes, each a
// kind parameter, or one parameter of kinds separated by commas) and an
// action; the API refuses unknown kinds.
func (u *UI) auditPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	in := r.URL.Query()
	var kinds []string
	for _, v := range in["kind"] {
		for k := range strings.SplitSeq(v, ",") {
			if k = strings.TrimSpace(k); k != "" && !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	filter := url.Values{}
	if len(kinds) > 0 {
		filter.Set("kind", strings.Join(kinds, ","))
	}
	for _, k := range []string{"action", "object_type", "object_id"} {
		if v := in.Get(k); v != "" {
			filter.Set(k, v)
		}
	}
	q := url.Values{"limit": {"50"}}
	maps.Copy(q, filter)
	if v := in.Get("before"); v != "" {
		q.Set("before", v)
	}
	var out struct {
		Events     []store.AuditEvent `json:"events"`
		NextBefore int64              `json:"next_before"`
	}
	if err := u.call(r, p, http.MethodGet, apiPath(q, "/api/v1/audit"), nil, &out); err != nil {
		return err
	}
	d := auditData{Events: out.Events, NextBefore: out.NextBefore}
	for _, k := range audit.Kinds {
		d.Kinds = append(d.Kinds, kindChoice{Name: k, Checked: slices.Contains(kinds, k)})
	}
	if out.NextBefore != 0 {
		filter.Set("before", strconv.FormatInt(out.NextBefore, 10))
		d.Older = filter.Encode()
	}
	p.Title, p.Section, p.Form, p.Data = "Audit log", "audit", in, d
	u.render(w, r, p, "audit", http.StatusOK)
	return nil
}
