package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/segsync/segsync/internal/schedule"
	"github.com/segsync/segsync/internal/source"
	"github.com/segsync/segsync/internal/source/connector"
	"github.com/segsync/segsync/internal/store"
)

func (u *UI) sourcesPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	var out struct {
		Sources []source.View `json:"sources"`
	}
	if err := u.call(r, p, http.MethodGet, "/api/v1/sources", nil, &out); err != nil {
		return err
	}
	p.Title, p.Section, p.Data = "Sources", "sources", out.Sources
	for _, s := range out.Sources {
		if s.LastPull != nil && !pullEnded(*s.LastPull) {
			p.Reload = 2
		}
	}
	u.render(w, r, p, "sources", http.StatusOK)
	return nil
}

func pullEnded(pl store.Pull) bool { return pl.FinishedAt != nil }

type sourceFormData struct {
	ID     int64
	DSNSet bool
	Sample *connector.Sample
}

// sourceForm fills the form from a source (edit) and renders it.
func (u *UI) sourceForm(w http.ResponseWriter, r *http.Request, p *Page, d sourceFormData, status int) {
	p.Title, p.Section = "Add a data source", "sources"
	if d.ID > 0 {
		p.Title = "Edit data source"
	}
	p.Data = d
	u.render(w, r, p, "source_form", status)
}

func (u *UI) newSource(w http.ResponseWriter, r *http.Request, p *Page) error {
	p.Form.Set("kind", "postgres")
	p.Form.Set("mode", "full")
	p.Form.Set("schedule", schedule.Refresh)
	p.Form.Set("priority", "100")
	p.Form.Set("min_ratio", "0.5")
	u.sourceForm(w, r, p, sourceFormData{}, http.StatusOK)
	return nil
}

func (u *UI) editSource(w http.ResponseWriter, r *http.Request, p *Page) error {
	var v source.View
	if err := u.call(r, p, http.MethodGet, "/api/v1/sources/"+r.PathValue("id"), nil, &v); err != nil {
		return err
	}
	f := p.Form
	f.Set("name", v.Name)
	f.Set("kind", v.Kind)
	f.Set("key", v.Key)
	f.Set("mode", v.Mode)
	f.Set("cursor", v.Cursor)
	f.Set("schedule", v.Schedule)
	f.Set("priority", strconv.Itoa(v.Priority))
	f.Set("min_ratio", strconv.FormatFloat(v.MinRatio, 'f', -1, 64))
	f.Set("query", v.Query)
	f.Set("url", v.URL)
	f.Set("format", v.Format)
	var renames []string
	for c, a := range v.Rename {
		renames = append(renames, c+"="+a)
	}
	f.Set("rename", strings.Join(renames, "\n"))
	f.Set("exclude", strings.Join(v.Exclude, "\n"))
	f.Set("header_names", strings.Join(v.Headers, "\n"))
	u.sourceForm(w, r, p, sourceFormData{ID: v.ID, DSNSet: v.DSNSet}, http.StatusOK)
	return nil
}

// sourceInput reads the form into the API's input. Header lines are
// "Name: value"; a name alone keeps its stored value.
func (p *Page) sourceInput() source.Input {
	in := source.Input{Name: p.trimmed("name"), Kind: p.trimmed("kind"), Key: p.trimmed("key"), Mode: p.trimmed("mode"),
		Cursor: p.trimmed("cursor"), Schedule: p.trimmed("schedule"), DSN: p.trimmed("dsn"), Query: p.trimmed("query"),
		URL: p.trimmed("url"), Format: p.trimmed("format")}
	if n, err := strconv.Atoi(p.trimmed("priority")); err == nil {
		in.Priority = &n
	} else if p.trimmed("priority") != "" {
		p.formErr("priority", "Enter a whole number (lower wins).")
	}
	if x, err := strconv.ParseFloat(p.trimmed("min_ratio"), 64); err == nil {
		in.MinRatio = &x
	} else if p.trimmed("min_ratio") != "" {
		p.formErr("min_ratio", "Enter a number between 0 and 1.")
	}
	for _, line := range lines(p.Form.Get("rename")) {
		c, a, ok := strings.Cut(line, "=")
		if !ok {
			p.formErr("rename", fmt.Sprintf("%q is not COLUMN=ATTRIBUTE.", line))
			continue
		}
		if in.Rename == nil {
			in.Rename = map[string]string{}
		}
		in.Rename[strings.TrimSpace(c)] = strings.TrimSpace(a)
	}
	in.Exclude = lines(p.Form.Get("exclude"))
	for _, line := range append(lines(p.Form.Get("header_names")), lines(p.Form.Get("headers"))...) {
		name, value, _ := strings.Cut(line, ":")
		if in.Headers == nil {
			in.Headers = map[string]string{}
		}
		if strings.TrimSpace(value) != "" || in.Headers[strings.TrimSpace(name)] == "" {
			in.Headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
		}
	}
	if in.Kind == connector.KindHTTP {
		in.DSN, in.Query = "", ""
	} else {
		in.URL, in.Format, in.Headers = "", "", nil
	}
	return in
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// saveSource saves the form, or with the "Test" button reads ten rows of
// the definition as it stands, before anything is saved.
func (u *UI) saveSource(w http.ResponseWriter, r *http.Request, p *Page) error {
	id := r.PathValue("id")
	d := sourceFormData{}
	if id != "" {
		d.ID, _ = strconv.ParseInt(id, 10, 64)
		d.DSNSet = p.Form.Get("dsn_set") == "true"
	}
	in := p.sourceInput()
	if p.hasErrors() {
		u.sourceForm(w, r, p, d, http.StatusBadRequest)
		return nil
	}
	if p.Form.Get("action") == "test" {
		path := "/api/v1/sources/test"
		if d.ID > 0 {
			path = "/api/v1/sources/" + id + "/test"
		}
		var smp connector.Sample
		if err := u.call(r, p, http.MethodPost, path, in, &smp); err != nil {
			if err := p.formErrors(err, nil, nil); err != nil {
				return err
			}
			u.sourceForm(w, r, p, d, http.StatusOK)
			return nil
		}
		d.Sample = &smp
		u.sourceForm(w, r, p, d, http.StatusOK)
		return nil
	}
	var v source.View
	var err error
	if d.ID > 0 {
		err = u.call(r, p, http.MethodPut, "/api/v1/sources/"+id, in, &v)
	} else {
		err = u.call(r, p, http.MethodPost, "/api/v1/sources", in, &v)
	}
	if err != nil {
		if err := p.formErrors(err, nil, nil); err != nil {
			return err
		}
		u.sourceForm(w, r, p, d, http.StatusBadRequest)
		return nil
	}
	return redirect(w, r, "/sources/"+strconv.FormatInt(v.ID, 10), "Source saved. Pull it now, or wait for the next refresh.")
}

type sourcePageData struct {
	Source source.View
	Pulls  []store.Pull
}

func (u *UI) sourcePage(w http.ResponseWriter, r *http.Request, p *Page) error {
	id := r.PathValue("id")
	var d sourcePageData
	if err := u.call(r, p, http.MethodGet, "/api/v1/sources/"+id, nil, &d.Source); err != nil {
		return err
	}
	var out struct {
		Pulls []store.Pull `json:"pulls"`
	}
	if err := u.call(r, p, http.MethodGet, "/api/v1/sources/"+id+"/pulls", nil, &out); err != nil {
		return err
	}
	d.Pulls = out.Pulls
	if len(d.Pulls) > 0 && !pullEnded(d.Pulls[0]) {
		p.Reload = 2
	}
	p.Title, p.Section, p.Data = d.Source.Name, "sources", d
	u.render(w, r, p, "source", http.StatusOK)
	return nil
}

func (u *UI) pullSource(w http.ResponseWriter, r *http.Request, p *Page) error {
	id := r.PathValue("id")
	var pl store.Pull
	body := map[string]bool{"allow_shrink": p.Checked("allow_shrink")}
	if err := u.call(r, p, http.MethodPost, "/api/v1/sources/"+id+"/pulls", body, &pl); err != nil {
		if statusOf(err) == http.StatusConflict || statusOf(err) == http.StatusBadRequest {
			return redirect(w, r, "/sources/"+id, "!"+friendly(err.(*APIError).Detail))
		}
		return err
	}
	return redirect(w, r, "/sources/"+id, "Pull queued.")
}

func (u *UI) cancelPull(w http.ResponseWriter, r *http.Request, p *Page) error {
	var pl store.Pull
	if err := u.call(r, p, http.MethodPost, "/api/v1/pulls/"+r.PathValue("id")+"/cancel", nil, &pl); err != nil {
		return err
	}
	return redirect(w, r, "/sources/"+strconv.FormatInt(pl.SourceID, 10), "Cancel requested: nothing of this pull is applied.")
}

func (u *UI) deleteSource(w http.ResponseWriter, r *http.Request, p *Page) error {
	var out struct {
		ProfilesDeleted int64 `json:"profiles_deleted"`
	}
	if err := u.call(r, p, http.MethodDelete, "/api/v1/sources/"+r.PathValue("id"), nil, &out); err != nil {
		return err
	}
	return redirect(w, r, "/sources", fmt.Sprintf("Source deleted; %d profiles no other source held were deleted.", out.ProfilesDeleted))
}

func (u *UI) startRefresh(w http.ResponseWriter, r *http.Request, p *Page) error {
	var f source.RefreshView
	if err := u.call(r, p, http.MethodPost, "/api/v1/refresh", nil, &f); err != nil {
		return err
	}
	return redirect(w, r, "/refreshes/"+strconv.FormatInt(f.ID, 10), "Refresh started: the sources are pulled first, then the exports run.")
}

type refreshPageData struct {
	Refresh source.RefreshView
	Names   map[int64]string
}

func (u *UI) refreshPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	var d refreshPageData
	if err := u.call(r, p, http.MethodGet, "/api/v1/refreshes/"+r.PathValue("id"), nil, &d.Refresh); err != nil {
		return err
	}
	d.Names = map[int64]string{}
	if p.IsAdmin() {
		var out struct {
			Sources []source.View `json:"sources"`
		}
		if err := u.call(r, p, http.MethodGet, "/api/v1/sources", nil, &out); err == nil {
			for _, s := range out.Sources {
				d.Names[s.ID] = s.Name
			}
		}
	}
	if d.Refresh.FinishedAt == nil {
		p.Reload = 2
	}
	p.Title, p.Section, p.Data = fmt.Sprintf("Refresh #%d", d.Refresh.ID), "exports", d
	u.render(w, r, p, "refresh", http.StatusOK)
	return nil
}
