package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/config"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/export"
	"github.com/segsync/segsync/internal/httpapi"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/metrics"
	segrule "github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/store/sqlite"
	"github.com/segsync/segsync/internal/web"
)

// runDemo shows the whole product on the embedded default: a temporary data
// directory, the built-in Mailchimp emulator, synthetic profiles, three
// segments, a connection and an export, run twice (the second run sends
// nothing), then the UI and API until Ctrl-C (or exit with --exit).
func runDemo(ctx context.Context, io IO, args []string) error {
	cfg := config.Defaults()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	n := fs.Int("profiles", 100000, "number of synthetic profiles")
	exit := fs.Bool("exit", false, "exit after the runs instead of serving the UI")
	keep := fs.Bool("keep", false, "keep the temporary data directory")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address of the UI and API (a free port when taken)")
	cfg.RegisterLog(fs)
	cfg.LogLevel = "warn"
	if err := parseFlags(fs, args, io); err != nil {
		return err
	}
	if fs.NArg() > 0 || *n < 1 {
		fmt.Fprintln(io.Stderr, "usage: segsync demo [--profiles N] [--exit] [--listen ADDR]")
		return errUsage
	}
	log := newLogger(cfg, io.Stderr)
	out := io.Stdout

	dir, err := os.MkdirTemp("", "segsync-demo-")
	if err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	cfg.DataDir = dir
	fmt.Fprintf(out, "segsync demo: data in %s (SQLite), Mailchimp emulated in-process\n", dir)
	st, err := sqlite.Open(ctx, dir, log)
	if err != nil {
		return err
	}
	defer st.Close()

	emu, err := emulator.Start(emulator.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("starting the emulator: %w", err)
	}
	defer emu.Close()
	listID, err := emu.CreateList(emu.Key(), "Demo customers")
	if err != nil {
		return err
	}
	_ = emu.AddMergeField(listID, "FNAME", "First name", "text")
	_ = emu.AddMergeField(listID, "LNAME", "Last name", "text")

	start := time.Now()
	if err := demoProfiles(ctx, st, *n); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d synthetic profiles imported in %s\n", *n, time.Since(start).Round(time.Millisecond))

	// The demo's admin and vault key exist only for this run.
	var b [32]byte
	_, _ = rand.Read(b[:])
	cfg.SecretKey = hex.EncodeToString(b[:])
	_, _ = rand.Read(b[:12])
	cfg.AdminEmail, cfg.AdminPassword = demoEmail, hex.EncodeToString(b[:12])
	reg := metrics.NewRegistry()
	sec, err := newSecurity(ctx, cfg, st, log, engineClientConfig(cfg, reg, log))
	if err != nil {
		return err
	}
	admin, token, err := demoAdmin(ctx, sec)
	if err != nil {
		return err
	}
	eng := newEngine(cfg, st, sec, log, reg)
	eng.Runner.Poll = 50 * time.Millisecond
	eng.Runner.RefreshSchedule = "0 2 * * *"
	defer eng.start(ctx)()

	conn, err := sec.Connections.Create(ctx, admin, connection.CreateInput{DisplayName: "Demo Mailchimp (emulated)",
		Type: "mailchimp", APIKey: emu.Key(), APIBaseURL: emu.URL, AllowContributors: true, PrivacyConsent: true})
	if err != nil {
		return fmt.Errorf("creating the connection: %w", err)
	}
	var segIDs []int64
	for _, s := range []struct{ name, rule string }{
		{"Big spenders", `{"attribute":"spend","op":"gte","value":500}`},
		{"Amsterdam", `{"attribute":"city","op":"eq","value":"Amsterdam"}`},
		{"Joined 2024", `{"attribute":"joined","op":"between","value":["2024-01-01","2024-12-31"]}`},
	} {
		rule, err := segrule.Parse([]byte(s.rule), segrule.KnownSet("spend", "city", "joined"))
		if err != nil {
			return err
		}
		seg := store.Segment{Name: s.name, Rule: rule}
		if err := st.CreateSegment(ctx, &seg); err != nil {
			return err
		}
		segIDs = append(segIDs, seg.ID)
	}
	exp, err := eng.Exports.Create(ctx, admin, export.Input{Name: "Demo customers to Mailchimp", ConnectionID: &conn.ID,
		AudienceID: listID, SegmentIDs: segIDs, TagPrefix: "segsync: ", CreateMissingMergeFields: true, Schedule: "off",
		Mapping: store.Mapping{Email: "email", FirstName: "first_name", LastName: "last_name",
			Attributes: []store.AttributeMap{{Attribute: "city", MergeTag: "CITY"}}}})
	if err != nil {
		return fmt.Errorf("creating the export: %w", err)
	}
	fmt.Fprintf(out, "export %d: segments Big spenders, Amsterdam, Joined 2024 -> audience %s (FNAME, LNAME, CITY; tags per segment)\n\n", exp.ID, listID)

	for i, title := range []string{"first run: everything is new", "second run: nothing changed, so nothing is sent"} {
		fmt.Fprintf(out, "%s\n", title)
		run, _, err := eng.Runner.Enqueue(ctx, exp.ID, store.TriggerManual, false, admin.Email)
		if err != nil {
			return err
		}
		t0 := time.Now()
		final, err := pollRun(ctx, io, func(ctx context.Context) (store.Run, error) { return st.GetRun(ctx, run.ID) })
		if err != nil {
			return err
		}
		printRunSummary(io, final, time.Since(t0))
		if final.Status == store.RunFailed {
			return fmt.Errorf("run %d failed: %s", final.ID, final.Error)
		}
		if final.Counts.Rejected > 0 {
			var sample []string
			_ = st.StreamRejections(ctx, run.ID, func(r store.Rejection) error {
				if len(sample) < 3 {
					sample = append(sample, r.Email+": "+r.Reason)
				}
				return nil
			})
			fmt.Fprintf(out, "  rejections, e.g.:\n    %s\n", strings.Join(sample, "\n    "))
		}
		if i == 0 {
			sc, _ := emu.StatusCounts(listID)
			fmt.Fprintf(out, "  the audience now holds %s\n", formatCounts(sc))
		}
		fmt.Fprintln(out)
	}
	if *exit {
		return nil
	}

	api := httpapi.New(httpapi.Deps{Store: st, Log: log, Registry: reg, Loopback: cfg.IsLoopback(),
		Auth: sec.Auth, Connections: sec.Connections, Audit: sec.Audit, Exports: eng.Exports, Runs: eng.Runner, Sources: eng.Sources})
	ui, err := web.New(web.Deps{API: api.Handler(), Log: log, CountProfiles: st.CountProfiles,
		OAuthEnabled: sec.Connections.OAuthEnabled, RefreshSchedule: cfg.RefreshSchedule})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return fmt.Errorf("listening: %w", err)
		}
	}
	addr := "http://" + ln.Addr().String()
	fmt.Fprintf(out, "segsync is serving at %s (Ctrl-C to stop)\n  sign in as %s with password %s, or call the API with: Authorization: Bearer %s\n  e.g. curl -H 'Authorization: Bearer %s' %s/api/v1/exports/%d/runs\n",
		addr, admin.Email, cfg.AdminPassword, token, token, addr, exp.ID)
	return serveHTTP(ctx, ln, ui.Handler(), cfg.ShutdownTimeout, log)
}

const demoEmail = "demo@segsync.local"

// demoAdmin finds the demo's admin user (created from the config) and
// creates an API token for it.
func demoAdmin(ctx context.Context, sec *security) (auth.Principal, string, error) {
	u, err := sec.Auth.UserByEmail(ctx, auth.SystemPrincipal, demoEmail)
	if err != nil {
		return auth.Principal{}, "", err
	}
	secret, _, err := sec.Auth.CreateToken(ctx, auth.SystemPrincipal, u.ID, "demo")
	if err != nil {
		return auth.Principal{}, "", err
	}
	return auth.Principal{UserID: u.ID, Email: u.Email, Role: auth.Admin}, secret, nil
}

var (
	demoFirst  = []string{"Anna", "Bram", "Chloé", "Daan", "Emma", "Finn", "Giulia", "Hugo", "Iris", "Jesse", "Kim", "Lars", "Mila", "Noah", "Olivia", "Pim", "Quinn", "Ruben", "Sara", "Tess"}
	demoLast   = []string{"de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "de Boer", "Bos", "Vos", "Peters", "Hendriks", "Dekker", "Brouwer", "Dijkstra"}
	demoCities = []string{"Amsterdam", "Rotterdam", "Utrecht", "Den Haag", "Eindhoven", "Groningen", "Antwerpen", "Gent", "Lyon", "Berlin"}
)

// demoProfiles imports n synthetic profiles: names, cities, spend, dates;
// about 1% have an invalid address and about 1% share one with another.
func demoProfiles(ctx context.Context, st *sqldb.DB, n int) error {
	rng := mrand.New(mrand.NewPCG(42, 7))
	const chunk = 5000
	batch := make([]store.ProfilePatch, 0, chunk)
	for i := 0; i < n; i++ {
		first, last := demoFirst[rng.IntN(len(demoFirst))], demoLast[rng.IntN(len(demoLast))]
		email := fmt.Sprintf("%s.%s%d@customer-mail.io", strings.ToLower(first[:1]), strings.ToLower(strings.ReplaceAll(last, " ", "")), i)
		switch r := rng.IntN(100); {
		case r == 0:
			email = fmt.Sprintf("broken-address-%d", i)
		case r == 1 && i > 0:
			j := rng.IntN(i)
			email = fmt.Sprintf("shared%d@customer-mail.io", j%50)
		}
		joined := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(6*365))
		attrs := map[string]any{
			"email": email, "first_name": first, "last_name": last,
			"city":   demoCities[rng.IntN(len(demoCities))],
			"spend":  rng.IntN(100000) / 100,
			"joined": joined.Format("2006-01-02"),
		}
		b, err := json.Marshal(attrs)
		if err != nil {
			return err
		}
		batch = append(batch, store.ProfilePatch{CustomerID: fmt.Sprintf("C%07d", i), Attrs: string(b)})
		if len(batch) == chunk || i == n-1 {
			if _, err := st.UpsertProfiles(ctx, batch); err != nil {
				return fmt.Errorf("importing the demo profiles: %w", err)
			}
			batch = batch[:0]
		}
	}
	return nil
}

// formatCounts prints status counts as "61475 subscribed, 12 pending" in a
// stable order.
func formatCounts(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", counts[k], k)
	}
	if len(parts) == 0 {
		return "no contacts"
	}
	return strings.Join(parts, ", ")
}
