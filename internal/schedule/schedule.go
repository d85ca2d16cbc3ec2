// Package schedule is what a schedule of an export or a data source means:
// "refresh" (run with the system refresh), "off" (on demand only) or a
// 5-field cron expression read in UTC. The system refresh itself runs on a
// cron expression (SEGSYNC_REFRESH_SCHEDULE).
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// The schedules that are not cron expressions.
const (
	Refresh = "refresh"
	Off     = "off"
)

// Cron is a parsed cron expression.
type Cron struct{ s cron.Schedule }

// Next is the first time the expression fires after t, in UTC.
func (c Cron) Next(t time.Time) time.Time { return c.s.Next(t.UTC()) }

// ParseCron parses a 5-field cron expression (minute hour day-of-month
// month day-of-week) or a descriptor such as @daily, read in UTC. A time
// zone prefix (CRON_TZ=…, TZ=…) is refused: schedules are always UTC, and
// the cron library would otherwise read the expression in that zone (or
// panic on a prefix without an expression).
func ParseCron(expr string) (Cron, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return Cron{}, errors.New("empty cron expression")
	}
	if strings.Contains(expr, "=") {
		return Cron{}, fmt.Errorf("%q: time zone prefixes (CRON_TZ=, TZ=) are not supported; schedules are in UTC", expr)
	}
	s, err := cron.ParseStandard(expr)
	if err != nil {
		return Cron{}, fmt.Errorf("%q: %w", expr, err)
	}
	return Cron{s}, nil
}

// Schedule is a parsed schedule of an export or a source.
type Schedule struct {
	// Kind is Refresh, Off or "cron".
	Kind string
	// Cron is the expression when Kind is "cron".
	Cron Cron
}

// KindCron is the Kind of a cron schedule.
const KindCron = "cron"

// Parse parses a schedule: "refresh", "off" or a cron expression (see
// ParseCron).
func Parse(s string) (Schedule, error) {
	switch s {
	case Refresh, Off:
		return Schedule{Kind: s}, nil
	}
	c, err := ParseCron(s)
	if err != nil {
		return Schedule{}, fmt.Errorf("not %q, %q or a 5-field cron expression: %w", Refresh, Off, err)
	}
	return Schedule{Kind: KindCron, Cron: c}, nil
}

// Validate checks a schedule (see Parse).
func Validate(s string) error {
	_, err := Parse(s)
	return err
}
