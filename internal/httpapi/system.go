package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// healthz reports that the process is up; it touches nothing else.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports whether the store answers and is fully migrated.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Store == nil {
		return problemf(http.StatusServiceUnavailable, "no store is configured")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.deps.Store.Ready(ctx); err != nil {
		s.log.WarnContext(r.Context(), "not ready", "err", err)
		return problemf(http.StatusServiceUnavailable, "the store is not ready")
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "store": s.deps.Store.Dialect()})
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	promhttp.HandlerFor(s.deps.Registry, promhttp.HandlerOpts{Registry: s.deps.Registry}).ServeHTTP(w, r)
	return nil
}
