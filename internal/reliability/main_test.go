package reliability

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/segsync/segsync/internal/cli"
)

// serveEnv holds the command line of a `segsync serve` child process. The
// test binary is that process when it is set: the real command, wiring and
// all, in a process the test can SIGKILL.
const serveEnv = "SEGSYNC_RELIABILITY_SERVE"

// TestMain lets the test binary play the other processes of the suite:
// a `segsync serve` (serveEnv) and a process holding SQLite's write lock
// (lockEnv).
func TestMain(m *testing.M) {
	if path := os.Getenv(lockEnv); path != "" {
		os.Exit(lockMain(path))
	}
	if args := os.Getenv(serveEnv); args != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Run(ctx, strings.Split(args, "\x1f"), cli.StdIO())
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}
