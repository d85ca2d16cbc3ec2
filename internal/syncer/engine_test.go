package syncer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/mailchimp/emulator/emulatortest"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/syncer"
)

// person is the test's own view of a profile.
type person struct {
	id, email, first, last, city, tier string
	spend                              int
}

func (p person) attrs() string {
	m := map[string]any{"email": p.email, "first": p.first, "last": p.last, "tier": p.tier, "spend": p.spend}
	if p.city != "" {
		m["city"] = p.city
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// world is one scenario: profiles in a store, an audience in an emulator.
type world struct {
	t      *testing.T
	db     *sqldb.DB
	srv    *emulator.Server
	list   string
	mc     *mailchimp.Client
	api    syncer.Mailchimp // what runs call; w.mc when nil
	exp    store.Export
	people map[string]person
	order  []string // customer ids in upsert order (later = more recent)

	transient int           // transient rejections of the last run
	maxHeld   int           // Engine.MaxHeld
	src       syncer.Source // Engine.Source; db when nil
}

func newWorld(t *testing.T, db *sqldb.DB, opts emulator.Options) *world {
	t.Helper()
	w := &world{t: t, db: db, srv: emulatortest.Start(t, opts), people: map[string]person{}}
	var err error
	if w.list, err = w.srv.CreateList(w.srv.Key(), "Shop"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ tag, typ string }{{"FNAME", "text"}, {"LNAME", "text"}, {"CITY", "text"}, {"SPEND", "number"}} {
		_ = w.srv.AddMergeField(w.list, f.tag, f.tag, f.typ) // FNAME/LNAME may exist by default
	}
	w.mc = newClient(t, w.srv)
	return w
}

func newClient(t testing.TB, srv *emulator.Server) *mailchimp.Client {
	mc, err := mailchimp.New(mailchimp.Config{APIKey: srv.Key(), BaseURL: srv.URL,
		Limiter: mailchimp.NewLocalLimiter(10), RetryBaseDelay: time.Millisecond, RetryMaxDelay: 20 * time.Millisecond, MaxRetries: 12})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func mustSegment(t testing.TB, db *sqldb.DB, name, rule string) int64 {
	r, err := segment.Parse([]byte(rule), segment.KnownSet("tier", "spend", "city"))
	if err != nil {
		t.Fatal(err)
	}
	s := store.Segment{Name: name, Rule: r}
	if err := db.CreateSegment(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	return s.ID
}

func (w *world) upsert(ps ...person) {
	w.t.Helper()
	patches := make([]store.ProfilePatch, len(ps))
	for i, p := range ps {
		patches[i] = store.ProfilePatch{CustomerID: p.id, Attrs: p.attrs()}
		w.people[p.id] = p
		w.order = append(w.order, p.id)
	}
	if _, err := w.db.UpsertProfiles(context.Background(), patches); err != nil {
		w.t.Fatalf("UpsertProfiles: %v", err)
	}
	time.Sleep(2 * time.Millisecond) // distinct updated_at for the next upsert
}

func (w *world) segment(name, rule string) int64 {
	w.t.Helper()
	r, err := segment.Parse([]byte(rule), segment.KnownSet("tier", "spend", "city"))
	if err != nil {
		w.t.Fatal(err)
	}
	s := store.Segment{Name: name, Rule: r}
	if err := w.db.CreateSegment(context.Background(), &s); err != nil {
		w.t.Fatal(err)
	}
	return s.ID
}

// settle runs until a run has no transient rejections (faults injected by
// the emulator can outlast the client's retries); the state must converge.
func (w *world) settle(res syncer.Result) syncer.Result {
	w.t.Helper()
	for i := 0; i < 5 && w.transient > 0; i++ {
		res = w.run(false)
	}
	if w.transient > 0 {
		w.t.Fatalf("still %d transient rejections after 5 more runs", w.transient)
	}
	return res
}

func (w *world) run(dry bool) syncer.Result {
	w.t.Helper()
	var src syncer.Source = w.db
	if w.src != nil {
		src = w.src
	}
	e := &syncer.Engine{Store: w.db, Source: src, Concurrency: 10, MaxHeld: w.maxHeld}
	run, _, err := w.db.EnqueueRun(context.Background(), w.exp.ID, store.TriggerManual, dry, "")
	if err != nil {
		w.t.Fatal(err)
	}
	var mc syncer.Mailchimp = w.mc
	if w.api != nil {
		mc = w.api
	}
	res, err := e.Execute(context.Background(), w.exp, mc, syncer.Options{RunID: run.ID, DryRun: dry})
	if err != nil {
		w.t.Fatalf("run: %v", err)
	}
	n := 0
	w.transient = 0
	_ = w.db.StreamRejections(context.Background(), run.ID, func(r store.Rejection) error {
		if r.Kind == "transient" {
			w.transient++
		}
		if n++; n <= 5 {
			w.t.Logf("rejected %s (%s): %s", r.Email, r.Kind, r.Reason)
		}
		return nil
	})
	return res
}

type want struct {
	status string
	fields map[string]string
	tags   []string
}

// expected computes the audience the export must produce, from the test's
// own profiles, independently of the engine.
func (w *world) expected(seeded map[string]want, left map[string]want) map[string]want {
	type contact struct {
		p    person
		rank int
		tags map[string]bool
	}
	rank := map[string]int{}
	for i, id := range w.order {
		rank[id] = i
	}
	contacts := map[string]*contact{}
	for _, p := range w.people {
		email := strings.ToLower(strings.TrimSpace(p.email))
		if !strings.Contains(email, "@") || !strings.HasSuffix(email, ".io") || strings.Contains(email, " ") {
			continue
		}
		var tags []string
		if p.tier == "gold" {
			tags = append(tags, "seg:Gold")
		}
		if p.spend >= 500 {
			tags = append(tags, "seg:Big spenders")
		}
		if len(tags) == 0 {
			continue
		}
		c := contacts[email]
		if c == nil {
			c = &contact{p: p, rank: rank[p.id], tags: map[string]bool{}}
			contacts[email] = c
		} else if rank[p.id] > c.rank || (rank[p.id] == c.rank && p.id < c.p.id) {
			c.p, c.rank = p, rank[p.id]
		}
		for _, t := range tags {
			c.tags[t] = true
		}
	}
	out := map[string]want{}
	for email, l := range left {
		out[email] = l
	}
	for email, c := range contacts {
		fields := map[string]string{"FNAME": c.p.first, "LNAME": c.p.last, "SPEND": strconv.Itoa(c.p.spend)}
		if c.p.city != "" {
			fields["CITY"] = c.p.city
		}
		var tags []string
		for t := range c.tags {
			tags = append(tags, t)
		}
		wt := want{status: "subscribed", fields: fields, tags: tags}
		if s, ok := seeded[email]; ok {
			if s.status == "archived" || s.status == "deleted" {
				wt = s // left alone entirely
			} else {
				wt.status = s.status
				wt.tags = append(wt.tags, s.tags...)
			}
		}
		out[email] = wt
	}
	for email, s := range seeded {
		if _, ok := out[email]; !ok {
			out[email] = s
		}
	}
	return out
}

func (w *world) check(expect map[string]want) {
	w.t.Helper()
	got, err := w.srv.Contacts(w.list)
	if err != nil {
		w.t.Fatal(err)
	}
	have := map[string]emulator.Contact{}
	for _, c := range got {
		have[c.Email] = c
	}
	for email, x := range expect {
		c, ok := have[email]
		if x.status == "deleted" {
			if ok {
				w.t.Errorf("%s: permanently deleted contact was re-added: %+v", email, c)
			}
			continue
		}
		if !ok {
			w.t.Errorf("%s: missing from the audience", email)
			continue
		}
		if c.Status != x.status {
			w.t.Errorf("%s: status %q, want %q", email, c.Status, x.status)
		}
		if x.fields != nil && fmt.Sprint(c.MergeFields) != fmt.Sprint(x.fields) {
			w.t.Errorf("%s: merge fields %v, want %v", email, c.MergeFields, x.fields)
		}
		gt, wt := append([]string(nil), c.Tags...), append([]string(nil), x.tags...)
		sort.Strings(gt)
		sort.Strings(wt)
		if strings.Join(gt, ",") != strings.Join(wt, ",") {
			w.t.Errorf("%s: tags %v, want %v", email, gt, wt)
		}
	}
	for email := range have {
		if _, ok := expect[email]; !ok {
			w.t.Errorf("%s: in the audience but not expected", email)
		}
	}
}

func cities(i int) string {
	return []string{"Utrecht", "Gent", "", "Lyon", "Porto"}[i%5]
}

// scenario runs the whole story on one emulator configuration.
func scenario(t *testing.T, db *sqldb.DB, opts emulator.Options, n int) {
	ctx := context.Background()
	w := newWorld(t, db, opts)
	var ps []person
	for i := 0; i < n; i++ {
		tier := []string{"gold", "silver", "bronze"}[i%3]
		ps = append(ps, person{id: fmt.Sprintf("c%04d", i), email: fmt.Sprintf("user%d@shop.io", i),
			first: fmt.Sprintf("First%d", i), last: "Last", city: cities(i), tier: tier, spend: (i * 37) % 1000})
	}
	// Invalid addresses, an address needing normalisation, duplicates.
	ps[1].email, ps[1].tier = "not-an-address", "gold"
	ps[4].email, ps[4].tier = "", "gold"
	ps[7].email = "  User7@Shop.IO "
	w.upsert(ps...)
	dup := person{id: "d0001", email: "USER3@shop.io", first: "Newer", last: "Dup", city: "Gent", tier: "gold", spend: 900}
	w.upsert(dup)

	gold := w.segment("Gold", `{"attribute":"tier","op":"eq","value":"gold"}`)
	big := w.segment("Big spenders", `{"attribute":"spend","op":"gte","value":500}`)

	// Contacts that exist before the first run, in every state.
	seeded := map[string]want{
		"user0@shop.io":  {status: "unsubscribed", tags: []string{"legacy"}},
		"user6@shop.io":  {status: "cleaned"},
		"user9@shop.io":  {status: "archived", fields: map[string]string{"FNAME": "Arch"}, tags: nil},
		"user12@shop.io": {status: "deleted"},
		"user15@shop.io": {status: "subscribed", tags: []string{"vip"}},
		"user18@shop.io": {status: "unsubscribed"}, // through the API
		"user21@shop.io": {status: "pending"},
		"user24@shop.io": {status: "transactional"},
	}
	seedStatus := map[string]string{"user0@shop.io": "unsubscribed-self", "user18@shop.io": "unsubscribed"}
	for email, s := range seeded {
		st := s.status
		if v, ok := seedStatus[email]; ok {
			st = v
		}
		fields := s.fields
		if fields == nil {
			fields = map[string]string{"FNAME": "Old"}
		}
		if err := w.srv.Seed(w.list, emulator.SeedContact{Email: email, Status: st, MergeFields: fields, Tags: s.tags}); err != nil {
			t.Fatal(err)
		}
	}
	conn := int64(1)
	w.exp = store.Export{Name: "shop", ConnectionID: &conn, AudienceID: w.list, SegmentIDs: []int64{gold, big},
		Mapping: store.Mapping{Email: "email", FirstName: "first", LastName: "last",
			Attributes: []store.AttributeMap{{Attribute: "city", MergeTag: "CITY"}, {Attribute: "spend", MergeTag: "SPEND"}}},
		StatusIfNew: "subscribed", OnLeave: "untag", TagPrefix: "seg:", Schedule: "off"}
	if err := db.CreateExport(ctx, &w.exp); err != nil {
		t.Fatal(err)
	}

	// A dry run plans without writing.
	w.srv.ResetCounters()
	dry := w.run(true)
	if wc := w.srv.WriteCalls(); wc != 0 {
		t.Fatalf("dry run made %d write calls", wc)
	}
	if dry.Counts.Created == 0 || len(dry.Sample[syncer.KindCreate]) == 0 {
		t.Fatalf("dry run planned nothing: %+v", dry)
	}

	res := w.settle(w.run(false))
	t.Logf("run 1: %+v", res.Counts)
	if res.Counts.SkippedInvalidEmail != 2 || res.Counts.Duplicates < 1 {
		t.Errorf("run 1 counts: %+v", res.Counts)
	}
	// user0 (self-unsubscribed) and user6 (cleaned) keep their status; user12
	// was permanently deleted and is rejected.
	w.check(w.expected(seeded, nil))
	if got := dbRejected(t, res); got < 1 {
		t.Errorf("expected the forgotten contact to be rejected, counts %+v", res.Counts)
	}

	// Between runs: fields change, contacts join and leave segments.
	changed := []person{}
	leftEmails := map[string]want{}
	for _, i := range []int{30, 33, 36} { // gold -> bronze, low spend: leaves both segments
		p := w.people[fmt.Sprintf("c%04d", i)]
		p.tier, p.spend = "bronze", 10
		changed = append(changed, p)
		leftEmails[p.email] = want{status: "subscribed", fields: map[string]string{"FNAME": p.first, "LNAME": p.last, "SPEND": strconv.Itoa(w.people[p.id].spend), "CITY": p.city}}
		if p.city == "" {
			delete(leftEmails[p.email].fields, "CITY")
		}
	}
	for _, i := range []int{31, 34} { // silver -> gold: joins
		p := w.people[fmt.Sprintf("c%04d", i)]
		p.tier = "gold"
		changed = append(changed, p)
	}
	for _, i := range []int{39, 42, 15} { // field changes
		p := w.people[fmt.Sprintf("c%04d", i)]
		p.city, p.first = "Zürich", "Renamed"
		changed = append(changed, p)
	}
	w.upsert(changed...)
	// A subscriber unsubscribes themselves meanwhile; they must stay so.
	if err := w.srv.Unsubscribe(w.list, "user42@shop.io"); err != nil {
		t.Fatal(err)
	}
	res = w.settle(w.run(false))
	t.Logf("run 2: %+v", res.Counts)
	// Left contacts keep their last fields (from before leaving) and lose our tags.
	for _, i := range []int{30, 33, 36} {
		p := w.people[fmt.Sprintf("c%04d", i)]
		_ = p
	}
	exp := w.expected(seeded, leftEmails)
	if x, ok := exp["user42@shop.io"]; ok {
		x.status = "unsubscribed"
		exp["user42@shop.io"] = x
	}
	w.check(exp)

	// Nothing changed: no write calls at all.
	w.srv.ResetCounters()
	res = w.run(false)
	if wc := w.srv.WriteCalls(); wc != 0 {
		t.Errorf("run 3 over unchanged data made %d write calls: %v", wc, w.srv.Calls())
	}
	if res.Counts.WriteCalls != 0 || res.Counts.Created+res.Counts.Updated+res.Counts.TagsAdded+res.Counts.TagsRemoved != 0 {
		t.Errorf("run 3 counts: %+v", res.Counts)
	}
	w.check(exp)
}

func dbRejected(t *testing.T, res syncer.Result) int64 { return res.Counts.Rejected }

func TestEndToEnd(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		scenario(t, db, emulator.Options{}, 120)
	})
}

func TestEndToEndWithFaults(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		scenario(t, db, emulator.Options{FailRate: 0.1, MaxConns: 10, Seed: 7}, 120)
	})
}
