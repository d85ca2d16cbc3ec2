package cli

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
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

// TestStartCPUProfile: --cpu-profile writes a pprof file (gzipped) once
// stopped, nothing without a path, and a clear error for a bad path.
func TestStartCPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pgo")
	stop, err := startCPUProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile: %d bytes, %v; want a gzipped pprof file", len(b), err)
	}
	stop, err = startCPUProfile("")
	if err != nil || stop() != nil {
		t.Fatalf("no path: %v", err)
	}
	if _, err := startCPUProfile(filepath.Join(t.TempDir(), "missing", "cpu.pgo")); err == nil || !strings.Contains(err.Error(), "cpu profile") {
		t.Fatalf("bad path: %v, want a cpu profile error", err)
	}
}
