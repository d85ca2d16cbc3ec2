package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserSources adds an http source (served by the test, behind an
// Authorization header) through Data › Sources: Test shows the columns and
// rows before saving, Save, Pull now, the profile page names the source of
// each attribute, and Refresh now shows the refresh's pulls then its runs.
// With SEGSYNC_SCREENSHOTS=1 it refreshes docs/screenshots/14-sources*.png.
func TestBrowserSources(t *testing.T) {
	exe := findChromium(t)
	file := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer loyalty-Secret-7" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/csv")
		fmt.Fprint(w, "customer_id,points,tier\nc1,120,gold\nc2,5,bronze\nc3,44,silver\n")
	}))
	defer file.Close()
	base := startServe(t)
	ctx := browser(t, exe)
	shots := shooter{t: t, dir: t.TempDir()}

	run(t, ctx, "sign in", chromedp.Navigate(base+"/sources"), signIn(adminEmail, adminPassword))
	run(t, ctx, "new source form", chromedp.Navigate(base+"/sources/new"), chromedp.WaitVisible(css("#name")))
	for _, step := range []struct {
		name string
		a    chromedp.Action[chromedp.Void]
	}{
		{"name", chromedp.SendKeys(css("#name"), "Loyalty")},
		{"kind", chromedp.Click(css(`input[name=kind][value=http]`))},
		{"url", chromedp.SendKeys(css("#url"), file.URL+"/loyalty.csv")},
		{"headers", chromedp.SendKeys(css("#headers"), "Authorization: Bearer loyalty-Secret-7")},
		{"key", chromedp.SendKeys(css("#key"), "customer_id")},
		{"advanced", chromedp.Click(css("details.advanced summary"))},
		{"rename", chromedp.SendKeys(css("#rename"), "points=loyalty_points")},
		{"test", chromedp.Click(css(`button[name=action][value=test]`))},
	} {
		run(t, ctx, "source form: "+step.name, step.a)
	}
	run(t, ctx, "test result", chromedp.WaitVisible(css("#sample-h")), shots.shot("14-sources-test"))
	checkA11y(t, ctx, "source test")
	if h := text(t, ctx, "#sample-h"); !strings.Contains(h, "3 columns, 3 sample rows") {
		t.Errorf("the test says %q", h)
	}
	page := html(t, ctx, "main")
	for _, want := range []string{"gold", "silver", "number"} {
		if !strings.Contains(page, want) {
			t.Errorf("the test result lacks %q", want)
		}
	}
	if strings.Contains(page, "loyalty-Secret-7") {
		t.Error("the tested form shows the secret header value")
	}
	// The secret is not kept in the page, so it is typed again before saving.
	run(t, ctx, "save",
		chromedp.SendKeys(css("#headers"), "Authorization: Bearer loyalty-Secret-7"),
		chromedp.Click(css(`button[name=action][value=save]`)),
		chromedp.WaitVisible(css(".flash-ok")),
		chromedp.Click(css(`form[action$="/pull"] button`)),
		chromedp.WaitVisible(css(".flash-ok")),
	)
	loc := get(t, ctx, "location", chromedp.Location())
	// The page reloads itself when the pull ends, so a read may find the
	// old document gone: such a read is simply tried again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, err := chromedp.Run(ctx, chromedp.OuterHTML(css("main")))
		if err == nil && strings.Contains(page, "badge succeeded") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pull did not succeed (%v):\n%s", err, page)
		}
		time.Sleep(200 * time.Millisecond)
		_, _ = chromedp.Run(ctx, chromedp.Steps(chromedp.Navigate(loc), chromedp.WaitVisible(css("#pulls-h"))))
	}
	run(t, ctx, "sources list", chromedp.Navigate(base+"/sources"), chromedp.WaitVisible(css("table")), shots.shot("14-sources"))
	checkA11y(t, ctx, "sources")
	if list := text(t, ctx, "table"); !strings.Contains(list, "Loyalty") || !strings.Contains(list, "Succeeded") {
		t.Errorf("the sources list:\n%s", list)
	}

	run(t, ctx, "profile", chromedp.Navigate(base+"/profiles/c1"), chromedp.WaitVisible(css("#attrs-h")))
	if attrs := text(t, ctx, "table"); !strings.Contains(attrs, "loyalty_points") || !strings.Contains(attrs, "Loyalty") {
		t.Errorf("the profile page does not name the source:\n%s", attrs)
	}

	run(t, ctx, "refresh now",
		chromedp.Navigate(base+"/sources"),
		chromedp.WaitVisible(css(`form[action="/refresh"] button`)),
		chromedp.Click(css(`form[action="/refresh"] button`)),
		chromedp.WaitVisible(css("#rp-h")),
	)
	if h := text(t, ctx, "main h1"); !strings.HasPrefix(h, "Refresh #") {
		t.Errorf("after Refresh now the page is %q", h)
	}
	if pulls := html(t, ctx, "main"); !strings.Contains(pulls, "Loyalty") {
		t.Errorf("the refresh page does not list the Loyalty pull:\n%s", pulls)
	}
}
