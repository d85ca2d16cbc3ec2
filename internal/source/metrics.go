package source

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pulls' Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	pulls    *prometheus.CounterVec
	rows     *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segsync_pulls_total", Help: "Finished source pulls by source and final status.",
		}, []string{"source", "status"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segsync_pull_rows_total", Help: "Rows of source pulls by outcome (received, new, updated, unchanged, removed, rejected).",
		}, []string{"source", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "segsync_pull_duration_seconds", Help: "Duration of source pulls.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 16),
		}, []string{"source"}),
	}
	if reg != nil {
		reg.MustRegister(m.pulls, m.rows, m.duration)
	}
	return m
}

func (m *Metrics) finished(source, status string, c map[string]int64, d time.Duration) {
	if m == nil {
		return
	}
	m.pulls.WithLabelValues(source, status).Inc()
	for k, v := range c {
		m.rows.WithLabelValues(source, k).Add(float64(v))
	}
	m.duration.WithLabelValues(source).Observe(d.Seconds())
}
