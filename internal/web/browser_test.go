package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/segsync/segsync/internal/cli"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/mailchimp/emulator/emulatortest"
)

// The browser test drives the real `segsync serve` (SQLite, run workers)
// in headless Chromium against the in-process Mailchimp emulator: the whole
// workflow a marketer and an administrator go through, checked in the page
// and in the emulator's audience. With SEGSYNC_SCREENSHOTS=1 it refreshes
// docs/screenshots/.

const (
	adminEmail    = "admin@shop.test"
	adminPassword = "admin password 42"
	contribEmail  = "maria@shop.test"
	contribPass   = "contributor password 7"
)

// profilesCSV has loyal customers (orders ≥ 3), one address Mailchimp
// refuses as fake, one that is no address at all, and one broken row.
const profilesCSV = `customer_id,email,first_name,last_name,orders,country,signed_up
c1,ann@shop.io,Ann,Smith,5,NL,2023-04-01
c2,bob@shop.io,Bob,Jones,1,DE,2024-01-15
c3,cem@shop.io,Cem,Kaya,7,NL,2022-11-30
c4,dora@example.com,Dora,Fake,4,NL,2024-03-03
c5,not-an-email,Eve,Nobody,9,NL,2021-06-06
c6,fay@shop.io,Fay,Lee,3,BE,2024-02-20
c7,gus@shop.io,Gus,Ward,2,DE,2023-09-09,extra
c8,hal@shop.io,Hal,Berg,12,FR,2020-01-01
`

// findChromium returns the browser, or fails (CI) or skips (locally).
func findChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; CI must install it (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed; the browser test runs in CI")
	return ""
}

// syncBuffer collects the server's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs `segsync serve` on a free loopback port with a first admin
// and returns its base URL. extra are more flags.
func startServe(t *testing.T, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	env := map[string]string{"SEGSYNC_ADMIN_EMAIL": adminEmail, "SEGSYNC_ADMIN_PASSWORD": adminPassword}
	var log syncBuffer
	streams := cli.IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &log, Getenv: func(k string) string { return env[k] }}
	done := make(chan int, 1)
	go func() {
		args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, extra...)
		done <- cli.Run(ctx, args, streams)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited with %d", code)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
	})
	addrRE := regexp.MustCompile(`msg=listening addr=(http://127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := addrRE.FindStringSubmatch(log.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("serve exited with %d before listening:\n%s", code, log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not start listening:\n%s", log.String())
	return ""
}

// browser starts headless Chromium with a fresh profile.
func browser(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 860),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	// The browser lives as long as ctx; the steps get a deadline of their own.
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	return sctx
}

// shooter saves screenshots into a temporary directory, and into
// docs/screenshots when SEGSYNC_SCREENSHOTS=1.
type shooter struct {
	t   *testing.T
	dir string
}

func (s shooter) shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return fmt.Errorf("screenshot %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(s.dir, name+".png"), png, 0o644); err != nil {
			return err
		}
		if os.Getenv("SEGSYNC_SCREENSHOTS") == "1" {
			dst := filepath.Join("..", "..", "docs", "screenshots")
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, name+".png"), png, 0o644)
		}
		return nil
	})
}

type css = chromedp.CSS

// run runs the steps, failing the test with the page's state on an error.
func run(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		page, _ := chromedp.Run(ctx, chromedp.OuterHTML(css("main")))
		t.Fatalf("%s: %v\nat %s:\n%s", step, err, loc, page)
	}
}

// get runs one action that gives a value.
func get[T any](t *testing.T, ctx context.Context, step string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("%s: %v (at %s)", step, err, loc)
	}
	return v
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return strings.TrimSpace(get(t, ctx, "reading "+sel, chromedp.Text(css(sel))))
}

func html(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, "reading "+sel, chromedp.OuterHTML(css(sel)))
}

func signIn(email, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(css("#email")),
		chromedp.SendKeys(css("#email"), email),
		chromedp.SendKeys(css("#password"), password),
		chromedp.Click(css(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(css("nav.sidebar")),
	)
}

func TestBrowserWorkflow(t *testing.T) {
	exe := findChromium(t)
	mc := emulatortest.Start(t, emulator.Options{})
	listID, err := mc.CreateList(mc.Key(), "Newsletter")
	if err != nil {
		t.Fatal(err)
	}
	// "Authenticate with Mailchimp" needs the address Mailchimp sends the
	// browser back to, so this server listens on a port chosen up front.
	port := freePort(t)
	base := startServe(t, "--listen", "127.0.0.1:"+port, "--public-url", "http://127.0.0.1:"+port,
		"--mailchimp-client-id", "segsync-test", "--mailchimp-client-secret", "test-secret", "--mailchimp-login-url", mc.RootURL)
	ctx := browser(t, exe)
	shots := shooter{t: t, dir: t.TempDir()}

	// Sign in as the admin.
	run(t, ctx, "sign-in page", chromedp.Navigate(base+"/exports"), chromedp.WaitVisible(css("#email")), shots.shot("01-sign-in"))
	checkA11y(t, ctx, "sign in")
	run(t, ctx, "sign in", signIn(adminEmail, adminPassword))
	if h := text(t, ctx, "main h1"); h != "Exports" {
		t.Fatalf("after sign-in the page is %q, want Exports", h)
	}

	// Add a connection: saving without consent shows the error next to the box.
	run(t, ctx, "connection form",
		chromedp.Navigate(base+"/connections/new"),
		chromedp.WaitVisible(css("#display_name")),
		chromedp.SendKeys(css("#display_name"), "Newsletter account"),
		chromedp.Click(css(`input[name=share][value=contributors]`)),
		chromedp.SendKeys(css("#api_key"), mc.Key()),
		chromedp.Click(css("details.advanced summary")),
		chromedp.SendKeys(css("#api_base_url"), mc.URL),
		chromedp.Click(css(`button[name=method][value=api_key]`)),
		chromedp.WaitVisible(css("fieldset.consent .field-error")),
	)
	checkA11y(t, ctx, "connection form")
	if msg := text(t, ctx, "fieldset.consent .field-error"); !strings.Contains(msg, "I agree") {
		t.Errorf("consent error %q does not mention the box", msg)
	}
	run(t, ctx, "form after refusal", shots.shot("03-connection-consent-required"))
	if strings.Contains(html(t, ctx, "main"), mc.Key()) {
		t.Error("the refused form shows the API key again")
	}
	run(t, ctx, "save connection",
		chromedp.Click(css("#privacy_consent")),
		chromedp.SendKeys(css("#api_key"), mc.Key()),
		chromedp.Click(css(`button[name=method][value=api_key]`)),
		chromedp.WaitVisible(css(".flash-ok")),
	)
	connURL := get(t, ctx, "connection page", chromedp.Location())
	if page := html(t, ctx, "main"); !strings.Contains(page, "Agreed by "+adminEmail) || strings.Contains(page, mc.Key()) {
		t.Errorf("the connection page should show the consent and never the key:\n%s", page)
	}

	// Import profiles from a CSV file.
	csvPath := filepath.Join(t.TempDir(), "customers.csv")
	if err := os.WriteFile(csvPath, []byte(profilesCSV), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "import",
		chromedp.Navigate(base+"/profiles"),
		chromedp.WaitVisible(css("#file")),
		chromedp.SetUploadFiles(css("#file"), []string{csvPath}),
		chromedp.Click(css(`form[action="/profiles/import"] button[type=submit]`)),
		chromedp.WaitVisible(css("section.report")),
		shots.shot("04-profiles-import"),
	)
	checkA11y(t, ctx, "profiles")
	report := text(t, ctx, "section.report")
	for _, want := range []string{"8\nrows read", "7\nnew", "1\nrejected", "customers.csv"} {
		if !strings.Contains(report, want) {
			t.Errorf("import report lacks %q:\n%s", want, report)
		}
	}

	// Build a segment; the live count follows the rule.
	run(t, ctx, "segment builder",
		chromedp.Navigate(base+"/segments/new"),
		chromedp.WaitVisible(css("#name")),
		chromedp.SendKeys(css("#name"), "Loyal customers"),
		chromedp.SendKeys(css("#description"), "Three orders or more"),
		chromedp.SetValue(css(`select[name="g0.c0.attr"]`), "orders"),
		chromedp.SetValue(css(`select[name="g0.c0.op"]`), "gte"),
		chromedp.SendKeys(css(`input[name="g0.c0.value"]`), "3"),
		chromedp.Poll[chromedp.Void](`document.querySelector("[data-count]").textContent === "6"`, chromedp.WithPollingTimeout(time.Minute)),
		shots.shot("05-segment-builder"),
	)
	checkA11y(t, ctx, "segment builder")
	run(t, ctx, "save segment",
		chromedp.Click(css(`button[name=do][value=save].primary`)),
		chromedp.WaitVisible(css(".flash-ok")),
	)
	if got := text(t, ctx, ".stat-n"); got != "6" {
		t.Errorf("segment page shows %q members, want 6", got)
	}

	// Create an export; the only connection is chosen and its audiences listed.
	run(t, ctx, "export form",
		chromedp.Navigate(base+"/exports/new"),
		chromedp.WaitVisible(css("#name")),
		chromedp.SendKeys(css("#name"), "Newsletter – loyal customers"),
		chromedp.WaitVisible(css(`select#audience_id`)),
		chromedp.SetValue(css(`select#audience_id`), listID),
		chromedp.SetValue(css(`select[name="mapping.first_name"]`), "first_name"),
		chromedp.SetValue(css(`select[name="mapping.last_name"]`), "last_name"),
		shots.shot("06-export-form"),
		// Saving without a segment is refused, next to the segments.
		chromedp.Click(css(`button[name=do][value=save].primary`)),
		chromedp.WaitVisible(css(`#seg-h ~ fieldset .field-error`)),
	)
	checkA11y(t, ctx, "export form")
	if msg := text(t, ctx, `#seg-h ~ fieldset .field-error`); !strings.Contains(msg, "segment") {
		t.Errorf("saving an export without segments says %q", msg)
	}
	run(t, ctx, "export form, completed",
		chromedp.Click(css(`input[name=segment_ids]`)),
		chromedp.Click(css(`button[name=do][value=save].primary`)),
		chromedp.WaitVisible(css(".flash-ok")),
	)

	// A dry run first: it shows what would change, and changes nothing.
	exportURL := get(t, ctx, "export page", chromedp.Location())
	run(t, ctx, "dry run",
		chromedp.Click(css(`form[action$="/run"] input[value=true] ~ button`)),
		chromedp.WaitVisible(css("[data-run-status]")),
		waitRunDone,
		chromedp.WaitVisible(css(".note")),
		shots.shot("07-dry-run"),
	)
	if page := html(t, ctx, "main"); !strings.Contains(page, "New contacts") || !strings.Contains(page, "ann@shop.io") {
		t.Errorf("the dry run shows no sample of new contacts:\n%s", page)
	}
	if cs, _ := mc.Contacts(listID); len(cs) != 0 {
		t.Fatalf("the dry run wrote %d contacts to Mailchimp", len(cs))
	}

	// Run it and watch it finish.
	run(t, ctx, "run now",
		chromedp.Navigate(exportURL),
		chromedp.WaitVisible(css(`form[action$="/run"] button.primary`)),
		chromedp.Click(css(`form[action$="/run"] button.primary`)),
		chromedp.WaitVisible(css("[data-run-status]")),
		waitRunDone,
		chromedp.WaitVisible(css("#rej-h")),
		shots.shot("08-run"),
	)
	if st := text(t, ctx, "[data-run-status]"); st != "Partially succeeded" {
		t.Fatalf("run ended %q, want Partially succeeded (one fake address)", st)
	}
	if page := html(t, ctx, "main"); !strings.Contains(page, "dora@example.com") {
		t.Errorf("the rejections table lacks the fake address:\n%s", page)
	}
	csvText := get(t, ctx, "rejections CSV", chromedp.Evaluate[string](
		`fetch(document.querySelector('a[href$="rejections.csv"]').href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if !strings.HasPrefix(csvText, "email,customer_id,reason") || !strings.Contains(csvText, "dora@example.com,c4,") {
		t.Errorf("rejections CSV:\n%s", csvText)
	}
	for _, email := range []string{"ann@shop.io", "cem@shop.io", "fay@shop.io", "hal@shop.io"} {
		c, err := mc.Contact(listID, email)
		if err != nil {
			t.Errorf("%s is not in the audience: %v", email, err)
			continue
		}
		if c.Status != "subscribed" || !slices.Contains(c.Tags, "Loyal customers") {
			t.Errorf("%s: status %s, tags %v; want subscribed with the segment's tag", email, c.Status, c.Tags)
		}
	}
	if _, err := mc.Contact(listID, "bob@shop.io"); err == nil {
		t.Error("bob (one order) was exported")
	}

	// The other main pages.
	run(t, ctx, "exports list", chromedp.Navigate(base+"/exports"), chromedp.WaitVisible(css("table")), shots.shot("02-exports"))
	checkA11y(t, ctx, "exports")
	if !strings.Contains(text(t, ctx, "table"), "Partially succeeded") {
		t.Error("the exports list does not show the last run")
	}
	run(t, ctx, "status", chromedp.Navigate(base+"/status"), chromedp.WaitVisible(css("table")), shots.shot("09-status"))
	checkA11y(t, ctx, "status")
	run(t, ctx, "segments", chromedp.Navigate(base+"/segments"), chromedp.WaitVisible(css("table")), shots.shot("10-segments"))
	run(t, ctx, "connections", chromedp.Navigate(base+"/connections"), chromedp.WaitVisible(css("table")), shots.shot("11-connections"))

	// Add a second connection through "Authenticate with Mailchimp", for
	// administrators only.
	run(t, ctx, "oauth connection",
		chromedp.Navigate(base+"/connections/new"),
		chromedp.WaitVisible(css("#display_name")),
		chromedp.SendKeys(css("#display_name"), "Marketing (signed in)"),
		chromedp.Click(css("#privacy_consent")),
		chromedp.Click(css(`button[name=method][value=oauth]`)),
		chromedp.WaitVisible(css(".flash-ok")),
	)
	if page := html(t, ctx, "main"); !strings.Contains(page, "Mailchimp sign-in") || !strings.Contains(page, "Marketing (signed in)") {
		t.Errorf("the connection made by signing in to Mailchimp:\n%s", page)
	}

	// Add a contributor, who sees no connection form and no credential.
	run(t, ctx, "add contributor",
		chromedp.Navigate(base+"/users"),
		chromedp.WaitVisible(css(`form[action="/users"] #email`)),
		chromedp.SendKeys(css(`form[action="/users"] #email`), contribEmail),
		chromedp.Click(css(`input[name=role][value=contributor]`)),
		chromedp.SendKeys(css(`form[action="/users"] #password`), contribPass),
		chromedp.Click(css(`form[action="/users"] button.primary`)),
		chromedp.WaitVisible(css(".flash-ok")),
		shots.shot("12-users"),
	)
	checkA11y(t, ctx, "users")
	run(t, ctx, "audit and sign out",
		chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(css("table")), shots.shot("13-audit"),
		chromedp.Click(css(`form[action="/logout"] button`)),
		signIn(contribEmail, contribPass),
	)
	for _, page := range []string{"/connections", connURL} {
		run(t, ctx, "contributor "+page, chromedp.Navigate(page2(base, page)), chromedp.WaitVisible(css("main h1")))
		doc := html(t, ctx, "html")
		for _, bad := range []string{mc.Key(), `href="/connections/new"`, `name="api_key"`, "Export user", mc.URL, "Marketing (signed in)"} {
			if strings.Contains(doc, bad) {
				t.Errorf("a contributor sees %q on %s", bad, page)
			}
		}
	}
	run(t, ctx, "contributor connection form", chromedp.Navigate(base+"/connections/new"), chromedp.WaitVisible(css("main h1")))
	if h := text(t, ctx, "main h1"); h != "Not allowed" {
		t.Errorf("a contributor opening the connection form sees %q, want Not allowed", h)
	}
	run(t, ctx, "contributor sees exports", chromedp.Navigate(base+"/exports"), chromedp.WaitVisible(css("table")))
}

// checkA11y checks the page's basic accessibility: one h1, and a label for
// every form control (a <label>, or aria-label).
func checkA11y(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	unlabelled := get(t, ctx, "accessibility of "+page, chromedp.Evaluate[[]string](`[...document.querySelectorAll(
		'input:not([type=hidden]), select, textarea')].filter(el => !el.hidden && !(el.labels && el.labels.length) &&
		!el.getAttribute('aria-label')).map(el => el.name || el.id)`))
	if len(unlabelled) > 0 {
		t.Errorf("%s: form controls without a label: %v", page, unlabelled)
	}
	if n := get(t, ctx, "headings of "+page, chromedp.Evaluate[int](`document.querySelectorAll("h1").length`)); n != 1 {
		t.Errorf("%s has %d h1 headings, want 1", page, n)
	}
}

// waitRunDone waits until the run page shows a finished run as the server
// rendered it (live progress updates the page in between, then reloads it).
var waitRunDone = waitFor(`document.querySelector("[data-run-poll]") === null &&
	["Succeeded","Partially succeeded","Failed","Cancelled"].includes(document.querySelector("[data-run-status]")?.textContent.trim())`,
	time.Minute)

// waitFor evaluates a condition until it holds. Unlike chromedp.Poll it
// survives the page reloading itself in between.
func waitFor(expr string, limit time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		ctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		for {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, tg)
			if err == nil && ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w (last error: %v)", expr, ctx.Err(), err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// freePort finds a loopback port that is free now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// page2 makes a URL from a path or keeps a full URL.
func page2(base, p string) string {
	if strings.HasPrefix(p, "http") {
		return p
	}
	return base + p
}
