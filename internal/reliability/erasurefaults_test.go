package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/erasure"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/postgres"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/store/sqlite"
	"github.com/segsync/segsync/internal/syncer"
)

// TestServeKilledMidErasure: a person sent by two exports to two audiences
// on two Mailchimp accounts is erased; `segsync serve` dies with SIGKILL
// while the first audience's permanent delete is in flight, either before
// it reached Mailchimp or after Mailchimp applied it (the answer lost). The
// restarted process finishes the erasure by itself: the contact is
// permanently deleted from both audiences and reported per audience
// (deleted, or not_found where the lost delete went through), the person is
// gone from profiles, synced state, rejections and samples, everyone else
// is untouched, and later runs of both exports do not re-create them.
func TestServeKilledMidErasure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Parallel()
	for _, applied := range []bool{false, true} {
		name := "delete held before Mailchimp"
		if applied {
			name = "delete applied, answer held"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, dialect := range []string{"sqlite", "postgres"} {
				t.Run(dialect, func(t *testing.T) {
					t.Parallel()
					db, srv := openServed(t, dialect)
					testServeKilledMidErasure(t, db, srv, applied)
				})
			}
		})
	}
}

// openServed opens a database of the dialect (SQLite in a fresh data
// directory, or the test PostgreSQL) and a serve process (not started) on
// it.
func openServed(t *testing.T, dialect string) (*sqldb.DB, *server) {
	t.Helper()
	var db *sqldb.DB
	var srv *server
	var err error
	if dialect == "postgres" {
		url := dbtest.PostgresURL(t)
		db, err = postgres.Open(context.Background(), url, nil)
		srv = newServer(t, t.TempDir(), url)
	} else {
		dir := t.TempDir()
		db, err = sqlite.Open(context.Background(), dir, nil)
		srv = newServer(t, dir, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, srv
}

// account is a second Mailchimp account (its own emulator behind its own
// gate) with an export of the world's segments to one of its audiences.
type account struct {
	emu  *emulator.Emulator
	gate *gate
	key  string
	list string
	exp  store.Export
}

func (w *world) addAccount(name string) *account {
	t := w.t
	a := &account{emu: emulator.New(emulator.Options{})}
	a.key = a.emu.Keys()[0]
	a.gate = newGate(a.emu.Handler())
	ts := httptest.NewServer(a.gate)
	t.Cleanup(ts.Close)
	var err error
	if a.list, err = a.emu.CreateList(a.key, name); err != nil {
		t.Fatal(err)
	}
	_ = a.emu.AddMergeField(a.list, "FNAME", "First name", "text") // may exist by default
	view, err := w.conns.Create(w.ctx, w.admin, connection.CreateInput{DisplayName: name + " account", APIKey: a.key,
		PrivacyConsent: true, APIBaseURL: ts.URL + "/3.0"})
	if err != nil {
		t.Fatal(err)
	}
	a.exp = store.Export{Name: name, ConnectionID: &view.ID, AudienceID: a.list, SegmentIDs: w.exp.SegmentIDs,
		Mapping: w.exp.Mapping, StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
	if err := w.db.CreateExport(w.ctx, &a.exp); err != nil {
		t.Fatal(err)
	}
	return a
}

// isPermanentDelete tells a request that permanently deletes a contact.
func isPermanentDelete(rq *request) bool {
	return strings.HasSuffix(rq.path, "/actions/delete-permanent")
}

func testServeKilledMidErasure(t *testing.T, db *sqldb.DB, srv *server, applied bool) {
	w := newWorld(t, db, worldOpts{people: 50, noRunner: true})
	club := w.addAccount("Club")
	ctx := w.ctx
	exports := []store.Export{w.exp, club.exp}
	runAll := func(what string, dry bool) []store.Run {
		t.Helper()
		var ids []int64
		for _, e := range exports {
			run, _, err := db.EnqueueRun(ctx, e.ID, store.TriggerManual, dry, "reliability")
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, run.ID)
		}
		var out []store.Run
		for _, id := range ids {
			r := w.waitRun(id, 90*time.Second, finished)
			w.wantRunOK(r, what)
			out = append(out, r)
		}
		return out
	}
	srv.start()

	// A dry run of the club's export puts people into its sample; the
	// person to erase is one of them, an ordinary member of both segments.
	dry := runAll("dry run", true)[1]
	var victim person
	for _, c := range dry.Sample[syncer.KindCreate] {
		_, special := w.frozen[c.Email]
		if p, ok := w.people[c.CustomerID]; ok && p.email == c.Email && !special && w.foreign[c.Email] == nil && !w.gone[c.Email] && !w.fake[c.Email] {
			victim = p
			break
		}
	}
	if victim.id == "" {
		t.Fatalf("no ordinary person in the dry run's sample: %+v", dry.Sample)
	}
	first := runAll("first run", false)
	w.verify("after the first run")
	for _, a := range []struct {
		emu  *emulator.Emulator
		list string
	}{{w.emu, w.list}, {club.emu, club.list}} {
		if c, err := a.emu.Contact(a.list, victim.email); err != nil || c.Status != "subscribed" {
			t.Fatalf("%s was not sent to %s: %+v %v", victim.email, a.list, c, err)
		}
	}
	clubBefore := audienceOf(t, club.emu, club.list)
	// Rejections of an earlier run, by customer id and by address only.
	if err := db.AddRejections(ctx, first[0].ID, []store.Rejection{
		{Email: victim.email, CustomerID: victim.id, Reason: "Service Unavailable", Kind: "transient"},
		{Email: victim.email, Reason: "Service Unavailable", Kind: "transient"},
	}); err != nil {
		t.Fatal(err)
	}
	if n := traces(t, db, exports, dry.ID, victim); n == 0 {
		t.Fatalf("the person left no trace in segsync before the erasure: the checks after it would be vacuous")
	}

	// The first audience's permanent delete is held (answered or not); the
	// worker deletes one audience after the other, so the second one
	// waits behind it.
	holdA, nowA := holdAfter(isPermanentDelete)
	holdB, nowB := holdAfter(isPermanentDelete)
	if applied {
		holdA = appliedThenHeld(holdA)
		holdB = appliedThenHeld(holdB)
	}
	w.gate.setInject(holdA)
	club.gate.setInject(holdB)
	svc := &erasure.Service{Store: db, Audit: audit.New(db, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	e, err := svc.Request(ctx, audit.Actor{ID: w.admin.UserID, Email: w.admin.Email}, victim.id)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Audiences) != 2 {
		t.Fatalf("the erasure has %d audiences, want 2: %+v", len(e.Audiences), e.Audiences)
	}
	if n := traces(t, db, exports, dry.ID, victim); n != 0 {
		t.Errorf("right after the request, %d traces of the person are left in segsync", n)
	}
	var firstConn int64
	select {
	case <-nowA:
		firstConn = *w.exp.ConnectionID
	case <-nowB:
		firstConn = *club.exp.ConnectionID
	case <-time.After(60 * time.Second):
		t.Fatalf("no permanent delete reached Mailchimp; serve log:\n%s", srv.log())
	}
	if e.Audiences[0].ConnectionID != firstConn {
		t.Fatalf("the delete in flight is not the first audience's: %+v, held on connection %d", e.Audiences, firstConn)
	}
	firstEmu, firstList := w.emu, w.list
	if firstConn == *club.exp.ConnectionID {
		firstEmu, firstList = club.emu, club.list
	}
	if applied {
		waitUntil(t, 30*time.Second, "Mailchimp applied the held delete", func() bool { return firstEmu.Forgotten(firstList, victim.email) })
	}
	srv.kill()
	mid, err := db.GetErasure(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range mid.Audiences {
		if mid.Status != store.ErasureRunning || a.Result != store.ErasurePendingTarget {
			t.Fatalf("after the kill the erasure is %s with %+v; the kill came too late to test anything", mid.Status, mid.Audiences)
		}
	}
	if !applied {
		if _, err := firstEmu.Contact(firstList, victim.email); err != nil {
			t.Fatalf("the held delete reached Mailchimp: %v", err)
		}
	}

	w.gate.setInject(nil)
	club.gate.setInject(nil)
	restarted := time.Now()
	srv.start()
	// Done: succeeded, and the completion is in the audit log (it is
	// written right after the status).
	var got store.Erasure
	var events []store.AuditEvent
	waitUntil(t, 60*time.Second, "the erasure succeeded after the restart", func() bool {
		got, err = db.GetErasure(ctx, e.ID)
		if err != nil || got.Status != store.ErasureSucceeded {
			return false
		}
		// Erasures are recorded on the profile: the customer id, never the address.
		events, err = db.ListAuditEvents(ctx, store.AuditFilter{Kinds: []string{"profile"}, ObjectID: victim.id})
		return err == nil && len(events) >= 2
	})
	t.Logf("finished %v after the restart, attempt %d: %+v", time.Since(restarted).Round(time.Millisecond), got.Attempts, got.Audiences)
	if got.Attempts < 2 {
		t.Errorf("the erasure was not resumed: attempts %d", got.Attempts)
	}
	for _, a := range got.Audiences {
		want := store.ErasureDeleted
		if applied && a.ConnectionID == firstConn {
			want = store.ErasureNotFound
		}
		if a.Result != want || a.Error != "" || a.Email != "" {
			t.Errorf("audience %s (connection %d): %q %q, address kept: %v; want %s", a.AudienceID, a.ConnectionID, a.Result, a.Error, a.Email != "", want)
		}
	}
	for _, a := range []struct {
		emu  *emulator.Emulator
		list string
	}{{w.emu, w.list}, {club.emu, club.list}} {
		if _, err := a.emu.Contact(a.list, victim.email); err == nil || !a.emu.Forgotten(a.list, victim.email) {
			t.Errorf("%s is still in %s or not permanently deleted: %v", victim.email, a.list, err)
		}
	}
	if n := traces(t, db, exports, dry.ID, victim); n != 0 {
		t.Errorf("after the erasure, %d traces of the person are left in segsync", n)
	}
	b, _ := json.Marshal(events)
	if len(events) != 2 || strings.Contains(string(b), victim.email) || !strings.Contains(string(b), erasure.ActionDone) {
		t.Errorf("audit of the erasure (request and completion, never the address): %s", b)
	}

	// Everyone else stays; later runs of both exports write nothing and
	// the person stays forgotten.
	delete(w.people, victim.id)
	w.gone[victim.email] = true
	w.order = removeID(w.order, victim.id)
	delete(clubBefore, victim.email)
	sentBefore := [2]int{sentTo(w.gate, victim.email), sentTo(club.gate, victim.email)}
	for i, r := range runAll("run after the erasure", false) {
		if r.Counts.WriteCalls != 0 {
			t.Errorf("export %s: a run after the erasure made %d write calls", exports[i].Name, r.Counts.WriteCalls)
		}
	}
	if sent := [2]int{sentTo(w.gate, victim.email), sentTo(club.gate, victim.email)}; sent != sentBefore {
		t.Errorf("the erased contact was sent again: %v writes, %v before", sent, sentBefore)
	}
	w.verify("after the runs following the erasure")
	if after := audienceOf(t, club.emu, club.list); !sameDigest(clubBefore, after) {
		t.Errorf("the club's audience changed beyond the erased contact:\nbefore %v\nafter  %v", clubBefore, after)
	}
	srv.kill()
	w.extraLogs = srv.log()
	if !strings.Contains(w.extraLogs, "erasure done") {
		t.Errorf("the serve log does not say the erasure was done")
	}
	if secret, _, _ := strings.Cut(club.key, "-"); strings.Contains(w.extraLogs, secret) {
		t.Errorf("the second account's key appears in the serve log")
	}
	w.assertNoSecrets()
}

// appliedThenHeld lets the emulator apply a held request; its answer is held.
func appliedThenHeld(inject func(rq *request) action) func(rq *request) action {
	return func(rq *request) action {
		act := inject(rq)
		act.after = act.hold != nil
		return act
	}
}

// traces counts what segsync still keeps of a person: the profile, synced
// rows of the exports, rejections of their runs and entries in the sample
// of the dry run.
func traces(t *testing.T, db *sqldb.DB, exports []store.Export, dryRun int64, p person) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	if _, err := db.GetProfile(ctx, p.id); err == nil {
		n++
	} else if !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	mine := func(email, customerID string) bool {
		return customerID == p.id || strings.EqualFold(strings.TrimSpace(email), p.email)
	}
	for _, e := range exports {
		if err := db.StreamSynced(ctx, e.ID, func(s store.Synced) error {
			if mine(s.Email, s.CustomerID) {
				n++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		runs, err := db.ListRuns(ctx, e.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if err := db.StreamRejections(ctx, r.ID, func(x store.Rejection) error {
				if mine(x.Email, x.CustomerID) {
					n++
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := db.GetRun(ctx, dryRun)
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range r.Sample {
		for _, c := range cs {
			if mine(c.Email, c.CustomerID) {
				n++
			}
		}
	}
	return n
}

// audienceOf maps every contact of an audience to its status and tags.
func audienceOf(t *testing.T, emu *emulator.Emulator, list string) map[string]string {
	t.Helper()
	cs, err := emu.Contacts(list)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range cs {
		tags := append([]string(nil), c.Tags...)
		sort.Strings(tags)
		out[strings.ToLower(c.Email)] = c.Status + " " + strings.Join(tags, ",") + " " + c.MergeFields["FNAME"]
	}
	return out
}

// sentTo counts the writes naming a contact that reached a gate.
func sentTo(g *gate, email string) int {
	fields, tags := g.sentCounts()
	return fields[hashOf(email)] + tags[hashOf(email)]
}

func removeID(ids []string, id string) []string {
	out := ids[:0:0]
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
