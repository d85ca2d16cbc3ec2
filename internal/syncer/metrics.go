package syncer

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	runs     *prometheus.CounterVec
	contacts *prometheus.CounterVec
	duration *prometheus.HistogramVec
	phases   *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segsync_runs_total", Help: "Finished export runs by final status.",
		}, []string{"status"}),
		contacts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segsync_contacts_total", Help: "Contacts acknowledged by Mailchimp, by kind of change.",
		}, []string{"kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "segsync_run_duration_seconds", Help: "Duration of export runs.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 16),
		}, []string{"status"}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "segsync_run_phase_seconds", Help: "Wall time of each phase of a run attempt: plan, status_refresh, send, record (overlaps send), idle (calls waiting for the account's connections).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14),
		}, []string{"phase"}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.contacts, m.duration, m.phases)
	}
	return m
}

func (m *Metrics) contact(kind string) {
	if m != nil {
		m.contacts.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) observeRun(res Result, err error, d time.Duration, phases [numPhases]time.Duration) {
	if m == nil {
		return
	}
	status := res.Status
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		status = "cancelled"
	default:
		status = "failed"
	}
	m.runs.WithLabelValues(status).Inc()
	m.duration.WithLabelValues(status).Observe(d.Seconds())
	for ph, pd := range phases {
		m.phases.WithLabelValues(phaseNames[ph]).Observe(pd.Seconds())
	}
}
