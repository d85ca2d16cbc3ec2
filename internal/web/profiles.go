package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/profile"
	"github.com/segsync/segsync/internal/store"
)

type profileRow struct {
	CustomerID string
	Attrs      string
	UpdatedAt  time.Time
}

type profilesData struct {
	Total      int64
	HasTotal   bool
	Attributes []store.AttributeInfo
	Profiles   []profileRow
	NextCursor string
	Cursor     string
	Report     *profile.Report
	FileName   string
}

// loadProfiles reads what Data > Profiles shows.
func (u *UI) loadProfiles(r *http.Request, p *Page, cursor string) (*profilesData, error) {
	d := &profilesData{Cursor: cursor}
	var attrs struct {
		Attributes []store.AttributeInfo `json:"attributes"`
	}
	if err := u.call(r, p, http.MethodGet, "/api/v1/profiles/attributes", nil, &attrs); err != nil {
		return nil, err
	}
	d.Attributes = attrs.Attributes
	if u.deps.CountProfiles != nil {
		n, err := u.deps.CountProfiles(r.Context())
		if err != nil {
			return nil, fmt.Errorf("counting profiles: %w", err)
		}
		d.Total, d.HasTotal = n, true
	}
	if p.CanWrite() {
		var page store.ProfilePage
		q := url.Values{"limit": {"25"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if err := u.call(r, p, http.MethodGet, apiPath(q, "/api/v1/profiles"), nil, &page); err != nil {
			if statusOf(err) != http.StatusBadRequest {
				return nil, err
			}
			// A stale cursor: start over.
			if err := u.call(r, p, http.MethodGet, "/api/v1/profiles?limit=25", nil, &page); err != nil {
				return nil, err
			}
		}
		for _, pr := range page.Profiles {
			d.Profiles = append(d.Profiles, profileRow{CustomerID: pr.CustomerID, Attrs: compactAttrs(pr.Attrs), UpdatedAt: pr.UpdatedAt})
		}
		d.NextCursor = page.NextCursor
	}
	return d, nil
}

// compactAttrs shows a profile's attributes as "name: value" pairs.
func compactAttrs(raw json.RawMessage) string {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return string(raw)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %v", k, m[k]))
	}
	return strings.Join(parts, " · ")
}

func (u *UI) profilesPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	d, err := u.loadProfiles(r, p, r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	p.Title, p.Section, p.Data = "Profiles", "profiles", d
	p.Form.Set("key", profile.DefaultKey)
	u.render(w, r, p, "profiles", http.StatusOK)
	return nil
}

// importProfiles streams an uploaded CSV or NDJSON file into the API's
// import, part by part, without holding the file: the form sends the CSRF
// token, key and mode before the file.
func (u *UI) importProfiles(w http.ResponseWriter, r *http.Request, p *Page) error {
	mr, err := r.MultipartReader()
	if err != nil {
		return &APIError{Status: http.StatusBadRequest, Title: "Bad Request", Detail: "the upload could not be read; please choose the file again"}
	}
	rc := http.NewResponseController(w)
	for _, lift := range []func(time.Time) error{rc.SetReadDeadline, rc.SetWriteDeadline} {
		if err := lift(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return fmt.Errorf("lifting the deadlines of an upload: %w", err)
		}
	}
	var report profile.Report
	var fileName string
	uploaded := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return &APIError{Status: http.StatusBadRequest, Title: "Bad Request", Detail: "the upload was interrupted; please try again"}
		}
		name := part.FormName()
		if name != "file" {
			v, err := io.ReadAll(io.LimitReader(part, 4096))
			if err != nil {
				return fmt.Errorf("reading the upload form: %w", err)
			}
			p.Form.Set(name, string(v))
			if name == "csrf_token" {
				if err := u.checkCSRF(p, string(v)); err != nil {
					return err
				}
			}
			continue
		}
		if p.formCSRF == "" {
			return u.checkCSRF(p, "")
		}
		fileName = path.Base(part.FileName())
		if fileName == "." || fileName == "/" || part.FileName() == "" {
			p.Errors["file"] = "Please choose a CSV or NDJSON file to upload."
			_, _ = io.Copy(io.Discard, part)
			continue
		}
		ct := uploadType(part, fileName)
		if ct == "" {
			p.Errors["file"] = "This file type is not supported. Upload a .csv file with a header row, or an .ndjson file with one JSON object per line."
			_, _ = io.Copy(io.Discard, part)
			continue
		}
		q := url.Values{"key": {strings.TrimSpace(p.Form.Get("key"))}, "mode": {p.Form.Get("mode")}}
		if q.Get("key") == "" {
			q.Set("key", profile.DefaultKey)
		}
		if _, err := u.send(r, p, http.MethodPost, apiPath(q, "/api/v1/profiles/import"), part, ct, &report); err != nil {
			if err := p.formErrors(err, nil, map[string]string{
				"key":  "There is no such column in the file, or the name is not a valid attribute name.",
				"mode": "Choose “Add and update” or “Replace all”.",
			}); err != nil {
				return err
			}
		} else {
			uploaded = true
		}
	}
	if p.formCSRF == "" {
		return u.checkCSRF(p, "")
	}
	if !uploaded && !p.hasErrors() {
		p.Errors["file"] = "Please choose a CSV or NDJSON file to upload."
	}
	d, err := u.loadProfiles(r, p, "")
	if err != nil {
		return err
	}
	if uploaded {
		d.Report, d.FileName = &report, fileName
	}
	p.Title, p.Section, p.Data = "Profiles", "profiles", d
	status := http.StatusOK
	if p.hasErrors() {
		status = http.StatusBadRequest
	}
	u.render(w, r, p, "profiles", status)
	return nil
}

// uploadType is the content type the API expects for an uploaded file.
func uploadType(part *multipart.Part, name string) string {
	if f, err := profile.FormatFromContentType(part.Header.Get("Content-Type")); err == nil {
		if f == profile.CSV {
			return "text/csv"
		}
		return "application/x-ndjson"
	}
	switch strings.ToLower(path.Ext(name)) {
	case ".csv", ".txt":
		return "text/csv"
	case ".ndjson", ".jsonl":
		return "application/x-ndjson"
	}
	if mt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); mt == "application/vnd.ms-excel" {
		return "text/csv" // what some systems call a .csv file
	}
	return ""
}
