package web

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/export"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/schedule"
	"github.com/segsync/segsync/internal/store"
)

// exportJSON is an export as the API answers it; LastRun and NextRunAt are
// used when the API gives them.
type exportJSON struct {
	store.Export
	LastRun   *store.Run `json:"last_run,omitempty"`
	NextRunAt *time.Time `json:"next_run_at,omitempty"`
}

// exportRow is an export as the pages show it.
type exportRow struct {
	exportJSON
	ConnectionName string
	SegmentNames   []string
	Next           string // when it runs next, in words
}

type exportsData struct {
	Exports     []exportRow
	Connections int
	HasSegments bool
}

func exportAPI(r *http.Request) string { return "/api/v1/exports/" + url.PathEscape(r.PathValue("id")) }

// nextRun says when an export runs next by its schedule.
func (u *UI) nextRun(e exportJSON) string {
	if e.ConnectionID == nil {
		return "Not scheduled: no connection"
	}
	if e.NextRunAt != nil {
		return formatTime(e.NextRunAt)
	}
	spec := e.Schedule
	switch spec {
	case schedule.Off:
		return "On demand only"
	case "", schedule.Refresh:
		spec = u.deps.RefreshSchedule
		if spec == "" {
			return "With the nightly refresh"
		}
	}
	c, err := schedule.ParseCron(spec)
	if err != nil {
		return "—"
	}
	return formatTime(c.Next(time.Now()))
}

// lookups fetches what the export pages name by id.
func (u *UI) lookups(r *http.Request, p *Page) (map[int64]string, map[int64]segmentRow, []connection.View, []segmentRow, error) {
	var cs struct {
		Connections []connection.View `json:"connections"`
	}
	if err := u.call(r, p, http.MethodGet, "/api/v1/connections", nil, &cs); err != nil {
		return nil, nil, nil, nil, err
	}
	conns := map[int64]string{}
	for _, c := range cs.Connections {
		conns[c.ID] = c.DisplayName
	}
	segs, err := u.listSegments(r, p)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	byID := map[int64]segmentRow{}
	for _, s := range segs {
		byID[s.ID] = s
	}
	return conns, byID, cs.Connections, segs, nil
}

func (u *UI) row(e exportJSON, conns map[int64]string, segs map[int64]segmentRow) exportRow {
	row := exportRow{exportJSON: e, Next: u.nextRun(e)}
	if e.ConnectionID != nil {
		row.ConnectionName = conns[*e.ConnectionID]
		if row.ConnectionName == "" {
			row.ConnectionName = "(not shared with you)"
		}
	}
	for _, id := range e.SegmentIDs {
		if s, ok := segs[id]; ok {
			row.SegmentNames = append(row.SegmentNames, s.Name)
		}
	}
	return row
}

func (u *UI) listExports(r *http.Request, p *Page) ([]exportJSON, error) {
	var out struct {
		Exports []exportJSON `json:"exports"`
	}
	if err := u.call(r, p, http.MethodGet, "/api/v1/exports", nil, &out); err != nil {
		return nil, err
	}
	return out.Exports, nil
}

// lastRun is an export's latest run, from the export itself or its runs.
func (u *UI) lastRun(r *http.Request, p *Page, e exportJSON) (*store.Run, error) {
	if e.LastRun != nil {
		return e.LastRun, nil
	}
	runs, err := u.exportRuns(r, p, e.ID, 1)
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return &runs[0], nil
}

func (u *UI) exportRuns(r *http.Request, p *Page, id int64, limit int) ([]store.Run, error) {
	var out struct {
		Runs []store.Run `json:"runs"`
	}
	path := apiPath(url.Values{"limit": {strconv.Itoa(limit)}}, "/api/v1/exports", strconv.FormatInt(id, 10), "runs")
	if err := u.call(r, p, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	if len(out.Runs) > limit {
		out.Runs = out.Runs[:limit]
	}
	return out.Runs, nil
}

func (u *UI) exportsPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	exps, err := u.listExports(r, p)
	if err != nil {
		return err
	}
	conns, segs, cl, sl, err := u.lookups(r, p)
	if err != nil {
		return err
	}
	d := exportsData{Connections: len(cl), HasSegments: len(sl) > 0}
	for _, e := range exps {
		run, err := u.lastRun(r, p, e)
		if err != nil {
			return err
		}
		e.LastRun = run
		d.Exports = append(d.Exports, u.row(e, conns, segs))
	}
	p.Title, p.Section, p.Data = "Exports", "exports", d
	u.render(w, r, p, "exports", http.StatusOK)
	return nil
}

type exportData struct {
	E    exportRow
	Runs []store.Run
}

func (u *UI) exportPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	var e exportJSON
	if err := u.call(r, p, http.MethodGet, exportAPI(r), nil, &e); err != nil {
		return err
	}
	conns, segs, _, _, err := u.lookups(r, p)
	if err != nil {
		return err
	}
	runs, err := u.exportRuns(r, p, e.ID, 20)
	if err != nil {
		return err
	}
	p.Title, p.Section, p.Data = e.Name, "exports", exportData{E: u.row(e, conns, segs), Runs: runs}
	u.render(w, r, p, "export", http.StatusOK)
	return nil
}

// exportFormData is what the export form shows.
type exportFormData struct {
	ID          int64
	Connections []connection.View
	Audiences   []connection.Audience
	AudienceErr string
	Segments    []segmentRow
	Attributes  []store.AttributeInfo
	Extra       []attrRow
	SegmentIDs  []int64
}

type attrRow struct {
	Key, Attribute, MergeTag string
}

func (u *UI) exportForm(w http.ResponseWriter, r *http.Request, p *Page, id int64, status int) error {
	_, _, conns, segs, err := u.lookups(r, p)
	if err != nil {
		return err
	}
	attrs, err := u.attributes(r, p)
	if err != nil {
		return err
	}
	// Mailchimp's statuses come from Mailchimp; a mapping cannot send them.
	attrs = slices.DeleteFunc(attrs, func(a store.AttributeInfo) bool { return attrjson.Reserved(a.Name) })
	d := exportFormData{ID: id, Connections: conns, Segments: segs, Attributes: attrs}
	if len(conns) == 1 && p.Form.Get("connection_id") == "" {
		p.Form.Set("connection_id", strconv.FormatInt(conns[0].ID, 10))
	}
	if cid := p.Form.Get("connection_id"); cid != "" {
		var out struct {
			Audiences []connection.Audience `json:"audiences"`
		}
		err := u.call(r, p, http.MethodGet, "/api/v1/connections/"+url.PathEscape(cid)+"/audiences", nil, &out)
		switch {
		case err == nil:
			d.Audiences = out.Audiences
		case statusOf(err) >= 400 && statusOf(err) != http.StatusUnauthorized:
			d.AudienceErr = "The audiences of this connection could not be listed; type the audience ID instead."
		default:
			return err
		}
	}
	for i := 0; i < 100; i++ {
		k := "attr" + strconv.Itoa(i)
		if !p.Form.Has(k + ".attribute") {
			break
		}
		d.Extra = append(d.Extra, attrRow{Attribute: p.Form.Get(k + ".attribute"), MergeTag: p.Form.Get(k + ".merge_tag")})
	}
	for i := range d.Extra {
		d.Extra[i].Key = "attr" + strconv.Itoa(i)
	}
	for _, s := range p.Form["segment_ids"] {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			d.SegmentIDs = append(d.SegmentIDs, n)
		}
	}
	p.Section, p.Data = "exports", d
	p.Title = "New export"
	if id != 0 {
		p.Title = "Edit " + p.Form.Get("name")
	}
	u.render(w, r, p, "export_form", status)
	return nil
}

func (u *UI) newExport(w http.ResponseWriter, r *http.Request, p *Page) error {
	p.Form.Set("mapping.email", "email")
	p.Form.Set("status_if_new", "subscribed")
	p.Form.Set("on_leave", "untag")
	p.Form.Set("schedule_kind", schedule.Refresh)
	return u.exportForm(w, r, p, 0, http.StatusOK)
}

func (u *UI) editExport(w http.ResponseWriter, r *http.Request, p *Page) error {
	var e exportJSON
	if err := u.call(r, p, http.MethodGet, exportAPI(r), nil, &e); err != nil {
		return err
	}
	f := p.Form
	f.Set("name", e.Name)
	if e.ConnectionID != nil {
		f.Set("connection_id", strconv.FormatInt(*e.ConnectionID, 10))
	}
	f.Set("audience_id", e.AudienceID)
	f.Set("mapping.email", e.Mapping.Email)
	f.Set("mapping.first_name", e.Mapping.FirstName)
	f.Set("mapping.last_name", e.Mapping.LastName)
	for i, a := range e.Mapping.Attributes {
		k := "attr" + strconv.Itoa(i)
		f.Set(k+".attribute", a.Attribute)
		f.Set(k+".merge_tag", a.MergeTag)
	}
	for _, s := range e.SegmentIDs {
		f.Add("segment_ids", strconv.FormatInt(s, 10))
	}
	f.Set("status_if_new", e.StatusIfNew)
	f.Set("on_leave", e.OnLeave)
	f.Set("tag_prefix", e.TagPrefix)
	if e.CreateMissingMergeFields {
		f.Set("create_missing_merge_fields", "on")
	}
	switch e.Schedule {
	case "", schedule.Refresh, schedule.Off:
		f.Set("schedule_kind", e.Schedule)
		if e.Schedule == "" {
			f.Set("schedule_kind", schedule.Refresh)
		}
	default:
		f.Set("schedule_kind", schedule.KindCron)
		f.Set("schedule_cron", e.Schedule)
	}
	return u.exportForm(w, r, p, e.ID, http.StatusOK)
}

var attrActionRE = regexp.MustCompile(`^del-attr-(\d+)$`)

// exportMessages say what the export form's faults mean to a marketer.
var exportMessages = map[string]string{
	"connection_id": "Choose the Mailchimp connection to export to.",
	"segment_ids":   "Choose at least one segment to export.",
}

var mappingPathRE = regexp.MustCompile(`^mapping\.attributes\[(\d+)\](?:\.(attribute|merge_tag))?$`)

// exportFieldOf maps API error fields to the form's fields.
func exportFieldOf(field string) string {
	if m := mappingPathRE.FindStringSubmatch(field); m != nil {
		k := "attr" + m[1]
		if m[2] == "" {
			return k + ".merge_tag"
		}
		return k + "." + m[2]
	}
	switch {
	case strings.HasPrefix(field, "segment_ids"):
		return "segment_ids"
	case field == "schedule":
		return "schedule"
	case field == "audience_id" || strings.HasPrefix(field, "audience"):
		return "audience_id"
	}
	return field
}

// compactAttrRows drops a removed row and renumbers the others.
func compactAttrRows(f url.Values, drop int) {
	var rows [][2]string
	for i := 0; i < 100; i++ {
		k := "attr" + strconv.Itoa(i)
		if !f.Has(k + ".attribute") {
			break
		}
		if i != drop {
			rows = append(rows, [2]string{f.Get(k + ".attribute"), f.Get(k + ".merge_tag")})
		}
		f.Del(k + ".attribute")
		f.Del(k + ".merge_tag")
	}
	for i, row := range rows {
		k := "attr" + strconv.Itoa(i)
		f.Set(k+".attribute", row[0])
		f.Set(k+".merge_tag", row[1])
	}
}

// saveExport creates or updates an export, or performs a form button (add
// or remove an attribute row, load the audiences of another connection).
func (u *UI) saveExport(w http.ResponseWriter, r *http.Request, p *Page) error {
	var id int64
	if s := r.PathValue("id"); s != "" {
		var err error
		if id, err = strconv.ParseInt(s, 10, 64); err != nil {
			return &APIError{Status: http.StatusNotFound}
		}
	}
	f := p.Form
	switch do := f.Get("do"); {
	case do == "add-attr":
		n := 0
		for f.Has("attr" + strconv.Itoa(n) + ".attribute") {
			n++
		}
		f.Set("attr"+strconv.Itoa(n)+".attribute", "")
		f.Set("attr"+strconv.Itoa(n)+".merge_tag", "")
		return u.exportForm(w, r, p, id, http.StatusOK)
	case do == "audiences":
		return u.exportForm(w, r, p, id, http.StatusOK)
	case attrActionRE.MatchString(do):
		i, _ := strconv.Atoi(attrActionRE.FindStringSubmatch(do)[1])
		compactAttrRows(f, i)
		return u.exportForm(w, r, p, id, http.StatusOK)
	}
	in := export.Input{
		Name: p.trimmed("name"), AudienceID: p.trimmed("audience_id"),
		Mapping:     store.Mapping{Email: f.Get("mapping.email"), FirstName: f.Get("mapping.first_name"), LastName: f.Get("mapping.last_name")},
		StatusIfNew: f.Get("status_if_new"), OnLeave: f.Get("on_leave"), TagPrefix: f.Get("tag_prefix"),
		CreateMissingMergeFields: p.Checked("create_missing_merge_fields"), SegmentIDs: []int64{},
	}
	if typed := p.trimmed("audience_id_typed"); typed != "" && (in.AudienceID == "" || in.AudienceID == "other") {
		in.AudienceID = typed
	}
	if in.AudienceID == "other" {
		in.AudienceID = ""
	}
	if cid, err := strconv.ParseInt(f.Get("connection_id"), 10, 64); err == nil {
		in.ConnectionID = &cid
	}
	for i := 0; i < 100; i++ {
		k := "attr" + strconv.Itoa(i)
		if !f.Has(k + ".attribute") {
			break
		}
		a, t := strings.TrimSpace(f.Get(k+".attribute")), strings.ToUpper(strings.TrimSpace(f.Get(k+".merge_tag")))
		if a == "" && t == "" {
			continue
		}
		in.Mapping.Attributes = append(in.Mapping.Attributes, store.AttributeMap{Attribute: a, MergeTag: t})
	}
	for _, s := range f["segment_ids"] {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			in.SegmentIDs = append(in.SegmentIDs, n)
		}
	}
	switch f.Get("schedule_kind") {
	case schedule.Off:
		in.Schedule = schedule.Off
	case schedule.KindCron:
		in.Schedule = p.trimmed("schedule_cron")
		if in.Schedule == "" {
			p.formErr("schedule", "Enter a schedule, e.g. 0 6 * * 1 for every Monday at 06:00 UTC.")
		}
	default:
		in.Schedule = schedule.Refresh
	}
	if in.ConnectionID == nil {
		p.formErr("connection_id", exportMessages["connection_id"])
	}
	if p.hasErrors() {
		return u.exportForm(w, r, p, id, http.StatusBadRequest)
	}
	var e exportJSON
	var err error
	if id == 0 {
		err = u.call(r, p, http.MethodPost, "/api/v1/exports", in, &e)
	} else {
		err = u.call(r, p, http.MethodPut, exportAPI(r), in, &e)
	}
	if err != nil {
		if statusOf(err) == http.StatusConflict {
			var ae *APIError
			errors.As(err, &ae)
			err = &APIError{Status: http.StatusBadRequest, Errors: []fieldError{{Field: "name", Message: ae.Detail}}}
		}
		if err := p.formErrors(err, exportFieldOf, exportMessages); err != nil {
			return err
		}
		return u.exportForm(w, r, p, id, http.StatusBadRequest)
	}
	return redirect(w, r, "/exports/"+strconv.FormatInt(e.ID, 10),
		"Export “"+e.Name+"” saved. It runs on its schedule; use Run now to send it right away.")
}

func (u *UI) deleteExport(w http.ResponseWriter, r *http.Request, p *Page) error {
	if err := u.call(r, p, http.MethodDelete, exportAPI(r), nil, nil); err != nil {
		return err
	}
	return redirect(w, r, "/exports", "Export deleted. Its contacts stay in Mailchimp as they are.")
}

// runExport starts a run (or a dry run) and shows it.
func (u *UI) runExport(w http.ResponseWriter, r *http.Request, p *Page) error {
	dry := p.Form.Get("dry_run") == "true"
	full := p.Form.Get("full_resync") == "true"
	var run store.Run
	if err := u.call(r, p, http.MethodPost, exportAPI(r)+"/runs", map[string]bool{"dry_run": dry, "full_resync": full}, &run); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusUnauthorized && ae.Status != http.StatusForbidden && ae.Status != http.StatusNotFound {
			return redirect(w, r, "/exports/"+r.PathValue("id"), "!The export cannot run: "+friendly(ae.Detail))
		}
		return err
	}
	msg := "Run started."
	switch {
	case dry:
		msg = "Dry run started: nothing is sent to Mailchimp."
	case full:
		msg = "Full re-sync started: the run plans every profile."
	}
	return redirect(w, r, "/runs/"+strconv.FormatInt(run.ID, 10), msg)
}

// runsFilter selects runs on the status page.
type runsFilter struct {
	Status, Trigger, Kind string
	ExportID              int64
}

func (f runsFilter) keep(r store.Run) bool {
	switch {
	case f.Status != "" && r.Status != f.Status:
		return false
	case f.Trigger != "" && r.Trigger != f.Trigger:
		return false
	case f.ExportID != 0 && r.ExportID != f.ExportID:
		return false
	case f.Kind == "dry" && !r.DryRun, f.Kind == "real" && r.DryRun:
		return false
	}
	return true
}

type statusRun struct {
	store.Run
	ExportName string
}

type statusData struct {
	Filter  runsFilter
	Exports []exportJSON
	Runs    []statusRun
	Running int
	Failed  int
}

// statusPage lists recent runs of every export with filters.
func (u *UI) statusPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	q := r.URL.Query()
	f := runsFilter{Status: q.Get("status"), Trigger: q.Get("trigger"), Kind: q.Get("kind")}
	f.ExportID, _ = strconv.ParseInt(q.Get("export"), 10, 64)
	exps, err := u.listExports(r, p)
	if err != nil {
		return err
	}
	names := map[int64]string{}
	d := statusData{Filter: f, Exports: exps}
	var all []statusRun
	for _, e := range exps {
		names[e.ID] = e.Name
		if f.ExportID != 0 && e.ID != f.ExportID {
			continue
		}
		runs, err := u.exportRuns(r, p, e.ID, 50)
		if err != nil {
			return err
		}
		for _, run := range runs {
			if run.Status == store.RunRunning || run.Status == store.RunQueued {
				d.Running++
			}
			if run.Status == store.RunFailed {
				d.Failed++
			}
			if f.keep(run) {
				all = append(all, statusRun{Run: run, ExportName: e.Name})
			}
		}
	}
	slices.SortFunc(all, func(a, b statusRun) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if len(all) > 100 {
		all = all[:100]
	}
	d.Runs = all
	p.Title, p.Section, p.Form, p.Data = "Status", "status", q, d
	u.render(w, r, p, "status", http.StatusOK)
	return nil
}
