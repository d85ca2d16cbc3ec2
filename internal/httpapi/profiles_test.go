package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// seedProfiles serves the API over a fresh SQLite store holding the given
// profiles (customer id → canonical attribute JSON).
func seedProfiles(t *testing.T, profiles map[string]string) *httptest.Server {
	t.Helper()
	return seedProfilesIn(t, dbtest.SQLite(t), profiles)
}

// seedProfilesIn is seedProfiles on a given store.
func seedProfilesIn(t *testing.T, db store.Store, profiles map[string]string) *httptest.Server {
	t.Helper()
	var patches []store.ProfilePatch
	for id, attrs := range profiles {
		patches = append(patches, store.ProfilePatch{CustomerID: id, Attrs: attrs})
	}
	if _, err := db.UpsertProfiles(context.Background(), patches); err != nil {
		t.Fatalf("seeding profiles: %v", err)
	}
	ts := httptest.NewServer(New(Deps{Store: db, Loopback: true}).Handler())
	t.Cleanup(ts.Close)
	return ts
}

func TestProfileRoutes(t *testing.T) {
	t.Parallel()
	ts := seedProfiles(t, map[string]string{
		"c1": `{"age":31,"email":"ann@example.org"}`,
		"c2": `{"email":"bob@example.org","vip":true}`,
		"c3": `{"email":"cy@example.org"}`,
	})

	// Pages of two follow the cursor to the end.
	var ids []string
	cursor := ""
	for range 5 {
		status, _, body := do(t, ts, "GET", "/api/v1/profiles?limit=2&cursor="+cursor, "", nil)
		if status != 200 {
			t.Fatalf("list = %d %s", status, body)
		}
		var page struct {
			Profiles []struct {
				CustomerID string `json:"customer_id"`
			} `json:"profiles"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Profiles {
			ids = append(ids, p.CustomerID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if got, want := len(ids), 3; got != want || ids[0] != "c1" || ids[2] != "c3" {
		t.Fatalf("listed %v, want c1 c2 c3", ids)
	}

	status, _, body := do(t, ts, "GET", "/api/v1/profiles/c2", "", nil)
	var p struct {
		CustomerID string         `json:"customer_id"`
		Attributes map[string]any `json:"attributes"`
	}
	if err := json.Unmarshal(body, &p); err != nil || status != 200 || p.CustomerID != "c2" || p.Attributes["vip"] != true {
		t.Fatalf("get c2 = %d %s", status, body)
	}

	status, _, body = do(t, ts, "GET", "/api/v1/profiles/attributes", "", nil)
	var cat struct {
		Attributes []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Count int64  `json:"count"`
		} `json:"attributes"`
	}
	if err := json.Unmarshal(body, &cat); err != nil || status != 200 {
		t.Fatalf("attributes = %d %s", status, body)
	}
	counts := map[string]int64{}
	for _, a := range cat.Attributes {
		counts[a.Name+":"+a.Type] = a.Count
	}
	if counts["email:string"] != 3 || counts["age:number"] != 1 || counts["vip:boolean"] != 1 {
		t.Fatalf("catalogue %s", body)
	}

	if status, _, body := do(t, ts, "DELETE", "/api/v1/profiles/c2", "", nil); status != http.StatusNoContent {
		t.Fatalf("delete = %d %s", status, body)
	}
	status, ct, body := do(t, ts, "GET", "/api/v1/profiles/c2", "", nil)
	decodeProblem(t, http.StatusNotFound, ct, body)
	status, ct, body = do(t, ts, "DELETE", "/api/v1/profiles/c2", "", nil)
	decodeProblem(t, http.StatusNotFound, ct, body)

	tests := []struct {
		path, field string
	}{
		{"/api/v1/profiles?limit=0", "limit"},
		{"/api/v1/profiles?limit=1001", "limit"},
		{"/api/v1/profiles?limit=x", "limit"},
	}
	for _, tt := range tests {
		status, ct, body := do(t, ts, "GET", tt.path, "", nil)
		p := decodeProblem(t, http.StatusBadRequest, ct, body)
		if len(p.Errors) != 1 || p.Errors[0].Field != tt.field {
			t.Errorf("GET %s = %d %s, want a fault of %s", tt.path, status, body, tt.field)
		}
	}
	status, ct, body = do(t, ts, "GET", "/api/v1/profiles?cursor=not*a*cursor", "", nil)
	if p := decodeProblem(t, http.StatusBadRequest, ct, body); len(p.Errors) != 1 || p.Errors[0].Field != "cursor" {
		t.Errorf("bad cursor = %d %s, want a fault of cursor", status, body)
	}
}
