package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/source"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/postgres"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/store/sqlite"
)

// TestServeKilledMidPull: a `segsync serve` pulling a source is killed with
// SIGKILL half-way; no profile changed and nothing was deleted; two
// processes (PostgreSQL) never pull the source at once; the process that
// takes over completes the pull.
func TestServeKilledMidPull(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		db, err := sqlite.Open(context.Background(), dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		testServeKilledMidPull(t, db, newServer(t, dir, ""), nil)
	})
	t.Run("postgres", func(t *testing.T) {
		url := dbtest.PostgresURL(t)
		db, err := postgres.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		testServeKilledMidPull(t, db, newServer(t, t.TempDir(), url), newServer(t, t.TempDir(), url))
	})
}

func testServeKilledMidPull(t *testing.T, db *sqldb.DB, srv, other *server) {
	ctx := context.Background()
	const rows = 6000
	var version, hang atomic.Int32 // the file's x value; hang: stop after 3000 rows
	version.Store(1)
	var served atomic.Int64
	file := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		fmt.Fprintln(w, "id,x")
		v := version.Load()
		for i := range rows {
			if hang.Load() == 1 && i == rows/2 {
				w.(http.Flusher).Flush()
				<-r.Context().Done() // the pulling process dies meanwhile
				return
			}
			fmt.Fprintf(w, "c%05d,%d\n", i, v)
			served.Add(1)
		}
	}))
	defer file.Close()
	vault, err := connection.NewVault(mustHex(vaultKey))
	if err != nil {
		t.Fatal(err)
	}
	svc := source.NewService(db, vault, nil, nil)
	src, err := svc.Create(ctx, audit.System, source.Input{Name: "crm", Kind: "http", Key: "id", URL: file.URL + "/crm.csv"})
	if err != nil {
		t.Fatal(err)
	}
	waitPull := func(id int64) store.Pull {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			p, err := db.GetPull(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if p.FinishedAt != nil {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("pull %d did not end: %+v\n%s", id, p, srv.log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	srv.start()
	p, err := svc.Pull(ctx, audit.System, src.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if p = waitPull(p.ID); p.Status != store.RunSucceeded || p.Counts.New != rows {
		t.Fatalf("first pull: %+v", p)
	}

	// The second version hangs half-way; the process is killed while its
	// rows are staged.
	version.Store(2)
	hang.Store(1)
	served.Store(0)
	p, err = svc.Pull(ctx, audit.System, src.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for staged(t, db, p.ID) < rows/4 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing was staged: served %d\n%s", served.Load(), srv.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.kill()
	expectX(t, db, rows, 1) // nothing applied, nothing deleted
	if other != nil {
		// A second process on the same database: while the first holds
		// the lease it does not start the pull a second time.
		other.start()
		defer other.kill()
	}
	hang.Store(0)
	if other == nil {
		srv.start()
	}
	if p = waitPull(p.ID); p.Status != store.RunSucceeded || p.Attempts < 2 || p.Counts.Updated != rows {
		t.Fatalf("resumed pull: %+v", p)
	}
	expectX(t, db, rows, 2)
	if ps, err := db.ListPulls(ctx, src.ID, 10); err != nil || len(ps) != 2 {
		t.Errorf("pulls of the source: %d (%v), want 2: the killed one resumed, no second one started", len(ps), err)
	}
	if n := staged(t, db, p.ID); n != 0 {
		t.Errorf("%d rows left staged", n)
	}
}

func staged(t *testing.T, db *sqldb.DB, pullID int64) int {
	var n int
	if err := db.W.QueryRowContext(context.Background(), db.Q(`SELECT COUNT(*) FROM pull_stage WHERE pull_id = ?`), pullID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// expectX checks that all n profiles exist and hold x = want.
func expectX(t *testing.T, db *sqldb.DB, n int, want float64) {
	t.Helper()
	seen, cursor := 0, ""
	for {
		page, err := db.ListProfiles(context.Background(), 1000, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Profiles {
			var a map[string]float64
			if err := json.Unmarshal(p.Attrs, &a); err != nil || a["x"] != want {
				t.Fatalf("profile %s = %s, want x=%v", p.CustomerID, p.Attrs, want)
			}
			seen++
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if seen != n {
		t.Fatalf("%d profiles, want %d", seen, n)
	}
}
