package httpapi

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/export"
	"github.com/segsync/segsync/internal/jobs"
	"github.com/segsync/segsync/internal/store"
)

func (s *Server) exports() (*export.Service, error) {
	if s.deps.Exports == nil {
		return nil, problemf(http.StatusServiceUnavailable, "exports are not configured on this server")
	}
	return s.deps.Exports, nil
}

func (s *Server) runner() (*jobs.Runner, error) {
	if s.deps.Runs == nil {
		return nil, problemf(http.StatusServiceUnavailable, "runs are not configured on this server")
	}
	return s.deps.Runs, nil
}

func (s *Server) listExports(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.exports()
	if err != nil {
		return err
	}
	es, err := svc.List(r.Context(), principal(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"exports": es})
}

func (s *Server) createExport(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.exports()
	if err != nil {
		return err
	}
	var in export.Input
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	e, err := svc.Create(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/exports/"+strconv.FormatInt(e.ID, 10))
	return writeJSON(w, http.StatusCreated, e)
}

func (s *Server) getExport(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.exports()
	if err != nil {
		return err
	}
	id, err := pathID(r, "export")
	if err != nil {
		return err
	}
	e, err := svc.Get(r.Context(), principal(r), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (s *Server) updateExport(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.exports()
	if err != nil {
		return err
	}
	id, err := pathID(r, "export")
	if err != nil {
		return err
	}
	var in export.Input
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	e, err := svc.Update(r.Context(), principal(r), id, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (s *Server) deleteExport(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.exports()
	if err != nil {
		return err
	}
	id, err := pathID(r, "export")
	if err != nil {
		return err
	}
	if err := svc.Delete(r.Context(), principal(r), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// startRun answers POST /api/v1/exports/{id}/runs: 202 with the queued run
// (an already queued run of the same kind when there is one: single flight).
func (s *Server) startRun(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.exports()
	if err != nil {
		return err
	}
	rn, err := s.runner()
	if err != nil {
		return err
	}
	id, err := pathID(r, "export")
	if err != nil {
		return err
	}
	var in struct {
		DryRun     bool `json:"dry_run"`
		FullResync bool `json:"full_resync"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &in); err != nil {
			return err
		}
	}
	p := principal(r)
	e, err := svc.Get(r.Context(), p, id)
	if err != nil {
		return err
	}
	if err := svc.MayRun(r.Context(), p, e); err != nil {
		return err
	}
	if in.FullResync {
		if err := rn.RequestFullResync(r.Context(), e.ID); err != nil {
			return err
		}
	}
	run, created, err := rn.Enqueue(r.Context(), e.ID, store.TriggerManual, in.DryRun, p.Email)
	if err != nil {
		return err
	}
	if created && s.deps.Audit != nil {
		_ = s.deps.Audit.Record(r.Context(), p.Actor(), audit.RunStart, "run", run.ID, map[string]any{"export_id": e.ID, "dry_run": in.DryRun, "full_resync": in.FullResync})
	}
	w.Header().Set("Location", "/api/v1/runs/"+strconv.FormatInt(run.ID, 10))
	return writeJSON(w, http.StatusAccepted, run)
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.exports()
	if err != nil {
		return err
	}
	id, err := pathID(r, "export")
	if err != nil {
		return err
	}
	if _, err := svc.Get(r.Context(), principal(r), id); err != nil {
		return err
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return problemf(http.StatusBadRequest, "limit must be a number from 1 to 1000")
		}
	}
	runs, err := s.deps.Store.ListRuns(r.Context(), id, limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"runs": runs})
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "run")
	if err != nil {
		return err
	}
	run, err := s.deps.Store.GetRun(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, run)
}

// runRejections streams a run's rejections as JSON, or as CSV (email,
// customer_id, reason) when the client accepts text/csv.
func (s *Server) runRejections(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "run")
	if err != nil {
		return err
	}
	if _, err := s.deps.Store.GetRun(r.Context(), id); err != nil {
		return err
	}
	if strings.Contains(r.Header.Get("Accept"), "text/csv") {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="run-`+strconv.FormatInt(id, 10)+`-rejections.csv"`)
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"email", "customer_id", "reason", "kind"})
		err := s.deps.Store.StreamRejections(r.Context(), id, func(rj store.Rejection) error {
			return cw.Write([]string{rj.Email, rj.CustomerID, rj.Reason, rj.Kind})
		})
		cw.Flush()
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"rejections":[`))
	first := true
	err = s.deps.Store.StreamRejections(r.Context(), id, func(rj store.Rejection) error {
		b, err := json.Marshal(rj)
		if err != nil {
			return err
		}
		if !first {
			_, _ = w.Write([]byte(","))
		}
		first = false
		_, err = w.Write(b)
		return err
	})
	_, _ = w.Write([]byte("]}\n"))
	return err
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) error {
	rn, err := s.runner()
	if err != nil {
		return err
	}
	svc, err := s.exports()
	if err != nil {
		return err
	}
	id, err := pathID(r, "run")
	if err != nil {
		return err
	}
	run, err := s.deps.Store.GetRun(r.Context(), id)
	if err != nil {
		return err
	}
	p := principal(r)
	e, err := svc.Get(r.Context(), p, run.ExportID)
	if err != nil {
		return err
	}
	if err := svc.MayRun(r.Context(), p, e); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	if run.FinishedAt != nil {
		return problemf(http.StatusConflict, "run %d already ended (%s)", id, run.Status)
	}
	run, err = rn.Cancel(r.Context(), id)
	if err != nil {
		return err
	}
	if s.deps.Audit != nil {
		_ = s.deps.Audit.Record(r.Context(), p.Actor(), audit.RunCancel, "run", id, map[string]any{"export_id": run.ExportID})
	}
	return writeJSON(w, http.StatusAccepted, run)
}
