// Package hooks receives Mailchimp's list webhooks (SPEC section 12): at
// POST /hooks/mailchimp/{secret}, form-encoded events of an export's
// audience. subscribe, unsubscribe, cleaned and profile set the status
// attributes of the contact's profiles at once (the newest fired_at wins,
// so an older event replayed later changes nothing); upemail moves the
// contact's synced row to its new address. Events for unknown audiences or
// addresses are ignored and counted; garbage is refused with 400 and
// logged at debug level only, so nobody can flood the log.
package hooks

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/mailchimp"
)

// MaxBody caps a webhook body (Mailchimp's are well under 4 KB).
const MaxBody = 64 << 10

// Errors of a delivery, mapped by httpapi: ErrUnknownHook → 404, ErrBadEvent → 400.
var (
	ErrUnknownHook = errors.New("no such webhook")
	ErrBadEvent    = errors.New("not a Mailchimp webhook event")
)

// Store is what the receiver needs; *sqldb.DB implements it.
type Store interface {
	WebhookTarget(ctx context.Context, exportID int64) (secret, audienceID string, err error)
	WebhookSecret(ctx context.Context, exportID int64, fresh string) (string, error)
	ApplyStatusEvent(ctx context.Context, audienceID, hash, status string, at time.Time) (changed int, known bool, err error)
	ApplyEmailChange(ctx context.Context, audienceID, oldHash, newHash, newEmail string) (bool, error)
}

// Receiver handles deliveries. Fill the fields; Metrics may be nil.
type Receiver struct {
	Store   Store
	Log     *slog.Logger
	Metrics *Metrics
}

// Metrics counts deliveries by outcome.
type Metrics struct {
	events *prometheus.CounterVec
}

// NewMetrics registers segsync_webhook_events_total{type,outcome} on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{events: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "segsync_webhook_events_total",
		Help: "Mailchimp webhook deliveries by event type and outcome (applied, stale, ignored_unknown, ignored_type, bad_request, bad_secret).",
	}, []string{"type", "outcome"})}
	if reg != nil {
		if err := reg.Register(m.events); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				m.events = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return m
}

func (m *Metrics) count(typ, outcome string) {
	if m == nil {
		return
	}
	switch typ {
	case "subscribe", "unsubscribe", "profile", "cleaned", "upemail", "campaign":
	default:
		typ = "other"
	}
	m.events.WithLabelValues(typ, outcome).Inc()
}

// NewSecret makes the secret part of a webhook URL.
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PathFor is the path of an export's webhook URL (below --public-url).
func PathFor(exportID int64, secret string) string {
	return fmt.Sprintf("/hooks/mailchimp/%d.%s", exportID, secret)
}

// URLFor makes (once) and returns the export's webhook URL.
func (rc *Receiver) URLFor(ctx context.Context, publicURL string, exportID int64) (string, error) {
	secret, err := rc.secret(ctx, exportID, true)
	if err != nil {
		return "", err
	}
	return hookURL(publicURL, exportID, secret), nil
}

func hookURL(publicURL string, exportID int64, secret string) string {
	return strings.TrimSuffix(publicURL, "/") + PathFor(exportID, secret)
}

// secret reads the export's webhook secret ("" when it has none) and, when
// create is set and it has none yet, makes it: a write only the first time.
func (rc *Receiver) secret(ctx context.Context, exportID int64, create bool) (string, error) {
	secret, _, err := rc.Store.WebhookTarget(ctx, exportID)
	if err == nil && secret == "" && create {
		secret, err = rc.Store.WebhookSecret(ctx, exportID, NewSecret())
	}
	if err != nil {
		return "", fmt.Errorf("webhook of export %d: %w", exportID, err)
	}
	return secret, nil
}

// Check resolves a URL secret ("<export id>.<secret>") to the export's
// audience, comparing in constant time; ErrUnknownHook otherwise.
func (rc *Receiver) Check(ctx context.Context, urlSecret string) (audienceID string, err error) {
	idPart, secret, ok := strings.Cut(urlSecret, ".")
	id, perr := strconv.ParseInt(idPart, 10, 64)
	if !ok || perr != nil || id <= 0 || secret == "" {
		rc.Metrics.count("", "bad_secret")
		return "", ErrUnknownHook
	}
	want, aud, err := rc.Store.WebhookTarget(ctx, id)
	if err != nil || want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		rc.Metrics.count("", "bad_secret")
		return "", ErrUnknownHook
	}
	return aud, nil
}

// Deliver applies one event received for audienceID (the export's).
func (rc *Receiver) Deliver(ctx context.Context, audienceID string, form url.Values) error {
	ev, err := mailchimp.ParseWebhook(form)
	if err == nil && ev.Type != mailchimp.EventCampaign {
		err = checkAddresses(ev)
	}
	if err != nil {
		rc.Metrics.count(form.Get("type"), "bad_request")
		rc.logger().Debug("webhook event refused", "err", err)
		return fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	if ev.ListID != "" && ev.ListID != audienceID {
		rc.Metrics.count(ev.Type, "ignored_unknown")
		return nil // another audience's event sent to this URL: not ours
	}
	switch ev.Type {
	case mailchimp.EventSubscribe, mailchimp.EventUnsubscribe, mailchimp.EventCleaned, mailchimp.EventProfile:
		// A profile event is only sent for subscribed members.
		status := map[string]string{mailchimp.EventSubscribe: mailchimp.StatusSubscribed, mailchimp.EventUnsubscribe: mailchimp.StatusUnsubscribed,
			mailchimp.EventCleaned: mailchimp.StatusCleaned, mailchimp.EventProfile: mailchimp.StatusSubscribed}[ev.Type]
		changed, known, err := rc.Store.ApplyStatusEvent(ctx, audienceID, emailaddr.Hash(ev.Email), status, ev.FiredAt)
		if err != nil {
			return err
		}
		switch {
		case !known:
			rc.Metrics.count(ev.Type, "ignored_unknown")
		case changed == 0:
			rc.Metrics.count(ev.Type, "stale")
		default:
			rc.Metrics.count(ev.Type, "applied")
		}
	case mailchimp.EventUpemail:
		known, err := rc.Store.ApplyEmailChange(ctx, audienceID, emailaddr.Hash(ev.OldEmail),
			emailaddr.Hash(ev.NewEmail), emailaddr.Normalize(ev.NewEmail))
		if err != nil {
			return err
		}
		if known {
			rc.Metrics.count(ev.Type, "applied")
		} else {
			rc.Metrics.count(ev.Type, "ignored_unknown")
		}
	default:
		rc.Metrics.count(ev.Type, "ignored_type") // campaign and future types
	}
	return nil
}

func (rc *Receiver) logger() *slog.Logger {
	if rc.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return rc.Log
}

// Events is the counter behind the metrics (for tests and dashboards).
func (m *Metrics) Events() *prometheus.CounterVec { return m.events }

// checkAddresses refuses an event whose addresses are not addresses.
func checkAddresses(ev mailchimp.WebhookEvent) error {
	if ev.Type == mailchimp.EventUpemail {
		if !emailaddr.Valid(ev.OldEmail) || !emailaddr.Valid(ev.NewEmail) {
			return errors.New("upemail: data[old_email] and data[new_email] must be addresses")
		}
		return nil
	}
	if !emailaddr.Valid(ev.Email) {
		return errors.New("data[email] is not an address")
	}
	return nil
}
