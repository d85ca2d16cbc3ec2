package httpapi

import (
	"net/http"
	"strconv"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/store"
)

// listAudit pages through the audit log, newest first (admins only):
// ?limit (≤1000), ?before=<id> for the next page, and filters ?kind (one or
// more object types, comma separated: audit.Kinds), ?object_type,
// ?object_id, ?action.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	if err := auth.Require(principal(r), auth.ReadAudit); err != nil {
		return err
	}
	if s.deps.Audit == nil {
		return problemf(http.StatusServiceUnavailable, "the audit log is not configured on this server")
	}
	q := r.URL.Query()
	limit, _, err := pageParams(r, 100, 1000)
	if err != nil {
		return err
	}
	f := store.AuditFilter{Limit: limit, ObjectType: q.Get("object_type"), ObjectID: q.Get("object_id"), Action: q.Get("action")}
	if v := q.Get("kind"); v != "" {
		if f.Kinds, err = audit.ParseKinds("kind", v); err != nil {
			return err
		}
	}
	if v := q.Get("before"); v != "" {
		if f.BeforeID, err = strconv.ParseInt(v, 10, 64); err != nil || f.BeforeID <= 0 {
			return fielderr.New("before", "must be a positive whole number (an event id)")
		}
	}
	es, err := s.deps.Audit.List(r.Context(), f)
	if err != nil {
		return err
	}
	if es == nil {
		es = []store.AuditEvent{}
	}
	out := map[string]any{"events": es}
	if len(es) == limit {
		out["next_before"] = es[len(es)-1].ID
	}
	return writeJSON(w, http.StatusOK, out)
}

// recordAudit appends an event by the caller of r to the audit log, for
// changes the handlers make themselves (profiles: audit.ProfileImport and
// ProfileDelete); the services record their own (exports, segments,
// connections, users, sources, erasures). Detail must not hold secrets; keys that look
// like secrets are dropped anyway. A failure is logged, not returned: the
// change itself has happened.
func (s *Server) recordAudit(r *http.Request, action, objectType string, objectID any, detail map[string]any) {
	if s.deps.Audit == nil {
		return
	}
	_ = s.deps.Audit.Record(r.Context(), principal(r).Actor(), action, objectType, objectID, detail)
}
