package web_test

import (
	"net/url"
	"strings"
	"testing"
)

// TestProfilePageAndErasure: a profile's page lists its attributes; the
// erasure button needs the customer id typed again, then erases.
func TestProfilePageAndErasure(t *testing.T) {
	base := startServe(t)
	admin := signInHTTP(t, base, adminEmail, adminPassword)
	if st, body := admin.api(t, "POST", base+"/api/v1/profiles/import", "text/csv", "customer_id,email,city\nc1,ann@shop.io,Oslo\n"); st != 200 {
		t.Fatalf("import: %d %s", st, body)
	}
	page := admin.get(t, base+"/profiles/c1")
	if !strings.Contains(page, "Oslo") || !strings.Contains(page, "Erase permanently") {
		t.Fatalf("profile page: %s", page)
	}
	// Without the confirmation nothing happens.
	if st, _ := admin.post(t, base+"/profiles/c1/erase", url.Values{"confirm": {"c2"}}); st != 200 && st != 303 {
		t.Errorf("unconfirmed erasure: %d", st)
	}
	if page := admin.get(t, base+"/profiles/c1"); !strings.Contains(page, "Oslo") {
		t.Fatalf("erased without confirmation")
	}
	if st, body := admin.post(t, base+"/profiles/c1/erase", url.Values{"confirm": {"c1"}}); st != 303 {
		t.Errorf("erasure: %d %s", st, body)
	}
	if page := admin.get(t, base+"/profiles"); !strings.Contains(page, "Erasure 1 requested") {
		t.Errorf("no notice of the erasure")
	}
	if st, _ := admin.api(t, "GET", base+"/api/v1/profiles/c1", "", ""); st != 404 {
		t.Errorf("profile after the erasure: %d", st)
	}
}
