// Package audit records who changed what and when: connections and consents,
// exports (with their mapping before and after), segments (with the rule
// before and after), profile imports, deletes and erasures, sources, users
// and tokens, run starts and cancels. Entries name the actor, the time and
// the object, whose type is the event's kind (Kinds); they never carry
// secrets or e-mail addresses of profiles, and keys that look like secrets
// are dropped from the detail as a second line of defence.
package audit

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/store"
)

// Actor is who did something. The zero Actor is the system itself
// (scheduler, first start).
type Actor struct {
	ID    int64
	Email string
}

// System is the actor of changes nobody in particular made.
var System = Actor{Email: "system"}

// Actions recorded by segsync. Other packages may add their own in the same
// "object.verb" form.
const (
	UserCreate        = "user.create"
	UserUpdate        = "user.update"
	TokenCreate       = "token.create"
	TokenRevoke       = "token.revoke"
	SessionLogin      = "session.login"
	ConnectionCreate  = "connection.create"
	ConnectionUpdate  = "connection.update"
	ConnectionRotate  = "connection.rotate_credential"
	ConnectionDelete  = "connection.delete"
	ConnectionConsent = "connection.consent"
	ExportCreate      = "export.create"
	ExportUpdate      = "export.update"
	ExportDelete      = "export.delete"
	RunStart          = "run.start"
	RunCancel         = "run.cancel"
	SegmentCreate     = "segment.create"
	SegmentUpdate     = "segment.update"
	SegmentDelete     = "segment.delete"
	// Profile events name the customer id, never an address: imports
	// (pushed or pulled from a source) carry counts, deletes and erasures
	// the customer id as their object id.
	ProfileImport = "profile.import"
	ProfileDelete = "profile.delete"
	ProfileErase  = "profile.erase"  // an erasure requested
	ProfileErased = "profile.erased" // an erasure carried out in Mailchimp
)

// Kinds are the object types events are recorded under, the first part of
// their actions; the audit log is filtered by them.
var Kinds = []string{"connection", "export", "profile", "run", "segment", "source", "token", "user"}

// ParseKinds reads a filter of kinds: one or several, comma separated
// ("segment,profile"). An unknown kind is a fielderr naming field.
func ParseKinds(field, s string) ([]string, error) {
	var out []string
	for k := range strings.SplitSeq(s, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(Kinds, k) {
			return nil, fielderr.New(field, fmt.Sprintf("unknown kind %q; one or more of %s, comma separated", k, strings.Join(Kinds, ", ")))
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// Recorder is what the domain packages need; *Log implements it.
type Recorder interface {
	Record(ctx context.Context, actor Actor, action, objectType string, objectID any, detail map[string]any) error
}

// Log writes audit events to the store.
type Log struct {
	st  store.AuditStore
	log *slog.Logger
	now func() time.Time
}

// New returns a Log over st. log receives a line when an event cannot be stored.
func New(st store.AuditStore, log *slog.Logger) *Log {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Log{st: st, log: log, now: time.Now}
}

// Record appends one event. objectID may be a number or a string. A failure
// is logged and returned; callers decide whether it should fail their work.
func (l *Log) Record(ctx context.Context, actor Actor, action, objectType string, objectID any, detail map[string]any) error {
	e := Event(actor, action, objectType, objectID, detail)
	e.At = l.now()
	if err := l.st.AddAuditEvent(context.WithoutCancel(ctx), &e); err != nil {
		l.log.Error("audit event not recorded", "action", action, "object_type", objectType, "object_id", e.ObjectID, "err", err)
		return fmt.Errorf("recording audit event: %w", err)
	}
	return nil
}

// Event is the event Record would append, for a store that writes it in
// a transaction of its own (its time is the store's when At is zero).
func Event(actor Actor, action, objectType string, objectID any, detail map[string]any) store.AuditEvent {
	e := store.AuditEvent{
		ActorID: actor.ID, ActorEmail: actor.Email,
		Action: action, ObjectType: objectType, ObjectID: idString(objectID), Detail: Scrub(detail),
	}
	if e.ActorEmail == "" && e.ActorID == 0 {
		e.ActorEmail = System.Email
	}
	return e
}

// List returns events newest first.
func (l *Log) List(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	return l.st.ListAuditEvents(ctx, f)
}

func idString(id any) string {
	switch v := id.(type) {
	case nil:
		return ""
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	default:
		return fmt.Sprint(v)
	}
}

// secretWords mark detail keys that must never reach the log.
var secretWords = []string{"key", "token", "password", "secret", "credential", "authorization"}

// Scrub returns detail without entries whose key looks like a secret
// (api_key, access_token, password, …), recursively.
func Scrub(detail map[string]any) map[string]any {
	if len(detail) == 0 {
		return nil
	}
	out := make(map[string]any, len(detail))
	for k, v := range detail {
		if looksSecret(k) {
			continue
		}
		if m, ok := v.(map[string]any); ok {
			v = Scrub(m)
		}
		out[k] = v
	}
	return out
}

func looksSecret(k string) bool {
	k = strings.ToLower(k)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
