package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/segsync/segsync/internal/config"
	"github.com/segsync/segsync/internal/limiter"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// runWorker runs the job workers and the scheduler without the web UI and
// REST API. On PostgreSQL any number of worker and serve processes share the
// run queue, the schedules and each Mailchimp account's connection limit.
func runWorker(ctx context.Context, io IO, args []string) error {
	cfg := config.Defaults()
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	// The same flags (and SEGSYNC_* variables) as serve, so both kinds of
	// process can share one environment file; --listen and the OAuth and
	// admin settings are simply not used here.
	cfg.RegisterServer(fs)
	workers := fs.Int("workers", 2, "runs this process executes at once (1-32)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: segsync worker --database postgres://… [flags]\n\n"+
			"Runs exports and schedules without the web UI and REST API, beside other worker and serve\n"+
			"processes on the same PostgreSQL database. It takes serve's flags, so that both can share\n"+
			"one environment file; --listen and the OAuth settings are not used. See docs/deploy.md.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, io); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.Stderr, "worker takes no arguments, got %q\n", fs.Args())
		return errUsage
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if *workers < 1 || *workers > 32 {
		return fmt.Errorf("workers: %d is outside 1-32", *workers)
	}
	if cfg.DatabaseURL == "" {
		return errors.New("worker needs PostgreSQL (--database postgres://… or SEGSYNC_DATABASE_URL): " +
			"an SQLite store belongs to one process, and segsync serve runs the workers itself")
	}
	log := newLogger(cfg, io.Stderr)
	stopRuntime, err := startRuntime(cfg, io.Getenv, log)
	if err != nil {
		return err
	}
	defer stopRuntime()

	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	lim, closeLimiter := sharedLimiter(cfg, st, log)
	defer closeLimiter()
	sec, err := newSecurity(ctx, cfg, st, log, withLimiter(engineClientConfig(cfg, nil, log), lim))
	if err != nil {
		return err
	}
	eng := newEngine(cfg, st, sec, log, nil)
	eng.Runner.Workers = *workers
	log.Info("worker started", "workers", *workers, "max_conns", cfg.MaxConns)
	if err := eng.Runner.Run(ctx); err != nil {
		return fmt.Errorf("running jobs: %w", err)
	}
	log.Info("stopped")
	return nil
}

// sharedLimiter returns the Mailchimp connection limiter that every process
// on a PostgreSQL store shares (package limiter), and a function that gives
// this process's slots back; call it after the runs stopped. On SQLite, where
// one process owns the store, it returns nil: the process-local limiter is
// enough.
func sharedLimiter(cfg config.Config, st *sqldb.DB, log *slog.Logger) (mailchimp.Limiter, func()) {
	if st.SQLDialect() != sqldb.Postgres {
		return nil, func() {}
	}
	l := limiter.New(st, limiter.Config{Max: cfg.MaxConns, Log: log})
	log.Info("Mailchimp connection limit shared through the database", "max_conns", l.Max(), "owner", l.Owner())
	return l, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Close(ctx); err != nil {
			log.Warn("giving the connection slots back (they expire by themselves)", "err", err)
		}
	}
}

// withLimiter makes every Mailchimp client built with base use lim, when
// lim is not nil.
func withLimiter(base func(*mailchimp.Config), lim mailchimp.Limiter) func(*mailchimp.Config) {
	if lim == nil {
		return base
	}
	return func(c *mailchimp.Config) {
		if base != nil {
			base(c)
		}
		c.Limiter = lim
	}
}
