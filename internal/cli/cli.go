// Package cli holds segsync's subcommands, one file each. Run dispatches the
// command line to them; the commands wire config, logger, store and clients
// together explicitly and hand them to the packages that do the work.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/segsync/segsync/internal/config"
)

// IO is where a command reads and writes; tests replace it.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// StdIO is the process's own standard streams and environment.
func StdIO() IO {
	return IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

type command struct {
	summary string
	run     func(ctx context.Context, io IO, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"serve":       {"web UI, REST API, scheduler and workers in one process", runServe},
		"worker":      {"run workers and the scheduler without the web UI (PostgreSQL)", runWorker},
		"demo":        {"the whole product on the embedded default, with the emulator", runDemo},
		"emulator":    {"the Mailchimp emulator on its own", runEmulator},
		"user":        {"manage users directly in the store (user create)", runUser},
		"token":       {"create API tokens directly in the store (token create)", runToken},
		"profiles":    {"import and inspect profiles through the REST API", runProfiles},
		"segments":    {"manage segments through the REST API", runSegments},
		"connections": {"manage connections through the REST API", runConnections},
		"exports":     {"manage and run exports through the REST API", runExports},
		"runs":        {"inspect runs through the REST API", runRuns},
		"sources":     {"manage and pull data sources through the REST API", runSources},
		"refresh":     {"start a system refresh (pull the sources, then run the exports)", runRefresh},
	}
}

// errUsage means the command line was wrong; the usage was already printed.
var errUsage = errors.New("usage")

// Run executes one command line and returns the process exit code.
func Run(ctx context.Context, args []string, io IO) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(io.Stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(io.Stderr, "segsync: unknown command %q\n\n", args[0])
		usage(io.Stderr, cmds)
		return 2
	}
	if err := cmd.run(ctx, io, args[1:]); err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(io.Stderr, "segsync %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: segsync <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set as SEGSYNC_<FLAG> (e.g. SEGSYNC_LISTEN). Run 'segsync <command> -h' for its flags.")
}

// parseFlags parses args into fs and then fills unset flags from the environment.
func parseFlags(fs *flag.FlagSet, args []string, io IO) error {
	fs.SetOutput(io.Stderr)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if err := config.ApplyEnv(fs, io.Getenv); err != nil {
		return err
	}
	return nil
}

// newLogger builds the process's one logger from the config.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
