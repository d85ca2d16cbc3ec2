package cli

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"

	"github.com/segsync/segsync/internal/config"
)

// gcPercent reads the collector's GOGC.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// TestApplyMemoryLimit: serve's memory limit reaches the runtime, GOGC or
// GOMEMLIMIT in the environment keep it away, and restore undoes it.
func TestApplyMemoryLimit(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	limit0, percent0 := debug.SetMemoryLimit(-1), gcPercent()
	cfg := config.Defaults()
	cfg.MemoryLimit = "300MiB"

	restore := applyMemoryLimit(cfg, func(string) string { return "" }, log)
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Errorf("limit %d, want %d", got, 300<<20)
	}
	if got := gcPercent(); got != gcPercentUnderLimit {
		t.Errorf("GOGC %d, want %d", got, gcPercentUnderLimit)
	}
	restore()
	if got, p := debug.SetMemoryLimit(-1), gcPercent(); got != limit0 || p != percent0 {
		t.Errorf("after restore: limit %d, GOGC %d; want %d, %d", got, p, limit0, percent0)
	}

	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		restore := applyMemoryLimit(cfg, func(k string) string {
			if k == env {
				return "150"
			}
			return ""
		}, log)
		if got, p := debug.SetMemoryLimit(-1), gcPercent(); got != limit0 || p != percent0 {
			t.Errorf("%s set: limit %d, GOGC %d; want the runtime's own", env, got, p)
		}
		restore()
	}

	cfg.MemoryLimit = "0"
	applyMemoryLimit(cfg, func(string) string { return "" }, log)()
	if got, p := debug.SetMemoryLimit(-1), gcPercent(); got != limit0 || p != percent0 {
		t.Errorf("limit 0: limit %d, GOGC %d; want the runtime's own", got, p)
	}
}
