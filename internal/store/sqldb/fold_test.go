package sqldb_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/store/storetest"
)

// TestFoldShadowBackfill runs the backfill of migration 0015 over profiles
// whose shadows are gone, as profiles stored before it were: it must write
// the shadow the store writes (attrjson.FoldShadow), on both databases.
func TestFoldShadowBackfill(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.UpsertProfiles(ctx, []store.ProfilePatch{
			{CustomerID: "a", Attrs: `{"city":"Zürich","n":"ÉMILE","k":7,"v":true,"d":"2024-01-02"}`},
			{CustomerID: "b", Attrs: `{"n":"Emile","q":"say \"Ö\"\n"}`},
			{CustomerID: "c", Attrs: `{"n":"Emile","k":1.5}`},
			{CustomerID: "d", Attrs: `{"n":"ΣΊΣΥΦΟΣ","s":"Kaſſel","i":"İstanbul"}`},
		}); err != nil {
			t.Fatal(err)
		}
		storetest.CheckFoldShadows(t, db)
		body, err := os.ReadFile("../" + db.Dialect() + "/migrations/0015_fold_shadow.sql")
		if err != nil {
			t.Fatal(err)
		}
		i := strings.Index(string(body), "UPDATE profiles")
		if i < 0 {
			t.Fatal("migration 0015 has no UPDATE of profiles")
		}
		if _, err := db.W.ExecContext(ctx, `UPDATE profiles SET attrs_fold = NULL`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.W.ExecContext(ctx, string(body[i:])); err != nil {
			t.Fatalf("backfill: %v", err)
		}
		storetest.CheckFoldShadows(t, db)
	})
}
