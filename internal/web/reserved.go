package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
)

// attrChoice is one attribute the segment builder offers.
type attrChoice struct {
	Name, Type, Label string
}

// attrChoices labels the attribute catalogue for people: the reserved
// Mailchimp attributes are named with their audience's name ("Mailchimp
// status in Newsletter"), looked up through the exports' connections; an
// audience that cannot be looked up is named by its id.
func (u *UI) attrChoices(r *http.Request, p *Page, attrs []store.AttributeInfo) []attrChoice {
	names := u.audienceNames(r, p, attrs)
	out := make([]attrChoice, len(attrs))
	for i, a := range attrs {
		out[i] = attrChoice{Name: a.Name, Type: a.Type, Label: fmt.Sprintf("%s (%s)", a.Name, a.Type)}
		if aud, field, ok := attrjson.ParseReserved(a.Name); ok {
			name := names[aud]
			if name == "" {
				name = "audience " + aud
			}
			what := "Mailchimp status"
			if field == "status_changed_at" {
				what = "Mailchimp status changed"
			}
			out[i].Label = fmt.Sprintf("%s in %s (read-only)", what, name)
		}
	}
	return out
}

// audienceNames maps the audience ids of reserved attributes to their
// names; only called when there are any.
func (u *UI) audienceNames(r *http.Request, p *Page, attrs []store.AttributeInfo) map[string]string {
	want := map[string]bool{}
	for _, a := range attrs {
		if aud, _, ok := attrjson.ParseReserved(a.Name); ok {
			want[aud] = true
		}
	}
	names := map[string]string{}
	if len(want) == 0 {
		return names
	}
	var list struct {
		Exports []store.Export `json:"exports"`
	}
	if u.call(r, p, http.MethodGet, "/api/v1/exports", nil, &list) != nil {
		return names
	}
	asked := map[int64]bool{}
	for _, e := range list.Exports {
		if e.ConnectionID == nil || !want[e.AudienceID] || names[e.AudienceID] != "" || asked[*e.ConnectionID] {
			continue
		}
		asked[*e.ConnectionID] = true
		var out struct {
			Audiences []struct{ ID, Name string } `json:"audiences"`
		}
		if err := u.call(r, p, http.MethodGet, fmt.Sprintf("/api/v1/connections/%d/audiences", *e.ConnectionID), nil, &out); err != nil {
			continue
		}
		for _, a := range out.Audiences {
			if want[a.ID] {
				names[a.ID] = a.Name
			}
		}
	}
	return names
}

// profileData is what one profile's page shows.
type profileData struct {
	CustomerID string
	UpdatedAt  string
	Attrs      []attrValue // the customer's own attributes
	Mailchimp  []attrValue // reserved: Mailchimp's word, by audience
}

// attrValue is one row of a profile's page; Source names the data source
// the attribute came from ("uploads" for pushed imports), empty for
// Mailchimp's reserved attributes.
type attrValue struct{ Name, Value, Source string }

// profilePage shows one profile: its attributes, its status in every
// Mailchimp audience it was sent to and, for admins, the erasure button.
func (u *UI) profilePage(w http.ResponseWriter, r *http.Request, p *Page) error {
	var prof struct {
		store.Profile
		Sources map[string]string `json:"sources"` // attribute -> source name
	}
	if err := u.call(r, p, http.MethodGet, "/api/v1/profiles/"+url.PathEscape(r.PathValue("customer_id")), nil, &prof); err != nil {
		return err
	}
	var attrs map[string]any
	if err := json.Unmarshal(prof.Attrs, &attrs); err != nil {
		return fmt.Errorf("reading the profile's attributes: %w", err)
	}
	d := profileData{CustomerID: prof.CustomerID, UpdatedAt: prof.UpdatedAt.UTC().Format("2006-01-02 15:04:05 UTC")}
	var reserved []store.AttributeInfo
	for name := range attrs {
		if attrjson.Reserved(name) {
			reserved = append(reserved, store.AttributeInfo{Name: name})
		}
	}
	labels := map[string]string{}
	for _, c := range u.attrChoices(r, p, reserved) {
		labels[c.Name] = strings.TrimSuffix(c.Label, " (read-only)")
	}
	for name, v := range attrs {
		av := attrValue{Name: name, Value: fmt.Sprint(v)}
		if l, ok := labels[name]; ok {
			av.Name = l
			d.Mailchimp = append(d.Mailchimp, av)
			continue
		}
		av.Source = prof.Sources[name]
		d.Attrs = append(d.Attrs, av)
	}
	sort.Slice(d.Attrs, func(i, j int) bool { return d.Attrs[i].Name < d.Attrs[j].Name })
	sort.Slice(d.Mailchimp, func(i, j int) bool { return d.Mailchimp[i].Name < d.Mailchimp[j].Name })
	p.Title, p.Section, p.Data = "Profile "+prof.CustomerID, "profiles", d
	u.render(w, r, p, "profile", http.StatusOK)
	return nil
}

// eraseProfile is the erasure button (admins): the form must repeat the
// customer id, then the API's erasure is requested.
func (u *UI) eraseProfile(w http.ResponseWriter, r *http.Request, p *Page) error {
	id := r.PathValue("customer_id")
	if r.PostFormValue("confirm") != id {
		return redirect(w, r, "/profiles/"+url.PathEscape(id), "Type the customer id to confirm the erasure; nothing was erased.")
	}
	var e store.Erasure
	if err := u.call(r, p, http.MethodDelete, "/api/v1/profiles/"+url.PathEscape(id)+"?erase=true", nil, &e); err != nil {
		return err
	}
	return redirect(w, r, "/profiles", fmt.Sprintf("Erasure %d requested: profile %s is deleted; its contact is being deleted permanently from %d Mailchimp audience(s).", e.ID, id, len(e.Audiences)))
}
