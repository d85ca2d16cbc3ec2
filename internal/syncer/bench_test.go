package syncer_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/mailchimp/emulator/emulatortest"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/syncer"
)

// BenchmarkRun measures a first run (everything new), a second run
// (nothing changed) and a run after 1% of the profiles changed, of 20,000
// contacts (SEGSYNC_BENCH_PROFILES profiles) in two segments on SQLite
// against the in-process emulator.
func BenchmarkRun(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("SEGSYNC_BENCH_PROFILES")); err == nil && v > 0 {
		n = v
	}
	for _, phase := range []string{"first", "unchanged", "changed1pct"} {
		b.Run(phase, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				db := dbtest.SQLite(b)
				srv := emulatortest.Start(b, emulator.Options{})
				w := &world{db: db, srv: srv, people: map[string]person{}}
				w.list, _ = srv.CreateList(srv.Key(), "Bench")
				for _, f := range []string{"FNAME", "LNAME", "CITY"} {
					_ = srv.AddMergeField(w.list, f, f, "text")
				}
				w.mc = newClient(b, srv)
				ps := make([]store.ProfilePatch, 0, n)
				var changed []store.ProfilePatch // 1%: a new first name, every tenth also leaves Big
				for j := 0; j < n; j++ {
					p := person{id: fmt.Sprintf("c%06d", j), email: fmt.Sprintf("person%d@shop.io", j), first: "First", last: "Last",
						city: cities(j), tier: []string{"gold", "silver"}[j%2], spend: j % 1000}
					ps = append(ps, store.ProfilePatch{CustomerID: p.id, Attrs: p.attrs()})
					if j%100 == 7 {
						p.first = "Changed"
						if j%1000 == 307 {
							p.spend = 1
						}
						changed = append(changed, store.ProfilePatch{CustomerID: p.id, Attrs: p.attrs()})
					}
				}
				if _, err := db.UpsertProfiles(context.Background(), ps); err != nil {
					b.Fatal(err)
				}
				gold := mustSegment(b, db, "Gold", `{"attribute":"tier","op":"eq","value":"gold"}`)
				big := mustSegment(b, db, "Big", `{"attribute":"spend","op":"gte","value":300}`)
				conn := int64(1)
				exp := store.Export{Name: "b", ConnectionID: &conn, AudienceID: w.list, SegmentIDs: []int64{gold, big},
					Mapping:     store.Mapping{Email: "email", FirstName: "first", LastName: "last", Attributes: []store.AttributeMap{{Attribute: "city", MergeTag: "CITY"}}},
					StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
				if err := db.CreateExport(context.Background(), &exp); err != nil {
					b.Fatal(err)
				}
				e := &syncer.Engine{Store: db, Source: db}
				run := func() syncer.Result {
					r, _, _ := db.EnqueueRun(context.Background(), exp.ID, store.TriggerManual, false, "")
					res, err := e.Execute(context.Background(), exp, w.mc, syncer.Options{RunID: r.ID})
					if err != nil {
						b.Fatal(err)
					}
					return res
				}
				if phase != "first" {
					run()
				}
				if phase == "changed1pct" {
					if _, err := db.UpsertProfiles(context.Background(), changed); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				var res syncer.Result
				// Labelled for a CPU profile: pprof -tagfocus=run=measured.
				pprof.Do(context.Background(), pprof.Labels("run", "measured"), func(context.Context) { res = run() })
				b.StopTimer()
				if phase == "first" && res.Counts.Created == 0 || phase == "unchanged" && res.Counts.WriteCalls != 0 ||
					phase == "changed1pct" && res.Counts.Updated == 0 {
					b.Fatalf("%s run: %+v", phase, res.Counts)
				}
				b.ReportMetric(float64(res.Counts.Contacts), "contacts/op")
			}
		})
	}
}
