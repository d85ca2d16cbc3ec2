package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/segsync/segsync/internal/config"
	"github.com/segsync/segsync/internal/httpapi"
	"github.com/segsync/segsync/internal/metrics"
	"github.com/segsync/segsync/internal/store/postgres"
	"github.com/segsync/segsync/internal/store/sqldb"
	"github.com/segsync/segsync/internal/store/sqlite"
	"github.com/segsync/segsync/internal/web"
)

// runServe runs the web UI, the REST API, the scheduler and the workers in
// one process until ctx is cancelled (SIGINT, SIGTERM).
func runServe(ctx context.Context, io IO, args []string) error {
	cfg := config.Defaults()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.RegisterServer(fs)
	if err := parseFlags(fs, args, io); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.Stderr, "serve takes no arguments, got %q\n", fs.Args())
		return errUsage
	}
	if err := cfg.Validate(); err != nil {
		return err
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
	reg := metrics.NewRegistry()

	// Wiring point: the credential vault, users and the first admin
	// (auth), connections, and the job queue with its scheduler and
	// workers (export/jobs) are built here and handed to httpapi.Deps.

	// On PostgreSQL the per-account connection limit is shared with every
	// other process; its slots are given back after the workers stopped.
	lim, closeLimiter := sharedLimiter(cfg, st, log)
	defer closeLimiter()
	sec, err := newSecurity(ctx, cfg, st, log, withLimiter(engineClientConfig(cfg, reg, log), lim))
	if err != nil {
		return err
	}
	eng := newEngine(cfg, st, sec, log, reg)
	defer eng.start(ctx)() // workers and scheduler, stopped on the way out

	api := httpapi.New(httpapi.Deps{
		Store:       st,
		Log:         log,
		Registry:    reg,
		Loopback:    cfg.IsLoopback(),
		Auth:        sec.Auth,
		Connections: sec.Connections,
		Audit:       sec.Audit,
		Exports:     eng.Exports,
		Runs:        eng.Runner,
		Sources:     eng.Sources,
		Erasures:    eng.Erasures,
		Hooks:       eng.Hooks,
		PublicURL:   publicURL(cfg),
	})

	// The web UI serves its pages and hands every other path to the API.
	ui, err := web.New(web.Deps{API: api.Handler(), Log: log, CountProfiles: st.CountProfiles,
		OAuthEnabled: sec.Connections.OAuthEnabled, RefreshSchedule: cfg.RefreshSchedule})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	// Security headers on every answer; pages set their own policy on top.
	return serveHTTP(ctx, ln, httpapi.SecurityHeaders(ui.Handler()), cfg.ShutdownTimeout, log)
}

// openStore opens PostgreSQL when a database URL is given, else SQLite in
// the data directory; both migrate on open.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (*sqldb.DB, error) {
	if cfg.DatabaseURL != "" {
		db, err := postgres.Open(ctx, cfg.DatabaseURL, log)
		if err != nil {
			return nil, fmt.Errorf("opening the store: %w", err)
		}
		log.Info("store opened", "dialect", "postgres")
		return db, nil
	}
	db, err := sqlite.Open(ctx, cfg.DataDir, log)
	if err != nil {
		return nil, fmt.Errorf("opening the store in %s: %w", cfg.DataDir, err)
	}
	log.Info("store opened", "dialect", "sqlite", "data", cfg.DataDir)
	return db, nil
}

// serveHTTP serves h on ln until ctx is cancelled, then stops accepting
// requests and waits up to grace for those in flight.
//
// The server-wide read and write timeouts are generous rather than absent;
// handlers that stream large bodies (profile import) lift them for their own
// request with http.ResponseController.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	log.Info("listening", "addr", "http://"+ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutting down HTTP: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", err)
	}
	log.Info("stopped")
	return nil
}
