package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/config"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/erasure"
	"github.com/segsync/segsync/internal/export"
	"github.com/segsync/segsync/internal/hooks"
	"github.com/segsync/segsync/internal/jobs"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/source"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/syncer"
)

// engine is the export side of a serving process: export definitions, the
// run engine and the workers and scheduler that execute runs.
type engine struct {
	Exports  *export.Service
	Runner   *jobs.Runner
	Erasures *erasure.Service
	// Sources manages data sources; SourceWorker pulls them and drives the
	// system refresh (pulls, then the refresh-scheduled exports).
	Sources      *source.Service
	SourceWorker *source.Worker
	// Hooks receives Mailchimp's webhooks; Webhooks registers them on the
	// exports' audiences when --public-url is set.
	Hooks    *hooks.Receiver
	Webhooks *hooks.Registrar
}

// engineClientConfig completes every Mailchimp client the process builds:
// one limiter per account sized by --max-conns, and the client metrics.
func engineClientConfig(cfg config.Config, reg prometheus.Registerer, log *slog.Logger) func(*mailchimp.Config) {
	n := cfg.MaxConns
	if n <= 0 || n > mailchimp.MaxConnsPerAccount {
		n = mailchimp.MaxConnsPerAccount
	}
	limiter := mailchimp.NewLocalLimiter(n)
	var metrics mailchimp.Metrics
	if reg != nil {
		if m, err := mailchimp.NewPrometheusMetrics(reg); err == nil {
			metrics = m
		} else {
			log.Warn("Mailchimp client metrics unavailable", "err", err)
		}
	}
	return func(c *mailchimp.Config) {
		c.Limiter = limiter
		if metrics != nil {
			c.Metrics = metrics
		}
		c.Logger = log
	}
}

// newEngine wires the export service and the runner over the store and the
// connection service.
func newEngine(cfg config.Config, st *sqldb.DB, sec *security, log *slog.Logger, reg prometheus.Registerer) *engine {
	conc := cfg.MaxConns
	if conc <= 0 || conc > mailchimp.MaxConnsPerAccount {
		conc = mailchimp.MaxConnsPerAccount
	}
	eng := &syncer.Engine{Store: st, Source: st, Log: log, Concurrency: conc}
	if reg != nil {
		eng.Metrics = syncer.NewMetrics(reg)
	}
	rc := &hooks.Receiver{Store: st, Log: log, Metrics: hooks.NewMetrics(reg)}
	webhooks := &hooks.Registrar{Receiver: rc, Clients: sec.Connections, PublicURL: cfg.PublicURL, Log: log}
	runner := &jobs.Runner{Store: st, Engine: eng, Clients: sec.Connections, Log: log,
		RefreshSchedule: cfg.RefreshSchedule, Lease: cfg.RunLease, ExternalRefresh: true, Webhooks: webhooks}
	srcs := source.NewService(st, sec.Vault, sec.Audit, log)
	srcs.SetRunQueuer(runner)
	var sm *source.Metrics
	if reg != nil {
		sm = source.NewMetrics(reg)
	}
	return &engine{
		Exports:      &export.Service{Store: st, Connections: connections{sec.Connections}, Audit: sec.Audit, Webhooks: webhooks},
		Hooks:        rc,
		Webhooks:     webhooks,
		Runner:       runner,
		Sources:      srcs,
		SourceWorker: &source.Worker{Service: srcs, Store: st, Log: log, Metrics: sm, Runs: runner, Lease: cfg.RunLease, RefreshSchedule: cfg.RefreshSchedule, StageDir: cfg.DataDir},
		Erasures: &erasure.Service{Store: st, Clients: erasure.ConnectionClients{Of: sec.Connections}, Audit: sec.Audit,
			Log: log, Owner: processOwner(), Lease: cfg.RunLease},
	}
}

// processOwner names this process in the leases it takes.
func processOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano())
}

// start runs the workers and the scheduler until ctx ends or stop is
// called; stop also waits until they stopped (runs in progress hand their
// lease back, so the next start resumes them at once).
func (e *engine) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Go(func() { _ = e.SourceWorker.Run(ctx) })
		_ = e.Runner.Run(ctx)
		wg.Wait()
	}()
	erasures := make(chan struct{})
	go func() {
		defer close(erasures)
		e.Erasures.Work(ctx)
	}()
	return func() {
		cancel()
		<-done
		<-erasures
	}
}

// connections adapts the connection service to export.Connections.
type connections struct{ s *connection.Service }

func (c connections) Authorize(ctx context.Context, p auth.Principal, id int64) (store.Connection, error) {
	return c.s.Authorize(ctx, p, id)
}

func (c connections) Audience(ctx context.Context, p auth.Principal, id int64) (export.Audience, error) {
	cl, err := c.s.Client(ctx, p, id)
	if err != nil {
		return nil, err
	}
	return cl, nil
}

// runExports manages and runs exports through the REST API.
func runExports(ctx context.Context, io IO, args []string) error {
	return runSubcommand(ctx, io, "exports", args, map[string]subcommand{
		"list":   {"[--json]", exportsList},
		"get":    {"ID", exportsGet},
		"create": {"--json JSON|@FILE|@-", exportsCreate},
		"delete": {"ID", exportsDelete},
		"run":    {"ID [--dry-run] [--full] [--wait]", exportsRun},
	})
}

// apiExport is an export as the API returns it (the fields the CLI shows).
type apiExport struct {
	ID           int64   `json:"id"`
	Name         string  `json:"name"`
	ConnectionID *int64  `json:"connection_id"`
	AudienceID   string  `json:"audience_id"`
	SegmentIDs   []int64 `json:"segment_ids"`
	OnLeave      string  `json:"on_leave"`
	Schedule     string  `json:"schedule"`
}

func exportsList(ctx context.Context, io IO, args []string) error {
	return listCommand(ctx, io, args, "exports", "ID\tNAME\tCONNECTION\tAUDIENCE\tSEGMENTS\tON LEAVE\tSCHEDULE",
		func(e apiExport) string {
			conn := "detached"
			if e.ConnectionID != nil {
				conn = strconv.FormatInt(*e.ConnectionID, 10)
			}
			return fmt.Sprintf("%d\t%s\t%s\t%s\t%v\t%s\t%s", e.ID, e.Name, conn, e.AudienceID, e.SegmentIDs, e.OnLeave, e.Schedule)
		})
}

func exportsGet(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("exports get", flag.ContinueOnError)
	c, id, err := idCommand(fs, args, io, "export")
	if err != nil {
		return err
	}
	var e json.RawMessage
	if err := c.getJSON(ctx, pathf("/api/v1/exports/%s", id), nil, &e); err != nil {
		return err
	}
	return printJSON(io.Stdout, e)
}

func exportsCreate(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("exports create", flag.ContinueOnError)
	body := fs.String("json", "", "the export as JSON (SPEC section 7), inline, @FILE or @-")
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	if *body == "" {
		fmt.Fprintln(io.Stderr, "exports create: --json is required")
		return errUsage
	}
	raw, err := readRule(io, *body)
	if err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	var out json.RawMessage
	if err := c.sendJSON(ctx, "POST", "/api/v1/exports", raw, &out); err != nil {
		return err
	}
	return printJSON(io.Stdout, out)
}

func exportsDelete(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("exports delete", flag.ContinueOnError)
	c, id, err := idCommand(fs, args, io, "export")
	if err != nil {
		return err
	}
	if err := c.delete(ctx, pathf("/api/v1/exports/%s", id), nil); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "export %d deleted (its synced state too; Mailchimp was not touched)\n", id)
	return nil
}

func exportsRun(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("exports run", flag.ContinueOnError)
	dry := fs.Bool("dry-run", false, "plan only: report what would change, write nothing")
	full := fs.Bool("full", false, "full re-sync: plan every profile, not only those changed since the last complete run")
	wait := fs.Bool("wait", false, "wait for the run to end, with a progress bar on a terminal, and print its counts")
	c, id, err := idCommand(fs, args, io, "export")
	if err != nil {
		return err
	}
	var run store.Run
	if err := c.sendJSON(ctx, "POST", pathf("/api/v1/exports/%s/runs", id), map[string]bool{"dry_run": *dry, "full_resync": *full}, &run); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "run %d %s\n", run.ID, run.Status)
	if !*wait {
		return nil
	}
	final, err := waitForRun(ctx, io, c, run.ID)
	if err != nil {
		return err
	}
	printRunSummary(io, final, 0)
	if final.Status == store.RunFailed || final.Status == store.RunCancelled {
		return fmt.Errorf("run %d %s: %s", final.ID, final.Status, final.Error)
	}
	return nil
}

// waitForRun polls a run until it ends, drawing a progress bar on a terminal.
func waitForRun(ctx context.Context, io IO, c *apiClient, id int64) (store.Run, error) {
	return pollRun(ctx, io, func(ctx context.Context) (store.Run, error) {
		var r store.Run
		err := c.getJSON(ctx, pathf("/api/v1/runs/%s", id), nil, &r)
		return r, err
	})
}

// pollRun polls get until the run ends, with a progress bar on a terminal.
func pollRun(ctx context.Context, io IO, get func(context.Context) (store.Run, error)) (store.Run, error) {
	var bar interface {
		ChangeMax64(int64)
		Set64(int64) error
		Finish() error
	}
	if b := newProgressBar(io, -1, "sending"); b != nil {
		bar = b
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		r, err := get(ctx)
		if err != nil {
			return r, err
		}
		if bar != nil && r.Progress.Total > 0 {
			bar.ChangeMax64(r.Progress.Total)
			_ = bar.Set64(r.Progress.Done)
		}
		if r.FinishedAt != nil {
			if bar != nil {
				_ = bar.Finish()
			}
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-t.C:
		}
	}
}

// printRunSummary prints a run's outcome and counts.
func printRunSummary(io IO, r store.Run, took time.Duration) {
	if took == 0 && r.StartedAt != nil && r.FinishedAt != nil {
		took = r.FinishedAt.Sub(*r.StartedAt)
	}
	k := r.Counts
	fmt.Fprintf(io.Stdout, "run %d %s in %s", r.ID, r.Status, took.Round(time.Millisecond))
	if r.DryRun {
		fmt.Fprint(io.Stdout, " (dry run: nothing was written)")
	}
	fmt.Fprintln(io.Stdout)
	if r.Error != "" {
		fmt.Fprintf(io.Stdout, "  error: %s\n", r.Error)
	}
	tw := tabwriter.NewWriter(io.Stdout, 0, 4, 1, ' ', tabwriter.AlignRight)
	rows := []struct {
		name string
		n    int64
	}{
		{"profiles", k.Profiles}, {"skipped (invalid e-mail)", k.SkippedInvalidEmail}, {"duplicates merged", k.Duplicates},
		{"contacts", k.Contacts}, {"unchanged", k.Unchanged}, {"created", k.Created}, {"adopted", k.Adopted},
		{"updated", k.Updated}, {"addresses changed (contact kept)", k.EmailChanged},
		{"address changes to an existing contact", k.EmailChangeCollisions}, {"restored", k.Restored}, {"tags added", k.TagsAdded}, {"tags removed", k.TagsRemoved},
		{"archived", k.Archived}, {"unsubscribed", k.Unsubscribed}, {"rejected", k.Rejected},
		{"left alone (archived by others)", k.SkippedArchived}, {"not retried (rejected before)", k.SkippedRejected},
		{"Mailchimp write calls", k.WriteCalls},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "  %d\t %s\n", row.n, row.name)
	}
	_ = tw.Flush()
	if r.DryRun {
		for kind, cs := range r.Sample {
			fmt.Fprintf(io.Stdout, "  sample %s:", kind)
			for _, c := range cs {
				fmt.Fprintf(io.Stdout, " %s", c.Email)
			}
			fmt.Fprintln(io.Stdout)
		}
	}
}
