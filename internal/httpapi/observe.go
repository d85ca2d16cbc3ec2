package httpapi

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/segsync/segsync/internal/metrics"
)

// httpMetrics are the request counters and latencies by route pattern.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	requests, err := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "segsync_http_requests_total",
		Help: "HTTP requests by route pattern, method and status.",
	}, []string{"route", "method", "status"}))
	if err != nil {
		return nil, err
	}
	duration, err := metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "segsync_http_request_duration_seconds",
		Help:    "HTTP request latency by route pattern and method.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"route", "method"}))
	if err != nil {
		return nil, err
	}
	return &httpMetrics{requests: requests, duration: duration}, nil
}

// observe wraps the mux: it recovers panics, answers unknown routes with
// problem+json, and logs and counts every request by its route pattern. The
// request reaches the mux unchanged, so r.Pattern is set once it returns.
func (s *Server) observe(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "panic serving request", "method", r.Method, "route", r.Pattern, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !sw.wrote {
					writeProblem(sw, problemf(http.StatusInternalServerError, "an internal error occurred; it was logged"))
				}
			}
			s.record(r, sw, time.Since(start))
		}()
		if _, pattern := mux.Handler(r); pattern == "" {
			s.unmatched(sw, r, mux)
			return
		}
		mux.ServeHTTP(sw, r)
	})
}

// unmatched answers a request that no route matches: the mux's own 404 and
// 405 become problems (keeping Allow); its redirects pass through.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request, mux *http.ServeMux) {
	capture := &captureWriter{header: http.Header{}}
	mux.ServeHTTP(capture, r)
	switch capture.status {
	case http.StatusNotFound:
		writeProblem(w, problemf(http.StatusNotFound, "no route for %s", r.URL.Path))
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", capture.header.Get("Allow"))
		writeProblem(w, problemf(http.StatusMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
	default:
		for k, v := range capture.header {
			w.Header()[k] = v
		}
		w.WriteHeader(capture.status)
	}
}

func (s *Server) record(r *http.Request, sw *statusWriter, d time.Duration) {
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(route, r.Method).Observe(d.Seconds())
	level := s.log.Info
	if route == "GET /healthz" || route == "GET /readyz" || route == "GET /metrics" {
		level = s.log.Debug
	}
	// Never the body, the query or headers; and the path only when no route
	// matched, since a path may hold a customer id (or an e-mail used as one).
	attrs := []any{"method", r.Method, "route", route, "status", status,
		"duration", d.Round(time.Microsecond), "bytes", sw.bytes}
	if route == "unmatched" {
		attrs = append(attrs, "path", r.URL.Path)
	}
	level("request", attrs...)
}

// statusWriter records the status and the size of the response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.status = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status = http.StatusOK
		w.wrote = true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (deadlines, flush).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// captureWriter swallows the mux's plain-text error answers.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return len(b), nil
}
