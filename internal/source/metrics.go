package source

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/segsync/segsync/internal/metrics"
)

// Metrics are the pulls' Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	pulls    *prometheus.CounterVec
	rows     *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the pull metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	var m Metrics
	var err error
	if m.pulls, err = metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "segsync_pulls_total", Help: "Pulls of data sources that ended, by source and status.",
	}, []string{"source", "status"})); err != nil {
		return nil, err
	}
	if m.rows, err = metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "segsync_pull_rows_total", Help: "Rows read from data sources, by source.",
	}, []string{"source"})); err != nil {
		return nil, err
	}
	if m.duration, err = metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "segsync_pull_duration_seconds", Help: "How long pulls took, by source.",
		Buckets: prometheus.ExponentialBuckets(0.1, 2.5, 10),
	}, []string{"source"})); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *Metrics) observe(source, status string, rows int64, d time.Duration) {
	if m == nil {
		return
	}
	m.pulls.WithLabelValues(source, status).Inc()
	m.rows.WithLabelValues(source).Add(float64(rows))
	m.duration.WithLabelValues(source).Observe(d.Seconds())
}
