package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
)

// segmentJSON is a segment as the API answers it.
type segmentJSON struct {
	ID          int64           `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Rule        json.RawMessage `json:"rule"`
	MemberCount int64           `json:"member_count"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// segmentRow is a segment as the pages show it.
type segmentRow struct {
	segmentJSON
	RuleText string
}

func (u *UI) listSegments(r *http.Request, p *Page) ([]segmentRow, error) {
	var out struct {
		Segments []segmentJSON `json:"segments"`
	}
	if err := u.call(r, p, http.MethodGet, "/api/v1/segments", nil, &out); err != nil {
		return nil, err
	}
	rows := make([]segmentRow, len(out.Segments))
	for i, s := range out.Segments {
		rows[i] = segmentRow{segmentJSON: s, RuleText: describeRule(s.Rule)}
	}
	return rows, nil
}

func (u *UI) segmentsPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	rows, err := u.listSegments(r, p)
	if err != nil {
		return err
	}
	p.Title, p.Section, p.Data = "Segments", "segments", rows
	u.render(w, r, p, "segments", http.StatusOK)
	return nil
}

type segmentData struct {
	Segment segmentRow
	Members []profileRow
}

func segmentAPI(r *http.Request) string {
	return "/api/v1/segments/" + url.PathEscape(r.PathValue("id"))
}

func (u *UI) segmentPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	var s segmentJSON
	if err := u.call(r, p, http.MethodGet, segmentAPI(r), nil, &s); err != nil {
		return err
	}
	d := segmentData{Segment: segmentRow{segmentJSON: s, RuleText: describeRule(s.Rule)}}
	if p.CanWrite() {
		var page struct {
			Members []store.Profile `json:"members"`
		}
		if err := u.call(r, p, http.MethodGet, segmentAPI(r)+"/members?limit=20", nil, &page); err != nil {
			return err
		}
		for _, m := range page.Members {
			d.Members = append(d.Members, profileRow{CustomerID: m.CustomerID, Attrs: compactAttrs(m.Attrs), UpdatedAt: m.UpdatedAt})
		}
	}
	p.Title, p.Section, p.Data = s.Name, "segments", d
	u.render(w, r, p, "segment", http.StatusOK)
	return nil
}

// builderData is what the segment form shows.
type builderData struct {
	ID         int64 // 0 for a new segment
	Rule       ruleForm
	Attributes []attrChoice
	Ops        []segment.Operator
	Preview    *previewData
}

type previewData struct {
	Count  int64
	Sample []profileRow
}

func (u *UI) attributes(r *http.Request, p *Page) ([]store.AttributeInfo, error) {
	var out struct {
		Attributes []store.AttributeInfo `json:"attributes"`
	}
	if err := u.call(r, p, http.MethodGet, "/api/v1/profiles/attributes", nil, &out); err != nil {
		return nil, err
	}
	return out.Attributes, nil
}

func (u *UI) segmentForm(w http.ResponseWriter, r *http.Request, p *Page, d builderData, status int) error {
	attrs, err := u.attributes(r, p)
	if err != nil {
		return err
	}
	d.Attributes, d.Ops = u.attrChoices(r, p, attrs), ops
	p.Section, p.Data = "segments", d
	p.Title = "New segment"
	if d.ID != 0 {
		p.Title = "Edit " + p.Form.Get("name")
	}
	u.render(w, r, p, "segment_form", status)
	return nil
}

func (u *UI) newSegment(w http.ResponseWriter, r *http.Request, p *Page) error {
	return u.segmentForm(w, r, p, builderData{Rule: newRuleForm()}, http.StatusOK)
}

func (u *UI) editSegment(w http.ResponseWriter, r *http.Request, p *Page) error {
	var s segmentJSON
	if err := u.call(r, p, http.MethodGet, segmentAPI(r), nil, &s); err != nil {
		return err
	}
	p.Form.Set("name", s.Name)
	p.Form.Set("description", s.Description)
	f, _ := builderFromJSON(s.Rule)
	return u.segmentForm(w, r, p, builderData{ID: s.ID, Rule: f}, http.StatusOK)
}

// ruleFieldOf maps an API error field (rule.all[0].any[1].value) to the
// builder's form field (g0.c1.value).
func ruleFieldOf(f ruleForm, paths map[string]string) func(string) string {
	return func(field string) string {
		if !strings.HasPrefix(field, "rule") {
			return field
		}
		if f.Editor == "json" {
			return "rule_json"
		}
		best, key := "", ""
		for path, k := range paths {
			if (field == path || strings.HasPrefix(field, path+".")) && len(path) > len(best) {
				best, key = path, k
			}
		}
		if key == "" {
			return "rule"
		}
		rest := strings.TrimPrefix(field, best)
		switch {
		case rest == ".attribute":
			return key + ".attr"
		case rest == ".op":
			return key + ".op"
		case strings.HasPrefix(rest, ".value"):
			return key + ".value"
		case strings.Count(key, ".") == 1:
			return key + ".value" // the condition as a whole
		}
		return key
	}
}

// previewRule asks the API for the count and a sample of a rule.
func (u *UI) previewRule(r *http.Request, p *Page, f ruleForm, sample int) (*previewData, error) {
	attrs, err := u.attributes(r, p)
	if err != nil {
		return nil, err
	}
	rule, paths, err := f.rule(attrTypes(attrs))
	var ff formFault
	if errors.As(err, &ff) {
		for k, v := range ff {
			p.formErr(k, v)
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var prev store.SegmentPreview
	if err := u.call(r, p, http.MethodPost, "/api/v1/segments/preview", map[string]any{"rule": rule, "sample": sample}, &prev); err != nil {
		return nil, p.formErrors(err, ruleFieldOf(f, paths), nil)
	}
	d := &previewData{Count: prev.Count}
	for _, m := range prev.Sample {
		d.Sample = append(d.Sample, profileRow{CustomerID: m.CustomerID, Attrs: compactAttrs(m.Attrs), UpdatedAt: m.UpdatedAt})
	}
	return d, nil
}

// countSegment is the live count: with Accept: application/json (the
// page's script) it answers {"count"} or {"errors"}; otherwise it shows the
// form again with the count and a sample (the button without JavaScript).
func (u *UI) countSegment(w http.ResponseWriter, r *http.Request, p *Page) error {
	f := ruleFormFrom(p.Form)
	prev, err := u.previewRule(r, p, f, 10)
	if err != nil {
		return err
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		out := map[string]any{"errors": p.Errors}
		if p.Problem != "" {
			out["problem"] = p.Problem
		}
		if prev != nil {
			out["count"] = prev.Count
			out["count_text"] = formatNum(prev.Count)
		}
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(out)
	}
	id, _ := strconv.ParseInt(p.Form.Get("id"), 10, 64)
	return u.segmentForm(w, r, p, builderData{ID: id, Rule: f, Preview: prev}, http.StatusOK)
}

// saveSegment creates or updates a segment, or performs a builder button.
func (u *UI) saveSegment(w http.ResponseWriter, r *http.Request, p *Page) error {
	id := r.PathValue("id")
	var nid int64
	if id != "" {
		var err error
		if nid, err = strconv.ParseInt(id, 10, 64); err != nil {
			return &APIError{Status: http.StatusNotFound}
		}
	}
	f := ruleFormFrom(p.Form)
	if f.apply(p.Form.Get("do")) {
		return u.segmentForm(w, r, p, builderData{ID: nid, Rule: f}, http.StatusOK)
	}
	attrs, err := u.attributes(r, p)
	if err != nil {
		return err
	}
	rule, paths, err := f.rule(attrTypes(attrs))
	var ff formFault
	if errors.As(err, &ff) {
		for k, v := range ff {
			p.formErr(k, v)
		}
		return u.segmentForm(w, r, p, builderData{ID: nid, Rule: f}, http.StatusBadRequest)
	}
	if err != nil {
		return err
	}
	in := map[string]any{"name": p.trimmed("name"), "description": p.trimmed("description"), "rule": rule}
	var s segmentJSON
	if nid == 0 {
		err = u.call(r, p, http.MethodPost, "/api/v1/segments", in, &s)
	} else {
		err = u.call(r, p, http.MethodPut, segmentAPI(r), in, &s)
	}
	if err != nil {
		msgs := map[string]string{}
		if statusOf(err) == http.StatusConflict {
			msgs["name"] = "A segment with this name already exists. Choose another name."
			err = &APIError{Status: http.StatusBadRequest, Errors: []fieldError{{Field: "name", Message: "taken"}}}
		}
		if err := p.formErrors(err, ruleFieldOf(f, paths), msgs); err != nil {
			return err
		}
		return u.segmentForm(w, r, p, builderData{ID: nid, Rule: f}, http.StatusBadRequest)
	}
	return redirect(w, r, "/segments/"+strconv.FormatInt(s.ID, 10),
		"Segment “"+s.Name+"” saved. It has "+formatNum(s.MemberCount)+" members right now.")
}

func (u *UI) deleteSegment(w http.ResponseWriter, r *http.Request, p *Page) error {
	if err := u.call(r, p, http.MethodDelete, segmentAPI(r), nil, nil); err != nil {
		if statusOf(err) == http.StatusConflict {
			return redirect(w, r, "/segments/"+r.PathValue("id"), "!This segment is used by an export. Remove it from the export first.")
		}
		return err
	}
	return redirect(w, r, "/segments", "Segment deleted.")
}
