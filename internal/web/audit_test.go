package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestAuditPageByKind changes who is sent through the pages (an upload, a
// segment created and edited) and reads the audit log filtered by kind:
// rules in words, before and after, the upload's counts, never an address.
func TestAuditPageByKind(t *testing.T) {
	base := startServe(t)
	admin := signInHTTP(t, base, adminEmail, adminPassword)

	if status, page := admin.upload(t, base+"/profiles/import", nil, "people.csv", "customer_id,email,country\nc1,ann@shop.io,NL\nc2,bob@shop.io,BE\n"); status != http.StatusOK {
		t.Fatalf("upload: %d\n%s", status, page)
	}
	rule := func(value string) url.Values {
		return url.Values{"name": {"Dutch"}, "editor": {"builder"}, "match": {"all"}, "g0.match": {"all"},
			"g0.c0.attr": {"country"}, "g0.c0.op": {"eq"}, "g0.c0.value": {value}}
	}
	if status, body := admin.post(t, base+"/segments/new", rule("NL")); status != http.StatusSeeOther {
		t.Fatalf("creating a segment: %d\n%s", status, body)
	}
	id := regexp.MustCompile(`href="/segments/(\d+)"`).FindStringSubmatch(admin.get(t, base+"/segments"))
	if id == nil {
		t.Fatal("the segment is not listed")
	}
	if status, body := admin.post(t, base+"/segments/"+id[1]+"/edit", rule("BE")); status != http.StatusSeeOther {
		t.Fatalf("editing the segment: %d\n%s", status, body)
	}

	page := admin.get(t, base+"/audit?kind=segment")
	for _, want := range []string{"Segment created", "Segment changed", "Old rule: country is NL", "Rule: country is BE",
		`value="segment" checked`} {
		if !strings.Contains(page, want) {
			t.Errorf("kind=segment: no %q", want)
		}
	}
	if strings.Contains(page, "Profile imported") || strings.Contains(page, `value="profile" checked`) {
		t.Error("kind=segment shows profile events")
	}
	page = admin.get(t, base+"/audit?kind=profile")
	if !strings.Contains(page, "Profile imported") || !strings.Contains(page, "Via: ui") || !strings.Contains(page, "Imported: 2") ||
		strings.Contains(page, "Segment created") {
		t.Errorf("kind=profile:\n%s", page)
	}
	page = admin.get(t, base+"/audit?kind=profile&kind=segment")
	if !strings.Contains(page, "Profile imported") || !strings.Contains(page, "Segment changed") || strings.Contains(page, "User created") {
		t.Errorf("kind=profile&kind=segment:\n%s", page)
	}
	if strings.Contains(admin.get(t, base+"/audit"), "ann@shop.io") {
		t.Error("an address reached the audit log")
	}
	resp, err := admin.c.Get(base + "/audit?kind=segmnt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an unknown kind: %d, want 400", resp.StatusCode)
	}
}
