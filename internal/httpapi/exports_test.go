package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/export"
	"github.com/segsync/segsync/internal/jobs"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/mailchimp/emulator/emulatortest"
	"github.com/segsync/segsync/internal/source"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/syncer"
)

// exportConns adapts the connection service to export.Connections.
type exportConns struct{ s *connection.Service }

func (c exportConns) Authorize(ctx context.Context, p auth.Principal, id int64) (store.Connection, error) {
	return c.s.Authorize(ctx, p, id)
}

func (c exportConns) Audience(ctx context.Context, p auth.Principal, id int64) (export.Audience, error) {
	cl, err := c.s.Client(ctx, p, id)
	if err != nil {
		return nil, err
	}
	return cl, nil
}

// exportEnv is a whole server (auth, connections, exports, run workers)
// in front of an emulator.
type exportEnv struct {
	t      testing.TB
	ts     *httptest.Server
	emu    *emulator.Server
	list   string
	tokens map[auth.Role]string
}

func newExportEnv(t testing.TB, db *sqldb.DB, opts emulator.Options) *exportEnv {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	e := &exportEnv{t: t, emu: emulatortest.Start(t, opts), tokens: map[auth.Role]string{}}
	var err error
	if e.list, err = e.emu.CreateList(e.emu.Key(), "Shop"); err != nil {
		t.Fatal(err)
	}
	_ = e.emu.AddMergeField(e.list, "FNAME", "First name", "text")
	_ = e.emu.AddMergeField(e.list, "LNAME", "Last name", "text")
	auditLog := audit.New(db, nil)
	users := auth.NewService(db, auditLog, nil, auth.Options{Password: auth.PasswordParams{Memory: 64, Time: 1, Threads: 1}})
	vault, err := connection.NewVault(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	limiter := mailchimp.NewLocalLimiter(10)
	conns, err := connection.NewService(db, connection.Options{Vault: vault, Audit: auditLog,
		ClientConfig: func(c *mailchimp.Config) {
			c.BaseURL = e.emu.URL // every client talks to the emulator, whatever a request says
			c.Limiter, c.RetryBaseDelay, c.RetryMaxDelay, c.MaxRetries = limiter, time.Millisecond, 20*time.Millisecond, 12
		}})
	if err != nil {
		t.Fatal(err)
	}
	runner := &jobs.Runner{Store: db, Engine: &syncer.Engine{Store: db, Source: db}, Clients: conns,
		Poll: 10 * time.Millisecond, Lease: 2 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	srcs := source.NewService(db, vault, auditLog, nil)
	srcs.SetRunQueuer(runner)
	srv := New(Deps{Store: db, Auth: users, Connections: conns, Audit: auditLog,
		Exports: &export.Service{Store: db, Connections: exportConns{conns}, Audit: auditLog}, Runs: runner, Sources: srcs})
	e.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(e.ts.Close)
	for _, r := range []auth.Role{auth.Admin, auth.Contributor, auth.Viewer} {
		u, err := users.CreateUser(ctx, auth.SystemPrincipal, auth.NewUser{Email: string(r) + "@shop.io", Role: string(r), Password: "a long enough password"})
		if err != nil {
			t.Fatal(err)
		}
		if e.tokens[r], _, err = users.CreateToken(ctx, auth.SystemPrincipal, u.ID, "t"); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// call sends a request as role and decodes a JSON answer into out.
func (e *exportEnv) call(role auth.Role, method, path string, body any, want int, out any) []byte {
	e.t.Helper()
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd, ctype = strings.NewReader(b), "text/csv"
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.ts.URL+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	if out == "csv" {
		req.Header.Set("Accept", "text/csv")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s as %s: %d %s, want %d", method, path, role, resp.StatusCode, got, want)
	}
	if out != nil && out != "csv" {
		if err := json.Unmarshal(got, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, got, err)
		}
	}
	return got
}

type apiPerson struct {
	id, email, first, tier string
	spend                  int
}

func importCSV(e *exportEnv, ps []apiPerson) {
	var b strings.Builder
	b.WriteString("customer_id,email,first,tier,spend\n")
	for _, p := range ps {
		fmt.Fprintf(&b, "%s,%s,%s,%s,%d\n", p.id, p.email, p.first, p.tier, p.spend)
	}
	var res struct {
		Rejected int `json:"rejected"`
	}
	e.call(auth.Contributor, "POST", "/api/v1/profiles/import", b.String(), 200, &res)
	if res.Rejected != 0 {
		e.t.Fatalf("import rejected %d rows", res.Rejected)
	}
}

// runExport starts a run through the API and waits for its end.
func (e *exportEnv) runExport(id int64, dry bool) store.Run {
	e.t.Helper()
	var run store.Run
	e.call(auth.Contributor, "POST", fmt.Sprintf("/api/v1/exports/%d/runs", id), map[string]bool{"dry_run": dry}, 202, &run)
	if run.Status != store.RunQueued && run.Status != store.RunRunning {
		e.t.Fatalf("started run = %+v", run)
	}
	deadline := time.Now().Add(60 * time.Second)
	for run.FinishedAt == nil {
		if time.Now().After(deadline) {
			e.t.Fatalf("run %d did not finish: %+v", run.ID, run)
		}
		time.Sleep(20 * time.Millisecond)
		e.call(auth.Viewer, "GET", fmt.Sprintf("/api/v1/runs/%d", run.ID), nil, 200, &run)
	}
	return run
}

// settle runs again while transient rejections remain (injected faults can
// outlast the client's retries).
func (e *exportEnv) settle(id int64, run store.Run) store.Run {
	for i := 0; i < 5 && e.transient(run.ID) > 0; i++ {
		run = e.runExport(id, false)
	}
	if n := e.transient(run.ID); n > 0 {
		e.t.Fatalf("%d transient rejections after retrying", n)
	}
	return run
}

func (e *exportEnv) transient(runID int64) int {
	var res struct {
		Rejections []store.Rejection `json:"rejections"`
	}
	e.call(auth.Viewer, "GET", fmt.Sprintf("/api/v1/runs/%d/rejections", runID), nil, 200, &res)
	n := 0
	for _, r := range res.Rejections {
		if r.Kind == "transient" {
			n++
		}
	}
	return n
}

// expectAudience computes the audience independently from the test's own
// data and compares it with the emulator's.
func (e *exportEnv) expectAudience(people map[string]apiPerson, seeded map[string]string, leftFirst map[string]string) {
	e.t.Helper()
	type want struct {
		status, first string
		tags          []string
	}
	exp := map[string]want{}
	for email, first := range leftFirst {
		exp[email] = want{status: "subscribed", first: first}
	}
	for _, p := range people {
		var tags []string
		if p.tier == "gold" {
			tags = append(tags, "Gold")
		}
		if p.spend >= 500 {
			tags = append(tags, "Big")
		}
		if len(tags) == 0 || !strings.Contains(p.email, "@") {
			continue
		}
		exp[p.email] = want{status: "subscribed", first: p.first, tags: tags}
	}
	for email, st := range seeded {
		w, in := exp[email]
		switch {
		case st == "archived":
			exp[email] = want{status: "archived", first: "Seed"}
		case st == "deleted":
			delete(exp, email)
		case in:
			w.status = map[string]string{"unsubscribed-self": "unsubscribed"}[st]
			if w.status == "" {
				w.status = st
			}
			exp[email] = w
		default:
			exp[email] = want{status: st, first: "Seed"}
		}
	}
	got, err := e.emu.Contacts(e.list)
	if err != nil {
		e.t.Fatal(err)
	}
	have := map[string]emulator.Contact{}
	for _, c := range got {
		have[c.Email] = c
	}
	for email, w := range exp {
		c, ok := have[email]
		if !ok {
			e.t.Errorf("%s missing from the audience", email)
			continue
		}
		tags := append([]string(nil), c.Tags...)
		sort.Strings(tags)
		sort.Strings(w.tags)
		if c.Status != w.status || c.MergeFields["FNAME"] != w.first || strings.Join(tags, ",") != strings.Join(w.tags, ",") {
			e.t.Errorf("%s = %s %v %v, want %s %s %v", email, c.Status, c.MergeFields, c.Tags, w.status, w.first, w.tags)
		}
	}
	for email := range have {
		if _, ok := exp[email]; !ok {
			e.t.Errorf("%s is in the audience but should not be", email)
		}
	}
	if e.emu.Forgotten(e.list, "p4@shop.io") == false {
		e.t.Errorf("the permanently deleted contact came back")
	}
}

func exportScenario(t *testing.T, db *sqldb.DB, opts emulator.Options) {
	e := newExportEnv(t, db, opts)
	people := map[string]apiPerson{}
	var ps []apiPerson
	for i := 0; i < 90; i++ {
		p := apiPerson{id: fmt.Sprintf("c%03d", i), email: fmt.Sprintf("p%d@shop.io", i), first: fmt.Sprintf("F%d", i),
			tier: []string{"gold", "silver"}[i%2], spend: (i * 53) % 1000}
		if i == 8 {
			p.email = "not an address"
		}
		ps = append(ps, p)
		people[p.id] = p
	}
	importCSV(e, ps)
	seeded := map[string]string{"p0@shop.io": "unsubscribed-self", "p14@shop.io": "cleaned", "p2@shop.io": "archived",
		"p4@shop.io": "deleted", "p6@shop.io": "pending", "p16@shop.io": "unsubscribed", "p18@shop.io": "transactional",
		"p1@shop.io": "subscribed"} // p1 is in no segment: left alone
	for email, st := range seeded {
		if err := e.emu.Seed(e.list, emulator.SeedContact{Email: email, Status: st, MergeFields: map[string]string{"FNAME": "Seed"}}); err != nil {
			t.Fatal(err)
		}
	}
	var conn struct {
		ID int64 `json:"id"`
	}
	e.call(auth.Admin, "POST", "/api/v1/connections", map[string]any{"display_name": "Shop", "type": "mailchimp",
		"api_key": e.emu.Key(), "api_base_url": e.emu.URL, "allow_contributors": true, "privacy_consent": true}, 201, &conn)
	var gold, big struct {
		ID int64 `json:"id"`
	}
	e.call(auth.Contributor, "POST", "/api/v1/segments", map[string]any{"name": "Gold", "rule": map[string]any{"attribute": "tier", "op": "eq", "value": "gold"}}, 201, &gold)
	e.call(auth.Contributor, "POST", "/api/v1/segments", map[string]any{"name": "Big", "rule": map[string]any{"attribute": "spend", "op": "gte", "value": 500}}, 201, &big)

	body := map[string]any{"name": "shop", "connection_id": conn.ID, "audience_id": e.list, "segment_ids": []int64{gold.ID, big.ID},
		"mapping":  map[string]any{"email": "email", "first_name": "first", "attributes": []map[string]string{{"attribute": "spend", "merge_tag": "SPEND"}}},
		"schedule": "off"}
	// Validation names each fault; the missing merge field is one of them.
	var p Problem
	bad := map[string]any{"name": "", "connection_id": conn.ID, "audience_id": "nope", "segment_ids": []int64{999},
		"mapping": map[string]any{"email": "mail"}, "schedule": "sometimes", "on_leave": "explode"}
	e.call(auth.Contributor, "POST", "/api/v1/exports", bad, 400, &p)
	fields := map[string]bool{}
	for _, fe := range p.Errors {
		fields[fe.Field] = true
	}
	for _, f := range []string{"name", "audience_id", "segment_ids[0]", "mapping.email", "schedule", "on_leave"} {
		if !fields[f] {
			t.Errorf("invalid export: no error for %s in %+v", f, p.Errors)
		}
	}
	e.call(auth.Contributor, "POST", "/api/v1/exports", body, 400, &p)
	if len(p.Errors) != 1 || p.Errors[0].Field != "mapping.attributes[0].merge_tag" {
		t.Fatalf("missing merge field: %+v", p.Errors)
	}
	body["create_missing_merge_fields"] = true
	var exp store.Export
	e.call(auth.Viewer, "POST", "/api/v1/exports", body, 403, nil)
	e.call(auth.Contributor, "POST", "/api/v1/exports", body, 201, &exp)
	e.call(auth.Viewer, "POST", fmt.Sprintf("/api/v1/exports/%d/runs", exp.ID), nil, 403, nil)

	dry := e.runExport(exp.ID, true)
	if dry.Status != store.RunSucceeded || dry.Counts.Created == 0 || len(dry.Sample["create"]) == 0 || e.emu.WriteCalls() != 0 {
		t.Fatalf("dry run = %+v (write calls %d)", dry, e.emu.WriteCalls())
	}
	first := e.runExport(exp.ID, false)
	run := e.settle(exp.ID, first)
	if first.Counts.SkippedInvalidEmail != 1 || first.Counts.Rejected < 1 || run.Counts.SkippedArchived != 1 || first.Status != store.RunPartiallySucceeded {
		t.Errorf("run 1: %s %+v", first.Status, first.Counts)
	}
	e.expectAudience(people, seeded, nil)
	csv := string(e.call(auth.Viewer, "GET", fmt.Sprintf("/api/v1/runs/%d/rejections", first.ID), nil, 200, "csv"))
	if !strings.HasPrefix(csv, "email,customer_id,reason") || !strings.Contains(csv, "p4@shop.io") {
		t.Errorf("rejections CSV = %q", csv)
	}

	// Changes: c010 and c012 leave (silver, low spend), c011 joins, c020 is renamed.
	left := map[string]string{}
	var changed []apiPerson
	for _, id := range []string{"c010", "c012"} {
		q := people[id]
		left[q.email] = q.first
		q.tier, q.spend = "silver", 1
		changed = append(changed, q)
	}
	for _, id := range []string{"c011", "c021"} {
		q := people[id]
		q.tier = "gold"
		changed = append(changed, q)
	}
	q := people["c020"]
	q.first = "Renamed"
	changed = append(changed, q)
	for _, c := range changed {
		people[c.id] = c
	}
	importCSV(e, changed)
	run = e.settle(exp.ID, e.runExport(exp.ID, false))
	if run.Counts.Created+run.Counts.Updated+run.Counts.TagsAdded+run.Counts.TagsRemoved == 0 {
		t.Errorf("run 2 sent nothing: %+v", run.Counts)
	}
	e.expectAudience(people, seeded, left)

	// No change: no write call at all.
	e.emu.ResetCounters()
	run = e.runExport(exp.ID, false)
	if w := e.emu.WriteCalls(); w != 0 || run.Counts.WriteCalls != 0 {
		t.Errorf("run 3 over unchanged data made %d write calls: %v", w, e.emu.Calls())
	}
	if run.Counts.Incremental != 1 || run.Counts.Profiles != 0 {
		t.Errorf("run 3 over unchanged data planned %d profiles (incremental %v)", run.Counts.Profiles, run.Counts.Incremental)
	}
	e.expectAudience(people, seeded, left)

	// A full re-sync plans every profile, and sends nothing either.
	var full store.Run
	e.call(auth.Contributor, "POST", fmt.Sprintf("/api/v1/exports/%d/runs", exp.ID), map[string]bool{"full_resync": true}, 202, &full)
	for deadline := time.Now().Add(60 * time.Second); full.FinishedAt == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		e.call(auth.Viewer, "GET", fmt.Sprintf("/api/v1/runs/%d", full.ID), nil, 200, &full)
	}
	if full.Status != store.RunSucceeded || full.Counts.Incremental != 0 || full.Counts.Profiles == 0 || e.emu.WriteCalls() != 0 {
		t.Errorf("full re-sync = %s %+v (write calls %d)", full.Status, full.Counts, e.emu.WriteCalls())
	}
	run = full

	var runs struct {
		Runs []store.Run `json:"runs"`
	}
	e.call(auth.Viewer, "GET", fmt.Sprintf("/api/v1/exports/%d/runs", exp.ID), nil, 200, &runs)
	if len(runs.Runs) < 4 || runs.Runs[0].ID != run.ID {
		t.Errorf("runs listing: %d runs", len(runs.Runs))
	}
	e.call(auth.Contributor, "POST", fmt.Sprintf("/api/v1/runs/%d/cancel", run.ID), nil, 409, nil)
	var refreshed struct {
		Runs []store.Run `json:"runs"`
	}
	e.call(auth.Contributor, "POST", "/api/v1/refresh", nil, 202, &refreshed)
	if len(refreshed.Runs) != 0 { // the export's schedule is "off"
		t.Errorf("refresh queued %d runs", len(refreshed.Runs))
	}
	e.call(auth.Contributor, "DELETE", fmt.Sprintf("/api/v1/exports/%d", exp.ID), nil, 204, nil)
	e.call(auth.Viewer, "GET", fmt.Sprintf("/api/v1/exports/%d", exp.ID), nil, 404, nil)
	if cs, _ := e.emu.Contacts(e.list); len(cs) == 0 {
		t.Error("deleting the export deleted Mailchimp data")
	}
}

func TestExportsEndToEnd(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) { exportScenario(t, db, emulator.Options{}) })
}

func TestExportsEndToEndWithFaults(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		exportScenario(t, db, emulator.Options{FailRate: 0.1, MaxConns: 10, Seed: 3})
	})
}
