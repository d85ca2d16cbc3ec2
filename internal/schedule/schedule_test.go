package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"refresh", "off", "0 2 * * *", "*/15 8-18 * * 1-5", " 0 6 * * 1 ", "@daily"} {
		if err := Validate(s); err != nil {
			t.Errorf("Validate(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", " ", "daily", "Refresh", "* * *", "61 * * * *", "0 2 * * * *"} {
		if err := Validate(s); err == nil {
			t.Errorf("Validate(%q) accepted", s)
		}
	}
	for _, kind := range []string{Refresh, Off} {
		if s, err := Parse(kind); err != nil || s.Kind != kind {
			t.Errorf("Parse(%q) = %+v, %v", kind, s, err)
		}
	}
}

// A time zone prefix is refused with a clear error: the cron library would
// read the expression in that zone (schedules are UTC), and without an
// expression after it, it panics.
func TestTimeZonePrefixRefused(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"CRON_TZ=Europe/Berlin 0 2 * * *", "TZ=UTC 0 2 * * *", "TZ=UTC", "CRON_TZ=Asia/Tokyo", "  TZ=UTC 0 2 * * *"} {
		_, err := Parse(s)
		if err == nil || !strings.Contains(err.Error(), "time zone") {
			t.Errorf("Parse(%q): %v, want a time zone refusal", s, err)
		}
	}
}

func TestNextIsUTC(t *testing.T) {
	t.Parallel()
	c, err := ParseCron("0 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	oslo := time.FixedZone("Oslo", 3600)
	// 01:30 UTC given in another zone: the next 02:00 UTC is half an hour on.
	got := c.Next(time.Date(2026, 3, 1, 2, 30, 0, 0, oslo))
	if want := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("Next = %v, want %v", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"refresh", "off", "0 2 * * *", "TZ=UTC", "CRON_TZ=X 1 2 3 4 5", "@every 1h", "*/0 * * * *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := Parse(s) // never panics
		if err != nil {
			return
		}
		if sc.Kind == KindCron {
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			if n := sc.Cron.Next(at); !n.IsZero() && !n.After(at) {
				t.Fatalf("%q: Next(%v) = %v", s, at, n)
			}
		}
	})
}
