package source

import (
	"testing"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/store/storetest"
)

// TestPullsKeepFoldShadows merges accented and ASCII values from an upload
// and a pulled source and changes them by pulls and uploads: after every
// step each profile's folded shadow must be its merged attributes' and
// rules on accented text must see the merged values.
func TestPullsKeepFoldShadows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db)
		upload := func(patches ...store.ProfilePatch) {
			t.Helper()
			if _, err := db.UpsertProfiles(w.ctx, patches); err != nil {
				t.Fatal(err)
			}
		}
		check := func(step string, want map[string]int64) {
			t.Helper()
			storetest.CheckFoldShadows(t, db)
			for rule, n := range want {
				r, err := segment.Parse([]byte(rule), nil)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := db.CountMatching(w.ctx, r); err != nil || got != n {
					t.Errorf("%s: %s matches %d (%v), want %d", step, rule, got, err, n)
				}
			}
		}
		const (
			cityZurich = `{"attribute":"city","op":"eq","value":"ZÜRICH"}`
			nameEmile  = `{"attribute":"name","op":"eq","value":"émile"}`
			nameZoe    = `{"attribute":"name","op":"starts_with","value":"ZOË"}`
			cityNotK   = `{"attribute":"city","op":"not_in","value":["köln","x"]}`
		)
		upload(store.ProfilePatch{CustomerID: "c1", Attrs: `{"name":"Émile"}`})
		crm := newFileServer(t, "id,city,name\nc1,Zürich,Ann\nc2,Köln,Zoë\n")
		src := w.create(httpSource("crm", crm.URL+"/people.csv", 5))
		if p := w.pull(src.ID, false); p.Status != store.RunSucceeded {
			t.Fatalf("pull: %+v", p)
		}
		// c1: the uploaded name wins over the pulled one, the city is pulled.
		check("merged", map[string]int64{cityZurich: 1, nameEmile: 1, nameZoe: 1, cityNotK: 1})
		crm.set("id,city,name\nc1,Zurich,Ann\nc2,Koln,Zoë\n")
		w.pull(src.ID, false)
		check("pulled ASCII cities", map[string]int64{cityZurich: 0, nameEmile: 1, nameZoe: 1, cityNotK: 2})
		upload(store.ProfilePatch{CustomerID: "c1", Attrs: `{"name":null}`}, store.ProfilePatch{CustomerID: "c2", Attrs: `{"name":"Zoe"}`})
		check("uploads changed", map[string]int64{nameEmile: 0, nameZoe: 0})
		crm.set("id,city,name\nc1,ZÜRICH,Émile\nc2,Köln,Zoë\n")
		w.pull(src.ID, false)
		check("pulled accented again", map[string]int64{cityZurich: 1, nameEmile: 1, nameZoe: 0, cityNotK: 1})
		if _, err := w.svc.Delete(w.ctx, audit.System, src.ID); err != nil {
			t.Fatal(err)
		}
		// The profiles keep their uploaded layers, without a city (missing
		// matches not_in).
		check("source deleted", map[string]int64{cityZurich: 0, nameEmile: 0, nameZoe: 0, cityNotK: 2})
	})
}
