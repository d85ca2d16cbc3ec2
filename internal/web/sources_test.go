package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSourcesPages adds an http source through the form (Test first, then
// save), pulls it, sees where a profile's attributes came from, and starts
// a refresh.
func TestSourcesPages(t *testing.T) {
	file := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer loyalty-Secret-7" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/csv")
		fmt.Fprint(w, "customer_id,points,tier\nc1,120,gold\nc2,5,bronze\n")
	}))
	defer file.Close()
	base := startServe(t)
	admin := signInHTTP(t, base, adminEmail, adminPassword)
	form := url.Values{"name": {"Loyalty"}, "kind": {"http"}, "url": {file.URL + "/l.csv"}, "headers": {"Authorization: Bearer loyalty-Secret-7"},
		"key": {"customer_id"}, "mode": {"full"}, "schedule": {"refresh"}, "priority": {"10"}, "min_ratio": {"0.5"}}

	// A missing key is shown at the field.
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("key", "")
	bad.Set("action", "save")
	if status, body := admin.post(t, base+"/sources/new", bad); status != http.StatusBadRequest || !invalid(body, "key") {
		t.Errorf("a source without a key: %d", status)
	}
	// Test shows the columns, their types and the rows, before saving.
	form.Set("action", "test")
	status, body := admin.post(t, base+"/sources/new", form)
	if status != http.StatusOK || !strings.Contains(body, "3 columns, 2 sample rows") || !strings.Contains(body, "gold") || !strings.Contains(body, "number") {
		t.Fatalf("test: %d\n%s", status, body)
	}
	if strings.Contains(body, "loyalty-Secret-7") {
		t.Error("the tested form shows the secret header")
	}
	form.Set("action", "save")
	status, _ = admin.post(t, base+"/sources/new", form)
	if status != http.StatusSeeOther {
		t.Fatalf("saving: %d", status)
	}
	page := admin.get(t, base+"/sources")
	m := regexp.MustCompile(`href="/sources/(\d+)">Loyalty`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the list has no Loyalty source:\n%s", page)
	}
	id := m[1]
	if status, _ := admin.post(t, base+"/sources/"+id+"/pull", url.Values{}); status != http.StatusSeeOther {
		t.Fatalf("pull: %d", status)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(page, `badge succeeded`) {
		if time.Now().After(deadline) {
			t.Fatalf("the pull did not succeed:\n%s", page)
		}
		time.Sleep(100 * time.Millisecond)
		page = admin.get(t, base+"/sources/"+id)
	}
	if strings.Contains(page, "loyalty-Secret-7") {
		t.Error("the source page shows the secret header")
	}
	if got := admin.get(t, base+"/api/v1/profiles/c1"); !strings.Contains(got, `"sources":{"points":"Loyalty","tier":"Loyalty"}`) {
		t.Errorf("profile c1: %s", got)
	}
	// The profile page names the source of each attribute.
	if got := admin.get(t, base+"/profiles/c1"); !regexp.MustCompile(`<code>tier</code></td><td>gold</td><td class="muted">Loyalty</td>`).MatchString(got) {
		t.Errorf("the profile page does not say tier came from Loyalty:\n%s", got)
	}
	status, _ = admin.post(t, base+"/refresh", url.Values{})
	if status != http.StatusSeeOther {
		t.Fatalf("refresh: %d", status)
	}
	if got := admin.get(t, base+"/refreshes/1"); !strings.Contains(got, "Refresh #1") || !strings.Contains(got, "Loyalty") {
		t.Errorf("refresh page:\n%s", got)
	}
}
