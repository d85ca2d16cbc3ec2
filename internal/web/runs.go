package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/segsync/segsync/internal/store"
)

func runAPI(r *http.Request) string { return "/api/v1/runs/" + url.PathEscape(r.PathValue("id")) }

// countRow is one counter of a run as the run page lists it.
type countRow struct {
	Key, Label string
	N          int64
	Warn       bool
}

type runData struct {
	Run        store.Run
	Export     exportJSON
	Active     bool
	Counts     []countRow // the main outcome
	Minor      []countRow // the rest
	Rejections []store.Rejection
	Samples    []sampleGroup
	Timings    []timingRow // empty until a phase has taken time
}

// timingRow is one phase of a run as the run page lists it.
type timingRow struct {
	Key, Label, Took string
}

// runTimings lists where a run's time went, in the order of the phases;
// nothing when no phase took a measurable time (queued, or a run from
// before timings were kept).
func runTimings(t store.RunTimings) []timingRow {
	if t == (store.RunTimings{}) {
		return nil
	}
	return []timingRow{
		{"plan_ms", "planning", formatMS(t.PlanMS)},
		{"status_refresh_ms", "status refresh", formatMS(t.StatusRefreshMS)},
		{"send_ms", "sending", formatMS(t.SendMS)},
		{"record_ms", "recording (during sending)", formatMS(t.RecordMS)},
		{"idle_ms", "waiting for the account's connections", formatMS(t.IdleMS)},
	}
}

type sampleGroup struct {
	Title    string
	Contacts []store.SampleContact
}

// sampleTitles name the kinds of change of a dry run's sample, in order.
var sampleTitles = []struct{ kind, title string }{
	{"create", "New contacts"}, {"email_change", "Address changes (the contact keeps its status and tags)"},
	{"update", "Contacts updated"}, {"restore", "Contacts restored"},
	{"tag_add", "Tags added"}, {"tag_remove", "Tags removed"}, {"archive", "Contacts archived"},
	{"unsubscribe", "Contacts unsubscribed"},
}

// samples orders a run's sample by kind of change; kinds this page does not
// know yet come last under their own name.
func samples(s store.RunSample) []sampleGroup {
	var out []sampleGroup
	known := map[string]bool{}
	for _, k := range sampleTitles {
		known[k.kind] = true
		if cs := s[k.kind]; len(cs) > 0 {
			out = append(out, sampleGroup{Title: k.title, Contacts: cs})
		}
	}
	var rest []string
	for kind, cs := range s {
		if !known[kind] && len(cs) > 0 {
			rest = append(rest, kind)
		}
	}
	slices.Sort(rest)
	for _, kind := range rest {
		out = append(out, sampleGroup{Title: label(kind), Contacts: s[kind]})
	}
	return out
}

// runCounts lists a run's counters in the order a marketer reads them:
// the main outcome, then the rest.
func runCounts(c store.RunCounts) (main, minor []countRow) {
	main = []countRow{
		{"profiles", profilesLabel(c.Incremental != 0), c.Profiles, false},
		{"created", "new contacts", c.Created, false},
		{"updated", "contacts updated", c.Updated, false},
		{"email_changed", "addresses changed (contact kept)", c.EmailChanged, false},
		{"unchanged", "unchanged", c.Unchanged, false},
		{"tags_added", "tags added", c.TagsAdded, false},
		{"rejected", "rejected by Mailchimp", c.Rejected, c.Rejected > 0},
	}
	minor = []countRow{
		{"tags_removed", "tags removed", c.TagsRemoved, false},
		{"archived", "archived", c.Archived, false},
		{"unsubscribed", "unsubscribed", c.Unsubscribed, false},
		{"email_change_collisions", "address changes to an existing contact (old one left)", c.EmailChangeCollisions, c.EmailChangeCollisions > 0},
		{"duplicates", "duplicate addresses merged", c.Duplicates, false},
		{"skipped_invalid_email", "skipped: no valid email", c.SkippedInvalidEmail, c.SkippedInvalidEmail > 0},
	}
	return main, minor
}

// profilesLabel names the profiles count: an incremental run counts only
// the profiles it planned.
func profilesLabel(incremental bool) string {
	if incremental {
		return "changed profiles planned (incremental run)"
	}
	return "profiles in the segments"
}

func active(status string) bool { return status == store.RunQueued || status == store.RunRunning }

func (u *UI) runPage(w http.ResponseWriter, r *http.Request, p *Page) error {
	var run store.Run
	if err := u.call(r, p, http.MethodGet, runAPI(r), nil, &run); err != nil {
		return err
	}
	d := runData{Run: run, Active: active(run.Status)}
	d.Counts, d.Minor = runCounts(run.Counts)
	d.Timings = runTimings(run.Timings)
	if err := u.call(r, p, http.MethodGet, "/api/v1/exports/"+strconv.FormatInt(run.ExportID, 10), nil, &d.Export); err != nil && statusOf(err) != http.StatusNotFound {
		return err
	}
	if run.Counts.Rejected > 0 {
		rs, err := u.firstRejections(r, p, runAPI(r)+"/rejections", 100)
		if err != nil {
			return err
		}
		d.Rejections = rs
	}
	d.Samples = samples(run.Sample)
	title := "Run " + strconv.FormatInt(run.ID, 10)
	if run.DryRun {
		title = "Dry run " + strconv.FormatInt(run.ID, 10)
	}
	p.Title, p.Section, p.Data = title, "exports", d
	u.render(w, r, p, "run", http.StatusOK)
	return nil
}

// firstRejections reads the first n rejections of a run. The API streams
// all of them; the read stops once enough bytes for n have arrived, so a
// run with a million rejections costs no more than one with a hundred.
func (u *UI) firstRejections(r *http.Request, p *Page, path string, n int) ([]store.Rejection, error) {
	req, err := u.apiRequest(r, p, http.MethodGet, path, nil, "")
	if err != nil {
		return nil, err
	}
	// Cancelling the request when enough has arrived ends the stream
	// quietly (the API does not log a cancelled request as a failure).
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	cw := &capWriter{memWriter: newMemWriter(), limit: int64(n) * 2048, cancel: cancel}
	u.deps.API.ServeHTTP(cw, req.WithContext(ctx))
	if cw.status >= 400 {
		return nil, &APIError{Status: cw.status, Title: http.StatusText(cw.status)}
	}
	dec := json.NewDecoder(&cw.body)
	for _, want := range []string{"{", "rejections", "["} {
		tok, err := dec.Token()
		if err != nil || fmt.Sprint(tok) != want {
			return nil, nil // an empty or unexpected answer: show none
		}
	}
	var out []store.Rejection
	for len(out) < n && dec.More() {
		var rj store.Rejection
		if err := dec.Decode(&rj); err != nil {
			break // the cut-off point
		}
		out = append(out, rj)
	}
	return out, nil
}

// capWriter keeps the first limit bytes of an answer and then refuses more,
// which ends a streaming handler.
type capWriter struct {
	*memWriter
	limit  int64
	cancel context.CancelFunc
}

func (c *capWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if int64(c.body.Len()) >= c.limit {
		c.cancel()
		return 0, errors.New("web: enough read")
	}
	return c.body.Write(b)
}

// rejectionsCSV streams a run's rejections from the API as a CSV download.
func (u *UI) rejectionsCSV(w http.ResponseWriter, r *http.Request, p *Page) error {
	w.Header().Set("Content-Disposition", `attachment; filename="run-`+url.PathEscape(r.PathValue("id"))+`-rejections.csv"`)
	return u.proxy(w, r, p, runAPI(r)+"/rejections", "text/csv")
}

func (u *UI) cancelRun(w http.ResponseWriter, r *http.Request, p *Page) error {
	if err := u.call(r, p, http.MethodPost, runAPI(r)+"/cancel", nil, nil); err != nil {
		if statusOf(err) == http.StatusConflict {
			return redirect(w, r, "/runs/"+r.PathValue("id"), "!The run had already finished.")
		}
		return err
	}
	return redirect(w, r, "/runs/"+r.PathValue("id"), "Cancelling: the run stops after the batch it is sending.")
}
