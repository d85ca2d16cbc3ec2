package web_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/mailchimp/emulator/emulatortest"
)

// api calls the REST API with the session cookie and CSRF header, as the
// pages' scripts do.
func (s *session) api(t *testing.T, method, url, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-CSRF-Token", s.csrf)
	resp, err := s.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBrowserLiveProgressAndCancel watches a slow run live and cancels it
// from its page.
func TestBrowserLiveProgressAndCancel(t *testing.T) {
	exe := findChromium(t)
	// Every member of a batch costs Mailchimp 5ms: a batch of 500 takes
	// 2.5s, and with one connection to Mailchimp the batches go one by one,
	// far slower than it takes to press Cancel.
	mc := emulatortest.Start(t, emulator.Options{LatencyPerMember: 5 * time.Millisecond})
	listID, err := mc.CreateList(mc.Key(), "Newsletter")
	if err != nil {
		t.Fatal(err)
	}
	base := startServe(t, "--max-conns", "1")
	admin := signInHTTP(t, base, adminEmail, adminPassword)
	var csv strings.Builder
	csv.WriteString("customer_id,email,orders\n")
	for i := range 2000 {
		fmt.Fprintf(&csv, "c%d,person%d@shop.io,%d\n", i, i, i%7)
	}
	for _, call := range []struct{ method, path, ct, body string }{
		{"POST", "/api/v1/connections", "application/json", `{"display_name":"Main","type":"mailchimp","api_key":"` + mc.Key() + `","api_base_url":"` + mc.URL + `","privacy_consent":true}`},
		{"POST", "/api/v1/profiles/import", "text/csv", csv.String()},
		{"POST", "/api/v1/segments", "application/json", `{"name":"Everyone","rule":{"attribute":"orders","op":"gte","value":0}}`},
		{"POST", "/api/v1/exports", "application/json", `{"name":"Everyone to the newsletter","connection_id":1,"audience_id":"` + listID + `","segment_ids":[1],"mapping":{"email":"email"},"schedule":"off"}`},
	} {
		if status, body := admin.api(t, call.method, base+call.path, call.ct, call.body); status >= 300 {
			t.Fatalf("%s %s: %d %s", call.method, call.path, status, body)
		}
	}

	ctx := browser(t, exe)
	shots := shooter{t: t, dir: t.TempDir()}
	run(t, ctx, "start the run",
		chromedp.Navigate(base+"/login?next=/exports/1"),
		signIn(adminEmail, adminPassword),
		chromedp.Click(css(`form[action$="/run"] button.primary`)),
		// The page's script follows the run: the status turns Running, the
		// planned total appears and the counts grow, without a reload.
		waitFor(`document.querySelector("[data-run-status]")?.textContent.trim() === "Running" &&
			/ of 2,000 contacts/.test(document.querySelector("[data-progress-text]")?.textContent) &&
			document.querySelector('[data-count-key="created"]')?.textContent !== "0"`, time.Minute),
		shots.shot("08-run-live"),
		chromedp.Click(css(`form[action$="/cancel"] button`)),
		waitRunDone,
	)
	if st := text(t, ctx, "[data-run-status]"); st != "Cancelled" {
		t.Fatalf("after Cancel the run is %q", st)
	}
	// The finished run says where its time went: it was sending.
	run(t, ctx, "reload the finished run", chromedp.Reload(), chromedp.WaitVisible(css(`[data-timing-key="send_ms"]`)))
	if took := text(t, ctx, `[data-timing-key="send_ms"]`); took == "" || took == "0 ms" {
		t.Fatalf("the cancelled run spent %q sending", took)
	}
}
