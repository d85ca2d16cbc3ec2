package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/config"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
)

// keyList is a repeatable --api-key flag (the environment variable may hold
// several keys separated by commas).
type keyList []string

func (k *keyList) String() string { return strings.Join(*k, ",") }

func (k *keyList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if i := strings.LastIndexByte(s, '-'); i <= 0 || i == len(s)-1 {
				return fmt.Errorf("API key %q: want <hex>-<dc>", s)
			}
			*k = append(*k, s)
		}
	}
	return nil
}

// runEmulator serves the Mailchimp emulator until ctx is cancelled. Its
// first lines on stdout are the API URL and the keys; logs go to stderr.
func runEmulator(ctx context.Context, io IO, args []string) error {
	cfg := config.Defaults()
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	var keys keyList
	fs.Var(&keys, "api-key", "API key of an account, <hex>-<dc> (repeatable; one is generated when none is given)")
	maxConns := fs.Int("max-conns", 10, "concurrent requests per account before 429")
	latency := fs.Duration("latency", 0, "added to every API request")
	perMember := fs.Duration("latency-per-member", 0, "added per member in batch calls")
	failRate := fs.Float64("fail-rate", 0, "share of API requests (0-1) answered with 500/503 or a dropped connection")
	seed := fs.Int64("seed", 1, "seed of the fault sequence")
	cfg.RegisterLog(fs)
	if err := parseFlags(fs, args, io); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.Stderr, "segsync emulator: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	if *failRate < 0 || *failRate > 1 {
		return fmt.Errorf("--fail-rate %v: want a value from 0 to 1", *failRate)
	}
	if *maxConns < 1 {
		return fmt.Errorf("--max-conns %d: want at least 1", *maxConns)
	}
	log := newLogger(cfg, io.Stderr)
	srv, err := emulator.Listen(*listen, emulator.Options{
		APIKeys:          keys,
		MaxConns:         *maxConns,
		Latency:          *latency,
		LatencyPerMember: *perMember,
		FailRate:         *failRate,
		Seed:             *seed,
		Logger:           log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "MAILCHIMP_API_URL=%s\n", srv.URL)
	for _, k := range srv.Keys() {
		fmt.Fprintf(io.Stdout, "MAILCHIMP_API_KEY=%s\n", k)
	}
	log.Info("Mailchimp emulator listening", "url", srv.URL, "oauth", srv.RootURL+"/oauth2/authorize",
		"max_conns", *maxConns, "fail_rate", *failRate)
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stopping the emulator: %w", err)
	}
	return nil
}
