// Command bench measures segsync's export end to end: it generates N
// synthetic profiles as CSV, imports them through segsync's REST API into a
// `segsync serve` child process, creates two segments, a connection to an
// in-process Mailchimp emulator with a latency model and an export, and then
// runs a full export, a run with no change and a run after 1% of the
// profiles changed. Side by side, on the same data and emulator, it runs
// the naive approach (one PUT and one tag call per contact, 10 at a time).
//
// It prints one JSON line per measurement (also appended to -results) and
// draws wall time against N from every result in that file as an SVG:
//
//	go run ./bench -profiles 100000,1000000
//	go run ./bench -profiles 1000000 -latency 250ms -max-conns 10 -naive-timeout 2m
//
// CPU seconds and peak RSS are those of the segsync process alone, read
// from /proc (the peak is reset before each measurement). See
// docs/benchmarks.md for the results and what the fields mean.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
)

type options struct {
	sizes            []int
	latency          time.Duration
	latencyPerMember time.Duration
	maxConns         int
	segsync          string
	database         string
	naive            bool
	naiveLimit       int
	naiveTimeout     time.Duration
	results          string
	plot             string
	poll             time.Duration
	keep             bool
	note             string
	calls            string
	cpuProfile       string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("profiles", "100000", "comma-separated numbers of profiles, one full benchmark each")
	fs.DurationVar(&o.latency, "latency", 0, "emulator latency added to every Mailchimp call")
	fs.DurationVar(&o.latencyPerMember, "latency-per-member", 0, "emulator latency added per member of a batch call")
	fs.IntVar(&o.maxConns, "max-conns", 10, "concurrent Mailchimp connections (segsync --max-conns, the emulator's limit and the naive workers)")
	fs.StringVar(&o.segsync, "segsync", "", "segsync binary (default: go build ./cmd/segsync into a temporary directory)")
	fs.StringVar(&o.database, "database", "", "postgres://… for segsync serve --database (default SQLite in a temporary directory)")
	fs.BoolVar(&o.naive, "naive", true, "also run the naive approach")
	fs.IntVar(&o.naiveLimit, "naive-limit", 0, "contacts the naive approach sends at most (0: all)")
	fs.DurationVar(&o.naiveTimeout, "naive-timeout", 3*time.Minute, "time the naive approach may take; its full wall time is then projected from its rate")
	fs.StringVar(&o.results, "results", "bench/results/results.jsonl", "file the JSON lines are appended to (empty: none)")
	fs.StringVar(&o.plot, "plot", "auto", "SVG plot of wall time against profiles, from every result in -results with the same latency and connections (auto: wall.svg, or wall-LATENCY.svg, next to -results; empty: none)")
	fs.DurationVar(&o.poll, "poll", 100*time.Millisecond, "how often a run's status is polled")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (database, server log)")
	fs.IntVar(&changeEvery, "change-every", 100, "the incremental runs change one profile in this many (100: 1 %, the runs change1pct; otherwise change1inN)")
	fs.StringVar(&o.calls, "calls", "", "file each export run's Mailchimp calls are appended to, one JSON line per run: route, arrival and answer in seconds from the run's start (empty: none)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "file segsync serve writes a CPU profile of its whole life to (import, runs, background work; with several -profiles, FILE.N for each), for go tool pprof")
	fs.StringVar(&o.note, "note", "", "free text recorded with every result (e.g. the machine)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(s, "_", "")))
		if err != nil || n < 1 {
			return fmt.Errorf("-profiles: %q is not a positive number", s)
		}
		o.sizes = append(o.sizes, n)
	}
	if changeEvery < 2 {
		return fmt.Errorf("-change-every must be at least 2")
	}
	if o.maxConns < 1 || o.maxConns > mailchimp.MaxConnsPerAccount {
		return fmt.Errorf("-max-conns must be 1-%d", mailchimp.MaxConnsPerAccount)
	}

	tmp, err := os.MkdirTemp("", "segsync-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(stderr, "bench: keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	bin := o.segsync
	if bin == "" {
		if bin, err = buildSegsync(ctx, tmp); err != nil {
			return err
		}
	}
	out := &recorder{w: stdout}
	if o.results != "" {
		if err := os.MkdirAll(filepath.Dir(o.results), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(o.results, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		out.file = f
	}
	for _, n := range o.sizes {
		dir := filepath.Join(tmp, strconv.Itoa(n))
		if err := benchOne(ctx, o, bin, dir, n, out, stderr); err != nil {
			return fmt.Errorf("%d profiles: %w", n, err)
		}
	}
	if o.plot == "auto" {
		o.plot = filepath.Join(filepath.Dir(o.results), "wall.svg")
		if o.latency > 0 {
			o.plot = filepath.Join(filepath.Dir(o.results), "wall-"+o.latency.String()+".svg")
		}
	}
	if o.plot != "" && o.results != "" {
		if err := plotResults(o.results, o.plot, o.latency, o.maxConns); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		fmt.Fprintln(stderr, "bench: plot written to", o.plot)
	}
	return nil
}

// result is one JSON line.
type result struct {
	Run         string  `json:"run"` // import, full, nochange, nochange_again, change1pct (change1inN), change1pct_again, naive
	Profiles    int     `json:"profiles"`
	Store       string  `json:"store"`
	LatencyMS   float64 `json:"latency_ms"`
	MaxConns    int     `json:"max_conns"`
	WallS       float64 `json:"wall_s"`
	ServerWallS float64 `json:"server_wall_s,omitempty"` // started_at → finished_at of the run
	CPUS        float64 `json:"cpu_s"`                   // segsync process
	// SettleS is how long the server took to fall idle before the
	// measurement (work an earlier step left behind, such as the address
	// table's background fill), SettleCPUS the CPU it spent meanwhile.
	SettleS    float64        `json:"settle_s,omitempty"`
	SettleCPUS float64        `json:"settle_cpu_s,omitempty"`
	PeakRSSMB  float64        `json:"peak_rss_mb"` // segsync process, this measurement
	Status     string         `json:"status,omitempty"`
	Calls      map[string]int `json:"calls,omitempty"` // by endpoint, from the emulator
	WriteCalls int            `json:"write_calls"`
	MinCalls   *int           `json:"min_write_calls,omitempty"` // export runs only
	// Efficiency is the least time the minimal calls take (MinS) over the
	// run's wall time; SendEfficiency the same over the time from the
	// first Mailchimp call to the last answer (CallSpanS), which leaves
	// out the work before the first call and after the last (the status
	// flow-back onto the profiles).
	Efficiency *float64 `json:"efficiency,omitempty"`
	MinS       float64  `json:"min_s,omitempty"`
	CallSpanS  float64  `json:"mailchimp_span_s,omitempty"`
	// FirstCallS and FirstWriteS are the times from the run's start to its
	// first Mailchimp call and to its first write call (what it did before
	// sending); the time after the last answer is WallS less FirstCallS
	// and CallSpanS.
	FirstCallS     float64          `json:"first_call_s,omitempty"`
	FirstWriteS    float64          `json:"first_write_s,omitempty"`
	SendEfficiency *float64         `json:"send_efficiency,omitempty"`
	Plan           *plan            `json:"plan,omitempty"`
	Counts         map[string]int64 `json:"counts,omitempty"`
	Timings        map[string]int64 `json:"timings,omitempty"` // the run's phase timings (ms), as segsync reports them
	RowsPerS       float64          `json:"rows_per_s,omitempty"`
	Import         *importResult    `json:"import,omitempty"`
	NaiveSent      int              `json:"naive_contacts_sent,omitempty"`
	NaiveTotal     int              `json:"naive_contacts_total,omitempty"`
	ProjectedS     float64          `json:"naive_projected_wall_s,omitempty"`
	Ratio          float64          `json:"naive_over_segsync,omitempty"` // naive (projected) wall ÷ segsync full-export wall
	Load1          float64          `json:"load1"`
	At             time.Time        `json:"at"`
	Note           string           `json:"note,omitempty"`
}

type recorder struct {
	w    io.Writer
	file io.Writer
}

func (r *recorder) emit(res result) error {
	res.Load1 = loadAvg()
	res.At = time.Now().UTC().Truncate(time.Second)
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := r.w.Write(b); err != nil {
		return err
	}
	if r.file != nil {
		_, err = r.file.Write(b)
	}
	return err
}

// loadAvg returns the 1-minute load average (0 when unknown).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// Before a run is measured, the server (and, on PostgreSQL, the database
// server's processes) must have used at most idleCPU of one core in each
// of idleWindows windows of idleWindow in a row (waiting at most
// settleLimit), so that each measurement starts from an idle server and
// work an earlier step left in the background is reported apart
// (result.SettleCPUS). One window was not enough: a background fill of
// 10M profiles looked idle while SQLite synced a checkpoint to disk.
const (
	idleWindow  = 500 * time.Millisecond
	idleWindows = 3
	idleCPU     = 0.05
	settleLimit = 5 * time.Minute
)

// settle waits until process pid, and every process named one of also,
// are idle, and records the wait in res.
func settle(ctx context.Context, pid int, also []string, res *result) error {
	cpu := func() (time.Duration, error) {
		st, err := readProc(pid)
		if err != nil {
			return 0, err
		}
		return st.CPU + cpuOfNamed(also), nil
	}
	start := time.Now()
	first, err := cpu()
	if err != nil {
		return err
	}
	last := first
	for idle := 0; idle < idleWindows && time.Since(start) <= settleLimit; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(idleWindow):
		}
		now, err := cpu()
		if err != nil {
			return err
		}
		idle++
		if (now - last).Seconds() > idleCPU*idleWindow.Seconds() {
			idle = 0
		}
		last = now
	}
	// The idle windows every measurement waits are not reported.
	if wait := time.Since(start); wait > (idleWindows+1)*idleWindow {
		res.SettleS = round(wait.Seconds(), 2)
		res.SettleCPUS = round((last - first).Seconds(), 2)
	}
	return nil
}

// measure brackets one measurement of the server process.
type measure struct {
	pid   int
	start time.Time
	stat  procStat
}

func startMeasure(pid int) (*measure, error) {
	if err := resetPeakRSS(pid); err != nil {
		return nil, err
	}
	st, err := readProc(pid)
	if err != nil {
		return nil, err
	}
	return &measure{pid: pid, start: time.Now(), stat: st}, nil
}

func (m *measure) end(res *result) error {
	wall := time.Since(m.start)
	st, err := readProc(m.pid)
	if err != nil {
		return err
	}
	res.WallS = round(wall.Seconds(), 3)
	res.CPUS = round((st.CPU - m.stat.CPU).Seconds(), 2)
	res.PeakRSSMB = round(float64(st.PeakRSS)/(1<<20), 1)
	return nil
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

func benchOne(ctx context.Context, o options, bin, dir string, n int, out *recorder, stderr io.Writer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	emu, err := emulator.Start(emulator.Options{MaxConns: o.maxConns, Latency: o.latency, LatencyPerMember: o.latencyPerMember, RecordCalls: o.calls != ""})
	if err != nil {
		return err
	}
	defer emu.Close()
	key := emu.Key()
	list, err := emu.CreateList(key, "segsync bench")
	if err != nil {
		return err
	}
	naiveList, err := emu.CreateList(key, "naive bench")
	if err != nil {
		return err
	}

	// The server, with an admin and a token created in its store first.
	storeName := "sqlite"
	storeArgs := []string{"--data", filepath.Join(dir, "data")}
	if o.database != "" {
		storeName = "postgres"
		storeArgs = append(storeArgs, "--database", o.database)
	}
	admin := "bench-admin@segsync-bench.net"
	if _, err := runCLI(ctx, bin, nil, "", append([]string{"user", "create", "--email", admin, "--role", "admin"}, storeArgs...)...); err != nil {
		return err
	}
	tokOut, err := runCLI(ctx, bin, nil, "", append([]string{"token", "create", "--email", admin, "--name", "bench"}, storeArgs...)...)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(tokOut), "\n")
	token := strings.TrimSpace(lines[len(lines)-1])
	serveArgs := append([]string{"--max-conns", strconv.Itoa(o.maxConns), "--refresh-schedule", "0 0 1 1 *"}, storeArgs...)
	if o.cpuProfile != "" {
		path, err := filepath.Abs(o.cpuProfile)
		if err != nil {
			return err
		}
		if len(o.sizes) > 1 {
			path += "." + strconv.Itoa(n)
		}
		serveArgs = append(serveArgs, "--cpu-profile", path)
	}
	srv, err := startServe(ctx, bin, nil, filepath.Join(dir, "serve.log"), serveArgs...)
	if err != nil {
		return err
	}
	defer srv.stop()
	a := &api{base: srv.url, token: token, http: &http.Client{}}
	base := result{Profiles: n, Store: storeName, LatencyMS: float64(o.latency) / float64(time.Millisecond), MaxConns: o.maxConns, Note: o.note}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "bench %d: "+format+"\n", append([]any{n}, args...)...)
	}

	// Import.
	logf("importing")
	m, err := startMeasure(srv.pid())
	if err != nil {
		return err
	}
	ir, err := importGen(ctx, a, n, 0, nil)
	if err != nil {
		return err
	}
	res := base
	res.Run = "import"
	if err := m.end(&res); err != nil {
		return err
	}
	res.Import = &ir
	res.RowsPerS = round(float64(n)/res.WallS, 0)
	if ir.Imported != int64(n) || ir.Rejected != 0 {
		return fmt.Errorf("import: %+v, want %d imported", ir, n)
	}
	if err := out.emit(res); err != nil {
		return err
	}

	// Segments, connection, export.
	full := planFull(n)
	segA, err := a.createSegment(ctx, "engaged", map[string]any{"attribute": "score", "op": "gte", "value": engagedMin})
	if err != nil {
		return err
	}
	segB, err := a.createSegment(ctx, "recent", map[string]any{"attribute": "signup_date", "op": "gte", "value": recentFrom})
	if err != nil {
		return err
	}
	if segA.MemberCount != int64(full.TagAdds[0]) || segB.MemberCount != int64(full.TagAdds[1]) {
		return fmt.Errorf("segment counts %d and %d, want %d and %d", segA.MemberCount, segB.MemberCount, full.TagAdds[0], full.TagAdds[1])
	}
	var conn idAnswer
	if err := a.call(ctx, http.MethodPost, "/api/v1/connections", "", map[string]any{
		"display_name": "bench", "type": "mailchimp", "api_key": key, "privacy_consent": true, "api_base_url": emu.URL,
	}, &conn); err != nil {
		return err
	}
	var exp idAnswer
	if err := a.call(ctx, http.MethodPost, "/api/v1/exports", "", map[string]any{
		"name": "bench", "connection_id": conn.ID, "audience_id": list, "segment_ids": []int64{segA.ID, segB.ID},
		"mapping":       map[string]any{"email": "email", "first_name": "first_name", "last_name": "last_name"},
		"status_if_new": "subscribed", "on_leave": "untag", "schedule": "off",
	}, &exp); err != nil {
		return err
	}

	runOnce := func(name string, p *plan) (result, error) {
		res := base
		var db []string
		if o.database != "" {
			db = []string{"postgres"}
		}
		if err := settle(ctx, srv.pid(), db, &res); err != nil {
			return result{}, err
		}
		logf("run %s", name)
		emu.ResetCounters()
		m, err := startMeasure(srv.pid())
		if err != nil {
			return result{}, err
		}
		r, err := a.runExport(ctx, exp.ID, o.poll)
		if err != nil {
			return result{}, err
		}
		res.Run = name
		if err := m.end(&res); err != nil {
			return result{}, err
		}
		if r.StartedAt != nil && r.FinishedAt != nil {
			res.ServerWallS = round(r.FinishedAt.Sub(*r.StartedAt).Seconds(), 3)
		}
		res.Status, res.Counts, res.Timings = r.Status, r.Counts, r.Timings
		res.Calls, res.WriteCalls = emu.Calls(), emu.WriteCalls()
		if p != nil {
			res.Plan, res.MinCalls = p, &p.MinCalls
			if first, last := emu.CallSpan(); !first.IsZero() {
				res.CallSpanS = round(last.Sub(first).Seconds(), 3)
				res.FirstCallS = round(first.Sub(m.start).Seconds(), 3)
			}
			if w := emu.FirstWrite(); !w.IsZero() {
				res.FirstWriteS = round(w.Sub(m.start).Seconds(), 3)
			}
			if o.calls != "" {
				if err := appendCalls(o.calls, res, m.start, emu.RecordedCalls()); err != nil {
					return result{}, err
				}
			}
			if o.latency > 0 && res.WallS > 0 {
				res.MinS = round(p.minSeconds(o.latency, o.latencyPerMember, o.maxConns), 3)
				eff := round(res.MinS/res.WallS, 3)
				res.Efficiency = &eff
				if res.CallSpanS > 0 {
					se := round(res.MinS/res.CallSpanS, 3)
					res.SendEfficiency = &se
				}
			}
		}
		if r.Status != "succeeded" {
			return res, fmt.Errorf("run %s ended %s: %s", name, r.Status, r.Error)
		}
		return res, nil
	}

	fullRes, err := runOnce("full", &full)
	if err != nil {
		return err
	}
	if err := out.emit(fullRes); err != nil {
		return err
	}
	if got := emu.CallCount("POST /lists/{list_id}"); got == 0 {
		return errors.New("the full run made no batch subscribe")
	}
	// The second run with no change shows the steady state: the first
	// may share the server with work the full run left behind (WAL
	// checkpoints, an abandoned attempt's status flow-back).
	for _, name := range []string{"nochange", "nochange_again"} {
		res, err = runOnce(name, &plan{})
		if err != nil {
			return err
		}
		if err := out.emit(res); err != nil {
			return err
		}
	}

	// A second change, of as many other profiles, shows the steady state:
	// the first incremental run after a full one fills the address table.
	change := "change1pct"
	if changeEvery != 100 {
		change = fmt.Sprintf("change1in%d", changeEvery)
	}
	for g, name := range []string{change, change + "_again"} {
		logf("changing one profile in %d", changeEvery)
		if _, err := importGen(ctx, a, n, g+1, func(i int) bool { return changed(i, g+1) }); err != nil {
			return err
		}
		ch := planChange(n, g+1)
		res, err = runOnce(name, &ch)
		if err != nil {
			return err
		}
		if err := out.emit(res); err != nil {
			return err
		}
	}

	if !o.naive {
		return nil
	}
	logf("naive approach")
	emu.ResetCounters()
	mc, err := mailchimp.New(mailchimp.Config{APIKey: key, BaseURL: emu.URL, Limiter: mailchimp.NewLocalLimiter(o.maxConns)})
	if err != nil {
		return err
	}
	nr, err := runNaive(ctx, mc, naiveList, n, o.maxConns, o.naiveLimit, o.naiveTimeout)
	if err != nil {
		return err
	}
	res = base
	res.Run = "naive"
	res.WallS = round(nr.Wall.Seconds(), 3)
	res.Calls, res.WriteCalls = emu.Calls(), emu.WriteCalls()
	res.NaiveSent, res.NaiveTotal = nr.Contacts, nr.Total
	res.ProjectedS = round(nr.Projected.Seconds(), 1)
	if fullRes.WallS > 0 {
		res.Ratio = round(nr.Projected.Seconds()/fullRes.WallS, 1)
	}
	return out.emit(res)
}

// importGen streams generation g of the profiles (those keep accepts)
// into segsync's import API while generating them.
func importGen(ctx context.Context, a *api, n, g int, keep func(int) bool) (importResult, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeCSV(pw, n, g, keep)) }()
	res, err := a.importCSV(ctx, pr)
	pr.Close()
	return res, err
}

// plotResults draws wall time against profiles from every line of the
// results file with the given latency and connection limit.
func plotResults(path, svgPath string, latency time.Duration, maxConns int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	type key struct {
		run string
		n   int
	}
	latest := map[key]float64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r result
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue
		}
		if r.LatencyMS != float64(latency)/float64(time.Millisecond) || r.MaxConns != maxConns {
			continue
		}
		wall := r.WallS
		if r.Run == "naive" {
			wall = r.ProjectedS
		}
		latest[key{r.Run, r.Profiles}] = wall // later lines win
	}
	if err := sc.Err(); err != nil {
		return err
	}
	names := []struct{ run, label, color string }{
		{"full", "segsync full export", "#1f77b4"},
		{"nochange", "segsync, no change", "#2ca02c"},
		{"change1pct", "segsync, 1% changed", "#ff7f0e"},
		{"import", "CSV import", "#9467bd"},
		{"naive", "naive (projected)", "#d62728"},
	}
	var ss []series
	for _, nm := range names {
		s := series{Name: nm.label, Color: nm.color, Dashed: nm.run == "naive"}
		for k, v := range latest {
			if k.run == nm.run {
				s.Points = append(s.Points, point{float64(k.n), v})
			}
		}
		if len(s.Points) > 0 {
			ss = append(ss, s)
		}
	}
	title := fmt.Sprintf("segsync: wall time against profiles (emulator latency %s, %d connections)", latency, maxConns)
	var b strings.Builder
	if err := writeSVG(&b, title, ss); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(svgPath), 0o755); err != nil {
		return err
	}
	return os.WriteFile(svgPath, []byte(b.String()), 0o644)
}

// appendCalls appends one JSON line to file: the run's name and size, and
// each call's route, arrival and answer in seconds from start.
func appendCalls(file string, res result, start time.Time, calls []emulator.Call) error {
	type call struct {
		Route string  `json:"route"`
		Start float64 `json:"start_s"`
		End   float64 `json:"end_s"`
	}
	line := struct {
		Run      string `json:"run"`
		Profiles int    `json:"profiles"`
		Note     string `json:"note,omitempty"`
		Calls    []call `json:"calls"`
	}{Run: res.Run, Profiles: res.Profiles, Note: res.Note}
	for _, c := range calls {
		line.Calls = append(line.Calls, call{c.Route, round(c.Start.Sub(start).Seconds(), 4), round(c.End.Sub(start).Seconds(), 4)})
	}
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
