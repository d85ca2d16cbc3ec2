package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/store"
)

// Clients hands out the Mailchimp client of a connection;
// *connection.Service implements it.
type Clients interface {
	ClientFor(ctx context.Context, connectionID int64) (*mailchimp.Client, error)
}

// Registrar keeps each export's webhook registered on its audience: made
// when the export is saved, checked (and made again if someone removed it
// in Mailchimp) before each run, removed when the export is deleted or
// moves to another audience. With no PublicURL (segsync is not reachable
// from Mailchimp) it does nothing.
type Registrar struct {
	Receiver  *Receiver
	Clients   Clients
	PublicURL string // --public-url, as given; "" disables registration
	Log       *slog.Logger
}

// Events and Sources are what segsync registers: every status change and
// address change made by the person (unsubscribe links, bounces, forms)
// or by an account user in Mailchimp's app. Changes made through the API
// are segsync's own (or another tool's, which reaches segsync through the
// next run's status refresh), so they are not echoed back.
var (
	Events  = mailchimp.WebhookEvents{Subscribe: true, Unsubscribe: true, Profile: true, Cleaned: true, Upemail: true}
	Sources = mailchimp.WebhookSources{User: true, Admin: true}
)

// Names lists the flags set in Events or Sources as Mailchimp's API spells
// them (their JSON names), for people who register a webhook by hand.
func Names(flags any) []string {
	b, _ := json.Marshal(flags)
	var m map[string]bool
	_ = json.Unmarshal(b, &m)
	var names []string
	for name, on := range m {
		if on {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Enabled reports whether webhooks are registered at all.
func (rg *Registrar) Enabled() bool { return rg != nil && rg.PublicURL != "" }

// Ensure makes sure e's audience has e's webhook: one call when it is
// there, a creation when not (Mailchimp first validates the URL with a
// GET, so segsync must be reachable at PublicURL). A webhook of e's left
// under another public URL is replaced. A failure is logged (opt-outs
// still arrive with each run's status refresh) and returned.
func (rg *Registrar) Ensure(ctx context.Context, e store.Export) error {
	if !rg.Enabled() || e.ConnectionID == nil || e.AudienceID == "" {
		return nil
	}
	return rg.warn(rg.ensure(ctx, e))
}

func (rg *Registrar) ensure(ctx context.Context, e store.Export) error {
	secret, err := rg.Receiver.secret(ctx, e.ID, true)
	if err != nil {
		return err
	}
	want := hookURL(rg.PublicURL, e.ID, secret)
	mc, have, err := rg.ours(ctx, e, secret)
	if err != nil {
		return err
	}
	found := false
	for _, h := range have {
		if h.URL == want && h.Events == Events && h.Sources == Sources {
			found = true
			continue
		}
		if err := mc.DeleteWebhook(ctx, e.AudienceID, h.ID); err != nil {
			return fmt.Errorf("removing the outdated webhook of export %d: %w", e.ID, err)
		}
	}
	if found {
		return nil
	}
	if _, err := mc.CreateWebhook(ctx, e.AudienceID, mailchimp.Webhook{URL: want, Events: Events, Sources: Sources}); err != nil {
		if mailchimp.IsWebhookURLRefused(err) {
			return fmt.Errorf("registering the webhook of export %d: Mailchimp could not reach %s (is --public-url reachable from the internet?): %w",
				e.ID, rg.PublicURL, err)
		}
		return fmt.Errorf("registering the webhook of export %d: %w", e.ID, err)
	}
	rg.logger().Info("webhook registered", "export", e.ID, "audience", e.AudienceID)
	return nil
}

// Remove deletes e's webhooks from e's audience (any public URL). An
// export without a webhook secret never had one. A failure is logged and
// returned; a webhook left behind only ever hears 404 from segsync.
func (rg *Registrar) Remove(ctx context.Context, e store.Export) error {
	if rg == nil || rg.Receiver == nil || e.ConnectionID == nil || e.AudienceID == "" {
		return nil
	}
	return rg.warn(rg.remove(ctx, e))
}

func (rg *Registrar) remove(ctx context.Context, e store.Export) error {
	secret, err := rg.Receiver.secret(ctx, e.ID, false)
	if err != nil || secret == "" { // an export without a secret never had a webhook
		return err
	}
	mc, have, err := rg.ours(ctx, e, secret)
	if err != nil {
		return err
	}
	for _, h := range have {
		if err := mc.DeleteWebhook(ctx, e.AudienceID, h.ID); err != nil {
			return fmt.Errorf("removing the webhook of export %d: %w", e.ID, err)
		}
		rg.logger().Info("webhook removed", "export", e.ID, "audience", e.AudienceID)
	}
	return nil
}

// ours gives the client of e's connection and the webhooks of e's
// audience that point at e's hook path (the one with secret).
func (rg *Registrar) ours(ctx context.Context, e store.Export, secret string) (*mailchimp.Client, []mailchimp.Webhook, error) {
	mc, err := rg.Clients.ClientFor(ctx, *e.ConnectionID)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook of export %d: %w", e.ID, err)
	}
	all, err := mc.ListWebhooks(ctx, e.AudienceID)
	if err != nil {
		if mailchimp.IsNotFound(err) { // the audience is gone: nothing to keep
			return mc, nil, nil
		}
		return nil, nil, fmt.Errorf("listing the webhooks of audience %s: %w", e.AudienceID, err)
	}
	path := PathFor(e.ID, secret)
	var mine []mailchimp.Webhook
	for _, h := range all {
		if strings.HasSuffix(h.URL, path) {
			mine = append(mine, h)
		}
	}
	return mc, mine, nil
}

// warn logs a failure and returns it.
func (rg *Registrar) warn(err error) error {
	if err != nil && !errors.Is(err, context.Canceled) {
		rg.logger().Warn("webhook registration failed; opt-outs still reach segsync with each run's status refresh", "err", err)
	}
	return err
}

func (rg *Registrar) logger() *slog.Logger {
	if rg.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return rg.Log
}
