package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/erasure"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// TestErasureAPI: erase=true is for admins only, a bad value names the
// field, an erasure answers 202 with its audiences and can be read back.
func TestErasureAPI(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, dbtest.SQLite(t))
	_, admin := e.user("admin@example.org", auth.Admin)
	_, contrib := e.user("contrib@example.org", auth.Contributor)
	if _, err := e.db.UpsertProfiles(context.Background(), []store.ProfilePatch{{CustomerID: "c1", Attrs: `{"email":"ann@shop.io"}`}}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(New(Deps{Store: e.db, Auth: e.users, Erasures: &erasure.Service{Store: e.db}}).Handler())
	t.Cleanup(ts.Close)
	do := func(method, path, token string) (int, string) {
		req, _ := http.NewRequest(method, ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := do("DELETE", "/api/v1/profiles/c1?erase=yes", admin); st != 400 || !strings.Contains(body, `"erase"`) {
		t.Errorf("bad erase: %d %s", st, body)
	}
	if st, body := do("DELETE", "/api/v1/profiles/c1?erase=true", contrib); st != 403 {
		t.Errorf("contributor erasing: %d %s", st, body)
	}
	if st, body := do("DELETE", "/api/v1/profiles/nobody?erase=true", admin); st != 404 {
		t.Errorf("erasing nobody: %d %s", st, body)
	}
	st, body := do("DELETE", "/api/v1/profiles/c1?erase=true", admin)
	if st != 202 {
		t.Fatalf("erasing: %d %s", st, body)
	}
	var er struct {
		ID        int64  `json:"id"`
		Status    string `json:"status"`
		Audiences []any  `json:"audiences"`
	}
	if err := json.Unmarshal([]byte(body), &er); err != nil || er.ID == 0 || er.Status != "pending" || er.Audiences == nil {
		t.Fatalf("erasure answer %s (%v)", body, err)
	}
	if st, body := do("GET", fmt.Sprintf("/api/v1/erasures/%d", er.ID), contrib); st != 403 {
		t.Errorf("contributor reading the erasure: %d %s", st, body)
	}
	if st, body := do("GET", fmt.Sprintf("/api/v1/erasures/%d", er.ID), admin); st != 200 || strings.Contains(body, "ann@") {
		t.Errorf("reading the erasure: %d %s", st, body)
	}
	if st, _ := do("GET", "/api/v1/profiles/c1", admin); st != 404 {
		t.Errorf("profile after the erasure: %d", st)
	}
}
