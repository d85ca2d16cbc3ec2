package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
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
	"github.com/segsync/segsync/internal/source"
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

	// A data source: the demo serves a loyalty system's CSV export on its
	// own listener, and the system refresh pulls it before the export runs.
	loyaltyURL, stopLoyalty, err := serveLoyaltyCSV(*n)
	if err != nil {
		return err
	}
	defer stopLoyalty()
	prio := 10
	src, err := eng.Sources.Create(ctx, admin.Actor(), source.Input{Name: "Loyalty system (CSV over http)", Kind: "http",
		Key: "customer_id", URL: loyaltyURL, Headers: map[string]string{"Authorization": "Bearer demo-loyalty-token"},
		Schedule: "refresh", Priority: &prio})
	if err != nil {
		return fmt.Errorf("creating the demo source: %w", err)
	}
	fmt.Fprintf(out, "source %d: %s, pulled with every refresh\n", src.ID, src.Name)

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
		{"Gold members", `{"attribute":"tier","op":"eq","value":"gold"}`},
	} {
		rule, err := segrule.Parse([]byte(s.rule), segrule.KnownSet("spend", "city", "joined", "tier"))
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
		AudienceID: listID, SegmentIDs: segIDs, TagPrefix: "segsync: ", CreateMissingMergeFields: true, Schedule: "refresh",
		Mapping: store.Mapping{Email: "email", FirstName: "first_name", LastName: "last_name",
			Attributes: []store.AttributeMap{{Attribute: "city", MergeTag: "CITY"}}}})
	if err != nil {
		return fmt.Errorf("creating the export: %w", err)
	}
	fmt.Fprintf(out, "export %d: segments Big spenders, Amsterdam, Joined 2024, Gold members -> audience %s (FNAME, LNAME, CITY; tags per segment)\n\n", exp.ID, listID)

	for i, title := range []string{"refresh: pull the loyalty source, then run the export (everything is new)", "second run: nothing changed, so nothing is sent"} {
		fmt.Fprintf(out, "%s\n", title)
		var run store.Run
		if i == 0 {
			if run, err = demoRefresh(ctx, io, eng.Sources, admin); err != nil {
				return err
			}
		} else if run, _, err = eng.Runner.Enqueue(ctx, exp.ID, store.TriggerManual, false, admin.Email); err != nil {
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

// serveLoyaltyCSV serves a CSV of loyalty points and tiers for the demo's
// n customers on a loopback listener, behind a bearer token, and returns
// its URL.
func serveLoyaltyCSV(n int) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listening for the demo source: %w", err)
	}
	tiers := []string{"bronze", "bronze", "bronze", "silver", "silver", "gold"}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer demo-loyalty-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/csv")
		bw := bufio.NewWriterSize(w, 64<<10)
		fmt.Fprintln(bw, "customer_id,loyalty_points,tier")
		rng := mrand.New(mrand.NewPCG(7, 42))
		for i := 0; i < n; i++ {
			fmt.Fprintf(bw, "C%07d,%d,%s\n", i, rng.IntN(5000), tiers[rng.IntN(len(tiers))])
		}
		_ = bw.Flush()
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/loyalty.csv", func() { srv.Close() }, nil
}

// demoRefresh starts a system refresh, prints its pull, and returns the
// export run it queued once the pull ended.
func demoRefresh(ctx context.Context, io IO, srcs *source.Service, admin auth.Principal) (store.Run, error) {
	f, err := srcs.StartRefresh(ctx, admin.Actor(), store.TriggerManual)
	if err != nil {
		return store.Run{}, err
	}
	for f.Status == store.RefreshPulling {
		select {
		case <-ctx.Done():
			return store.Run{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if f, err = srcs.GetRefresh(ctx, f.ID); err != nil {
			return store.Run{}, err
		}
	}
	for _, p := range f.Pulls {
		printPull(io, p)
	}
	if len(f.Runs) == 0 {
		return store.Run{}, fmt.Errorf("refresh %d queued no export run: %s", f.ID, f.Error)
	}
	return f.Runs[0], nil
}

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
