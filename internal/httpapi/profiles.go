package httpapi

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/profile"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
)

// importProfiles answers POST /api/v1/profiles/import?key&mode. The body,
// CSV or NDJSON of any size, is streamed into the importer; the server's
// read and write deadlines are lifted for this request so that a large file
// is not cut off, while the client's disconnect still ends the import.
func (s *Server) importProfiles(w http.ResponseWriter, r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	format, err := profile.FormatFromContentType(ct)
	if err != nil {
		if ct == "" {
			ct = "none"
		}
		return problemf(http.StatusUnsupportedMediaType, "content type %s is not supported; send text/csv (with a header row) or application/x-ndjson", ct)
	}
	q := r.URL.Query()
	var errs fielderr.List
	key := q.Get("key")
	if key == "" {
		key = profile.DefaultKey
	}
	if !attrjson.ValidName(key) {
		errs.Add("key", fmt.Sprintf("%q is not a valid attribute name (%s)", key, attrjson.NamePattern))
	}
	mode, err := profile.ParseMode(q.Get("mode"))
	if err != nil {
		errs.Add("mode", fmt.Sprintf("%q is not upsert or replace", q.Get("mode")))
	}
	if err := errs.Err(); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	for _, lift := range []func(time.Time) error{rc.SetReadDeadline, rc.SetWriteDeadline} {
		if err := lift(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return fmt.Errorf("lifting the deadlines of an import: %w", err)
		}
	}
	var src io.Reader = r.Body
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return problemf(http.StatusBadRequest, "the body is not gzip data: %v", err)
		}
		defer zr.Close()
		src = zr
	default:
		return problemf(http.StatusUnsupportedMediaType, "content encoding %q is not supported; send gzip or none", enc)
	}
	// Read errors (a broken upload, corrupt gzip) are the client's.
	body := &recordingReader{r: src}
	rep, err := s.importer.Import(r.Context(), body, profile.Options{Format: format, Key: key, Mode: mode})
	s.recordImport(r, rep, err, map[string]any{"format": format, "id_attribute": key, "mode": mode})
	if err != nil {
		if body.err != nil && r.Context().Err() == nil {
			// The request itself broke off (bad chunking, a proxy timeout):
			// the client's fault, and what was read so far is imported.
			return problemf(http.StatusBadRequest, "reading the request body after %d rows: %v", rep.Received, body.err)
		}
		return fmt.Errorf("importing profiles (%d rows read): %w", rep.Received, err)
	}
	s.log.InfoContext(r.Context(), "profiles imported", "format", format, "mode", mode,
		"received", rep.Received, "imported", rep.Imported, "updated", rep.Updated,
		"unchanged", rep.Unchanged, "rejected", rep.Rejected, "deleted", rep.Deleted)
	return writeJSON(w, http.StatusOK, rep)
}

// listProfiles answers GET /api/v1/profiles?limit&cursor.
func (s *Server) listProfiles(w http.ResponseWriter, r *http.Request) error {
	limit, cursor, err := pageParams(r, 100, 1000)
	if err != nil {
		return err
	}
	page, err := s.deps.Store.ListProfiles(r.Context(), limit, cursor)
	if err != nil {
		return cursorError(err, cursor)
	}
	if page.Profiles == nil {
		page.Profiles = []store.Profile{}
	}
	return writeJSON(w, http.StatusOK, page)
}

// getProfile answers GET /api/v1/profiles/{customer_id}.
func (s *Server) getProfile(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("customer_id")
	p, err := s.deps.Store.GetProfile(r.Context(), id)
	if err != nil {
		return err
	}
	srcs, err := s.deps.Store.ProfileSources(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		store.Profile
		Sources map[string]string `json:"sources"`
	}{p, srcs})
}

// deleteProfile answers DELETE /api/v1/profiles/{customer_id}; with
// ?erase=true (admins) it is a right-to-erasure request: 202 with the
// erasure, carried out in the background (package erasure).
func (s *Server) deleteProfile(w http.ResponseWriter, r *http.Request) error {
	erase := false
	switch v := r.URL.Query().Get("erase"); v {
	case "", "false":
	case "true":
		erase = true
	default:
		return fielderr.New("erase", "must be true or false")
	}
	if erase {
		p := principal(r)
		if s.deps.Auth != nil {
			if err := auth.Require(p, auth.EraseProfiles); err != nil {
				return err
			}
		}
		if s.deps.Erasures == nil {
			return problemf(http.StatusServiceUnavailable, "erasures are not available in this process")
		}
		e, err := s.deps.Erasures.Request(r.Context(), p.Actor(), r.PathValue("customer_id"))
		if err != nil {
			return err
		}
		w.Header().Set("Location", fmt.Sprintf("/api/v1/erasures/%d", e.ID))
		return writeJSON(w, http.StatusAccepted, e)
	}
	id := r.PathValue("customer_id")
	if err := s.deps.Store.DeleteProfile(r.Context(), id); err != nil {
		return err
	}
	s.recordAudit(r, audit.ProfileDelete, "profile", id, map[string]any{"via": via(r)})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// recordImport puts an import in the audit log: who, through what, and how
// many rows were read, created, updated and rejected (never a profile). An
// import that broke off is recorded too, as incomplete: what it read
// before is imported.
func (s *Server) recordImport(r *http.Request, rep profile.Report, err error, detail map[string]any) {
	if err != nil && rep.Received == 0 {
		return
	}
	detail["via"] = via(r)
	detail["received"], detail["imported"], detail["updated"] = rep.Received, rep.Imported, rep.Updated
	detail["unchanged"], detail["rejected"], detail["deleted"] = rep.Unchanged, rep.Rejected, rep.Deleted
	detail["complete"] = err == nil
	s.recordAudit(r, audit.ProfileImport, "profile", nil, detail)
}

// via says how the caller reached the API, for the audit log: "ui" (a
// session of the browser interface) or "api" (a token, or a local server
// without authentication).
func via(r *http.Request) string {
	if principal(r).SessionCSRF != "" {
		return "ui"
	}
	return "api"
}

// getErasure answers GET /api/v1/erasures/{id}.
func (s *Server) getErasure(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "erasure")
	if err != nil {
		return err
	}
	st, ok := s.deps.Store.(store.ErasureStore)
	if !ok {
		return problemf(http.StatusServiceUnavailable, "erasures are not available in this process")
	}
	e, err := st.GetErasure(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

// profileAttributes answers GET /api/v1/profiles/attributes.
func (s *Server) profileAttributes(w http.ResponseWriter, r *http.Request) error {
	attrs, err := s.deps.Store.ProfileAttributes(r.Context())
	if err != nil {
		return err
	}
	if attrs == nil {
		attrs = []store.AttributeInfo{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"attributes": attrs})
}

// cursorError names the cursor parameter when the store refused it.
func cursorError(err error, cursor string) error {
	if cursor != "" && errors.Is(err, store.ErrInvalid) {
		return fielderr.New("cursor", "is not a cursor of this listing")
	}
	return err
}

// recordingReader remembers the first error other than io.EOF of a reader.
type recordingReader struct {
	r   io.Reader
	err error
}

func (b *recordingReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}
