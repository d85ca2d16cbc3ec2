package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/segsync/segsync/internal/connection"
)

// connectionMessages say what a connection form's faults mean.
var connectionMessages = map[string]string{
	"privacy_consent": "Please tick “I agree”: segsync sends profile data to Mailchimp only with an administrator's consent.",
}

type connectionsData struct {
	Connections []connection.View
}

func (u *UI) connectionsPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	var out struct {
		Connections []connection.View `json:"connections"`
	}
	if err := u.call(r, p, http.MethodGet, "/api/v1/connections", nil, &out); err != nil {
		return err
	}
	p.Title, p.Section = "Connections", "connections"
	p.Data = connectionsData{Connections: out.Connections}
	u.render(w, r, p, "connections", http.StatusOK)
	return nil
}

type connectionFormData struct {
	PrivacyText  string
	OAuthEnabled bool
}

func (u *UI) connectionForm(w http.ResponseWriter, r *http.Request, p *Page, status int) {
	p.Title, p.Section = "Add a Mailchimp connection", "connections"
	oauth := true
	if u.deps.OAuthEnabled != nil {
		oauth = u.deps.OAuthEnabled()
	}
	p.Data = connectionFormData{PrivacyText: connection.PrivacyText, OAuthEnabled: oauth}
	u.render(w, r, p, "connection_new", status)
}

func (u *UI) newConnection(w http.ResponseWriter, r *http.Request, p *Page) error {
	p.Form.Set("share", "admins")
	u.connectionForm(w, r, p, http.StatusOK)
	return nil
}

// createConnection saves a connection from an API key, or starts
// "Authenticate with Mailchimp", whichever button was pressed. The key is
// never put back into the form.
func (u *UI) createConnection(w http.ResponseWriter, r *http.Request, p *Page) error {
	name := p.trimmed("display_name")
	share := p.Form.Get("share") == "contributors"
	consent := p.Checked("privacy_consent")
	if p.Form.Get("method") == "oauth" {
		q := url.Values{"display_name": {name}, "allow_contributors": {strconv.FormatBool(share)},
			"privacy_consent": {strconv.FormatBool(consent)}}
		h, err := u.send(r, p, http.MethodGet, apiPath(q, "/api/v1/connections/oauth/start"), nil, "", nil)
		if err == nil && h.Get("Location") != "" {
			http.Redirect(w, r, h.Get("Location"), http.StatusSeeOther)
			return nil
		}
		if err == nil {
			err = errors.New("starting Mailchimp sign-in: the API gave no address to go to")
		}
		if statusOf(err) == http.StatusNotImplemented {
			p.Errors["method"] = "“Authenticate with Mailchimp” is not set up on this server. Use an API key instead, or ask the operator to configure the Mailchimp app."
			u.connectionForm(w, r, p, http.StatusOK)
			return nil
		}
		if err := p.formErrors(err, nil, connectionMessages); err != nil {
			return err
		}
		u.connectionForm(w, r, p, http.StatusBadRequest)
		return nil
	}
	in := connection.CreateInput{DisplayName: name, Type: "mailchimp", APIKey: strings.TrimSpace(p.Form.Get("api_key")),
		AllowContributors: share, PrivacyConsent: consent, APIBaseURL: p.trimmed("api_base_url")}
	msgs := map[string]string{"api_key": ""}
	for k, v := range connectionMessages {
		msgs[k] = v
	}
	if in.APIKey == "" {
		msgs["api_key"] = "Enter the Mailchimp API key, or use “Authenticate with Mailchimp”."
	}
	var v connection.View
	if err := u.call(r, p, http.MethodPost, "/api/v1/connections", in, &v); err != nil {
		if err := p.formErrors(err, nil, msgs); err != nil {
			return err
		}
		u.connectionForm(w, r, p, http.StatusBadRequest)
		return nil
	}
	return redirect(w, r, "/connections/"+strconv.FormatInt(v.ID, 10),
		"Connection “"+v.DisplayName+"” saved: segsync can now export to the Mailchimp account "+v.AccountName+".")
}

// oauthCallback finishes "Authenticate with Mailchimp" through the API and
// shows the saved connection.
func (u *UI) oauthCallback(w http.ResponseWriter, r *http.Request, p *Page) error {
	var v connection.View
	err := u.call(r, p, http.MethodGet, "/oauth/mailchimp/callback?"+r.URL.RawQuery, nil, &v)
	if err != nil {
		if s := statusOf(err); s == http.StatusBadRequest || s == http.StatusBadGateway || s == http.StatusNotFound {
			var ae *APIError
			errors.As(err, &ae)
			return redirect(w, r, "/connections", "!Mailchimp sign-in did not complete: "+friendly(ae.Detail)+" Please try again.")
		}
		return err
	}
	return redirect(w, r, "/connections/"+strconv.FormatInt(v.ID, 10),
		"Connection “"+v.DisplayName+"” saved: segsync can now export to the Mailchimp account "+v.AccountName+".")
}

func connectionPath(r *http.Request) (string, string) {
	id := r.PathValue("id")
	return id, "/api/v1/connections/" + url.PathEscape(id)
}

type connectionData struct {
	C connection.View
}

func (u *UI) showConnection(w http.ResponseWriter, r *http.Request, p *Page, status int) error {
	_, api := connectionPath(r)
	var v connection.View
	if err := u.call(r, p, http.MethodGet, api, nil, &v); err != nil {
		return err
	}
	p.Title, p.Section = v.DisplayName, "connections"
	if r.Method == http.MethodGet {
		p.Form.Set("display_name", v.DisplayName)
		if v.AllowContributors != nil && *v.AllowContributors {
			p.Form.Set("share", "contributors")
		} else {
			p.Form.Set("share", "admins")
		}
		p.Form.Set("api_base_url", v.APIBaseURL)
	}
	p.Data = connectionData{C: v}
	u.render(w, r, p, "connection", status)
	return nil
}

func (u *UI) connectionPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	return u.showConnection(w, r, p, http.StatusOK)
}

// updateConnection renames, re-shares or re-keys a connection.
func (u *UI) updateConnection(w http.ResponseWriter, r *http.Request, p *Page) error {
	id, api := connectionPath(r)
	name := p.trimmed("display_name")
	share := p.Form.Get("share") == "contributors"
	in := connection.Patch{DisplayName: &name, AllowContributors: &share}
	if k := strings.TrimSpace(p.Form.Get("api_key")); k != "" {
		in.APIKey = &k
	}
	if p.Form.Has("api_base_url") {
		b := p.trimmed("api_base_url")
		in.APIBaseURL = &b
	}
	if err := u.call(r, p, http.MethodPatch, api, in, nil); err != nil {
		if err := p.formErrors(err, nil, connectionMessages); err != nil {
			return err
		}
		return u.showConnection(w, r, p, http.StatusBadRequest)
	}
	return redirect(w, r, "/connections/"+id, "Changes saved.")
}

func (u *UI) testConnection(w http.ResponseWriter, r *http.Request, p *Page) error {
	id, api := connectionPath(r)
	var res connection.TestResult
	if err := u.call(r, p, http.MethodPost, api+"/test", nil, &res); err != nil {
		if s := statusOf(err); s == http.StatusBadGateway {
			return redirect(w, r, "/connections/"+id, "!Mailchimp could not be reached. Try again in a moment.")
		}
		return err
	}
	if !res.OK {
		return redirect(w, r, "/connections/"+id, "!The test failed: "+friendly(res.Error))
	}
	return redirect(w, r, "/connections/"+id, "The connection works: Mailchimp answered for the account "+res.AccountName+".")
}

func (u *UI) confirmDeleteConnection(w http.ResponseWriter, r *http.Request, p *Page) error {
	_, api := connectionPath(r)
	var v connection.View
	if err := u.call(r, p, http.MethodGet, api, nil, &v); err != nil {
		return err
	}
	p.Title, p.Section = "Delete "+v.DisplayName, "connections"
	p.Data = connectionData{C: v}
	u.render(w, r, p, "connection_delete", http.StatusOK)
	return nil
}

// deleteConnection deletes a connection; with exports still using it the
// admin must say to detach them (the confirmation page asks).
func (u *UI) deleteConnection(w http.ResponseWriter, r *http.Request, p *Page) error {
	_, api := connectionPath(r)
	detach := p.Form.Get("detach") == "true"
	var out struct {
		Detached int `json:"detached_exports"`
	}
	err := u.call(r, p, http.MethodDelete, apiPath(url.Values{"detach": {strconv.FormatBool(detach)}}, api), nil, &out)
	if statusOf(err) == http.StatusConflict {
		p.Problem = "Exports still use this connection. Choose “Detach and delete” to keep them without a connection."
		return u.confirmDeleteConnection(w, r, p)
	}
	if err != nil {
		return err
	}
	msg := "Connection deleted. Nothing was changed in Mailchimp."
	if out.Detached > 0 {
		msg = "Connection deleted; " + plural(out.Detached, "export") + " detached and will not run until given a connection. Nothing was changed in Mailchimp."
	}
	return redirect(w, r, "/connections", msg)
}
