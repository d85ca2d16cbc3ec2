package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// The OAuth 2 endpoints live at the server root, as on login.mailchimp.com.
// Authorization is granted at once for the first account (or the account
// with index ?emulator_account=N) and codes are single-use.

// oauthCode is an authorization code waiting to be exchanged.
type oauthCode struct {
	account  *account
	redirect string
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (e *Emulator) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" {
		oauthError(w, http.StatusBadRequest, "unsupported_response_type", "response_type must be code")
		return
	}
	if q.Get("client_id") == "" {
		oauthError(w, http.StatusBadRequest, "invalid_client", "client_id is required")
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme == "" || redirect.Host == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri must be an absolute URL")
		return
	}
	n, _ := strconv.Atoi(q.Get("emulator_account"))
	if n < 0 || n >= len(e.accounts) {
		oauthError(w, http.StatusBadRequest, "invalid_request", "no such emulator account")
		return
	}
	code := randomHex(16)
	e.mu.Lock()
	e.codes[code] = oauthCode{account: e.accounts[n], redirect: q.Get("redirect_uri")}
	e.mu.Unlock()
	rq := redirect.Query()
	rq.Set("code", code)
	if s := q.Get("state"); s != "" {
		rq.Set("state", s)
	}
	redirect.RawQuery = rq.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (e *Emulator) oauthToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" || secret == "" {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client_id and client_secret are required")
		return
	}
	code := r.PostForm.Get("code")
	e.mu.Lock()
	grant, ok := e.codes[code]
	delete(e.codes, code)
	var token string
	if ok && grant.redirect == r.PostForm.Get("redirect_uri") {
		token = randomHex(16)
		e.byKey[token] = grant.account
	}
	e.mu.Unlock()
	if !ok {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "invalid or already used authorization code")
		return
	}
	if token == "" {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "expires_in": 0, "scope": nil})
}

func (e *Emulator) oauthMetadata(w http.ResponseWriter, r *http.Request) {
	a, perr := e.authenticate(r)
	if perr != nil {
		oauthError(w, http.StatusUnauthorized, "invalid_token", "invalid or missing access token")
		return
	}
	root := "http://" + r.Host
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"dc":          a.dc,
		"role":        "owner",
		"accountname": a.name,
		"user_id":     a.id,
		"login": map[string]any{
			"email": "owner@segsync-emulator.invalid", "avatar": nil, "login_id": a.id[:8],
			"login_name": "emulated-owner", "login_email": "owner@segsync-emulator.invalid",
		},
		"login_url":    root + "/oauth2/authorize",
		"api_endpoint": root,
	})
}
