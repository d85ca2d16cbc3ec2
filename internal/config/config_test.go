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
