package syncer

import (
	"sync"
	"time"

	"github.com/segsync/segsync/internal/store"
)

// Phases of a run, as store.RunTimings and the metric label "phase" name
// them.
const (
	PhasePlan          = "plan"
	PhaseStatusRefresh = "status_refresh"
	PhaseSend          = "send"
	PhaseRecord        = "record"
	PhaseIdle          = "idle"
)

type phase int

const (
	phasePlan phase = iota
	phaseStatusRefresh
	phaseSend
	phaseRecord
	phaseIdle
	numPhases
)

var phaseNames = [numPhases]string{PhasePlan, PhaseStatusRefresh, PhaseSend, PhaseRecord, PhaseIdle}

// phaseClock measures the wall time of each phase of one attempt of a run.
// Spans of one phase may overlap (several calls waiting for a connection at
// once): a phase's time is the union of its spans, so it never exceeds the
// attempt's wall time. Open spans count up to now, so a heartbeat shows a
// long phase as it goes.
type phaseClock struct {
	mu    sync.Mutex
	done  [numPhases]time.Duration
	open  [numPhases]int
	since [numPhases]time.Time
}

// begin opens a span of phase ph; the returned function closes it.
func (c *phaseClock) begin(ph phase) (end func()) {
	c.mu.Lock()
	if c.open[ph] == 0 {
		c.since[ph] = time.Now()
	}
	c.open[ph]++
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.open[ph]--
			if c.open[ph] == 0 {
				c.done[ph] += time.Since(c.since[ph])
			}
			c.mu.Unlock()
		})
	}
}

// durations returns each phase's time so far, open spans included.
func (c *phaseClock) durations() [numPhases]time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.done
	for ph := range out {
		if c.open[ph] > 0 {
			out[ph] += time.Since(c.since[ph])
		}
	}
	return out
}

// timings returns the clock's durations as store.RunTimings.
func (c *phaseClock) timings() store.RunTimings {
	d := c.durations()
	ms := func(ph phase) int64 { return d[ph].Milliseconds() }
	return store.RunTimings{PlanMS: ms(phasePlan), StatusRefreshMS: ms(phaseStatusRefresh), SendMS: ms(phaseSend),
		RecordMS: ms(phaseRecord), IdleMS: ms(phaseIdle)}
}
