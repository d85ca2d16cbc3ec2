package config

import (
	"strings"
	"testing"
)

func TestValidateRefreshSchedule(t *testing.T) {
	t.Parallel()
	c := Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, bad := range []string{"nightly", "CRON_TZ=Europe/Oslo 0 2 * * *"} {
		c.RefreshSchedule = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "refresh schedule") {
			t.Errorf("refresh schedule %q: %v", bad, err)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{
		"200MiB": 200 << 20, "1GiB": 1 << 30, "300MB": 300_000_000, "0": 0, "": 0, "64MiB": 64 << 20,
	} {
		c := Defaults()
		c.MemoryLimit = in
		got, err := c.MemoryLimitBytes()
		if err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
	for _, bad := range []string{"lots", "-5MiB", "1MiB", "63MiB", "2EiB"} {
		c := Defaults()
		c.MemoryLimit = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "memory-limit") {
			t.Errorf("%q: %v, want a memory-limit error", bad, err)
		}
	}
}
