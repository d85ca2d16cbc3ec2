package mailchimp

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics receives one observation per attempt, per retry decision and per
// limiter wait. Implementations must be safe for concurrent use. Endpoint is
// a route template such as "PUT /lists/{list_id}/members/{hash}"; status is
// the HTTP status, or 0 when no answer arrived (timeout, dropped connection).
type Metrics interface {
	ObserveRequest(endpoint string, status int, d time.Duration)
	ObserveRetry(endpoint, reason string)
	ObserveLimiterWait(d time.Duration)
}

type noMetrics struct{}

func (noMetrics) ObserveRequest(string, int, time.Duration) {}
func (noMetrics) ObserveRetry(string, string)               {}
func (noMetrics) ObserveLimiterWait(time.Duration)          {}

// PrometheusMetrics exports the client's observations:
//
//	segsync_mailchimp_requests_total{endpoint,status}
//	segsync_mailchimp_request_duration_seconds{endpoint}
//	segsync_mailchimp_rate_limited_total{endpoint}
//	segsync_mailchimp_retries_total{endpoint,reason}
//	segsync_mailchimp_limiter_wait_seconds
type PrometheusMetrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	retries     *prometheus.CounterVec
	wait        prometheus.Histogram
}

// NewPrometheusMetrics registers the collectors with reg. Registering twice
// with the same registry reuses the collectors already there, so several
// clients may each call it.
func NewPrometheusMetrics(reg prometheus.Registerer) (*PrometheusMetrics, error) {
	m := &PrometheusMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segsync_mailchimp_requests_total",
			Help: "Mailchimp API attempts by endpoint and HTTP status (0: no answer).",
		}, []string{"endpoint", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "segsync_mailchimp_request_duration_seconds",
			Help:    "Latency of Mailchimp API attempts.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"endpoint"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segsync_mailchimp_rate_limited_total",
			Help: "Mailchimp answers that signalled overload (429, or 403 without a problem document).",
		}, []string{"endpoint"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segsync_mailchimp_retries_total",
			Help: "Mailchimp API retries by endpoint and reason.",
		}, []string{"endpoint", "reason"}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "segsync_mailchimp_limiter_wait_seconds",
			Help:    "Time spent waiting for a per-account connection slot.",
			Buckets: []float64{.001, .01, .05, .1, .5, 1, 5, 30},
		}),
	}
	var err error
	m.requests = register(reg, m.requests, &err)
	m.duration = register(reg, m.duration, &err)
	m.rateLimited = register(reg, m.rateLimited, &err)
	m.retries = register(reg, m.retries, &err)
	m.wait = register(reg, m.wait, &err)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if *errp != nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		*errp = err
	}
	return c
}

// ObserveRequest implements Metrics.
func (m *PrometheusMetrics) ObserveRequest(endpoint string, status int, d time.Duration) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(endpoint).Observe(d.Seconds())
	if status == 429 {
		m.rateLimited.WithLabelValues(endpoint).Inc()
	}
}

// ObserveRetry implements Metrics.
func (m *PrometheusMetrics) ObserveRetry(endpoint, reason string) {
	m.retries.WithLabelValues(endpoint, reason).Inc()
	if reason == "forbidden_no_body" {
		m.rateLimited.WithLabelValues(endpoint).Inc()
	}
}

// ObserveLimiterWait implements Metrics.
func (m *PrometheusMetrics) ObserveLimiterWait(d time.Duration) { m.wait.Observe(d.Seconds()) }
