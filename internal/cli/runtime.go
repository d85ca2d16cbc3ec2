package cli

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/segsync/segsync/internal/config"
)

// startRuntime applies cfg's runtime settings to a process that runs
// exports (serve, worker): the memory limit and the CPU profile. Call the
// returned function on the way out.
func startRuntime(cfg config.Config, getenv func(string) string, log *slog.Logger) (stop func(), err error) {
	restore := applyMemoryLimit(cfg, getenv, log)
	stopProfile, err := startCPUProfile(cfg.CPUProfile)
	if err != nil {
		restore()
		return nil, err
	}
	return func() {
		if err := stopProfile(); err != nil {
			log.Error("writing the CPU profile", "err", err)
		}
		restore()
	}, nil
}

// gcPercentUnderLimit is the collector's GOGC while a memory limit holds:
// the heap may grow to five times what the last collection kept, or to the
// limit, whichever comes first. With Go's default (100) a first export
// of 1M contacts collected 60-80 times over a live heap of 50-55 MB,
// about 4.5 s of its CPU (gctrace, docs/benchmarks.md "Eighteenth round").
const gcPercentUnderLimit = 400

// applyMemoryLimit gives the collector cfg's memory limit and lets it
// collect less often below it; it returns what undoes that. GOGC or
// GOMEMLIMIT in the environment win: the runtime applied them at start and
// they are left alone.
func applyMemoryLimit(cfg config.Config, getenv func(string) string, log *slog.Logger) (restore func()) {
	limit, _ := cfg.MemoryLimitBytes() // Validate checked it
	if limit == 0 {
		return func() {}
	}
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		log.Info("memory limit: GOGC or GOMEMLIMIT is set, --memory-limit is not applied")
		return func() {}
	}
	oldLimit := debug.SetMemoryLimit(limit)
	oldPercent := debug.SetGCPercent(gcPercentUnderLimit)
	return func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	}
}

// startCPUProfile writes a CPU profile of the process to path until the
// returned function is called (nothing when path is empty).
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		return nil
	}, nil
}
