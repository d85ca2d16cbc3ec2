// Package connection manages connections to Mailchimp accounts: creating
// them from an API key or through OAuth, the privacy consent, the credential
// vault, sharing with contributors, testing, listing audiences, deleting, and
// handing the export engine a ready Mailchimp client for a connection the
// caller may use. A credential goes into the vault the moment it arrives and
// leaves it only to build a client; it is never returned, logged or put into
// an error message.
package connection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/store"
)

// PrivacyText is what an admin agrees to with privacy_consent: true.
const PrivacyText = "Sending profile data to Mailchimp moves it outside segsync's compliance boundary; " +
	"Mailchimp's own terms and data-protection commitments apply to it there. " +
	"An administrator can remove this destination at any time."

// Auth methods of a connection.
const (
	MethodAPIKey = "api_key"
	MethodOAuth  = "oauth"
)

// credentialPurpose binds sealed credentials to this use.
const credentialPurpose = "segsync/connection-credential/v1"

// ErrUpstream means Mailchimp could not be reached or failed; the HTTP layer
// answers 502.
var ErrUpstream = errors.New("Mailchimp could not be reached or answered with an error")

// OAuthSettings configure "Authenticate with Mailchimp". The flow is off
// while ClientID or ClientSecret is empty.
type OAuthSettings struct {
	ClientID     string
	ClientSecret string
	LoginURL     string // default https://login.mailchimp.com
	RedirectURL  string // <public URL>/oauth/mailchimp/callback
	HTTPClient   *http.Client
}

// Options configure a Service.
type Options struct {
	Vault *Vault
	Audit audit.Recorder
	Log   *slog.Logger
	// ClientConfig, when set, completes the config of every Mailchimp client
	// the service builds (limiter, metrics, HTTP client, logger, retries).
	ClientConfig func(*mailchimp.Config)
	OAuth        OAuthSettings
	Now          func() time.Time
}

// Service manages connections.
type Service struct {
	st    store.ConnectionStore
	vault *Vault
	audit audit.Recorder
	log   *slog.Logger
	opt   Options
	// http is shared by every client the service builds, so their
	// connection pools are reused rather than left to idle out.
	http *http.Client
}

// NewService returns a Service over st.
func NewService(st store.ConnectionStore, opt Options) (*Service, error) {
	if opt.Vault == nil {
		return nil, errors.New("connection service needs a vault")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.OAuth.LoginURL == "" {
		opt.OAuth.LoginURL = mailchimp.DefaultLoginURL
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = mailchimp.MaxConnsPerAccount
	return &Service{st: st, vault: opt.Vault, audit: opt.Audit, log: opt.Log, opt: opt, http: &http.Client{Transport: t}}, nil
}

func (s *Service) record(ctx context.Context, p auth.Principal, action string, id int64, detail map[string]any) {
	if s.audit != nil {
		_ = s.audit.Record(ctx, p.Actor(), action, "connection", id, detail)
	}
}

// Consent is who agreed to the privacy text, and when.
type Consent struct {
	By   string    `json:"by"`
	At   time.Time `json:"at"`
	Text string    `json:"text"`
}

// View is a connection as a principal may see it: contributors and viewers
// get the id, display name, type and account name only; admins everything
// but the credential, which nobody ever gets.
type View struct {
	ID          int64  `json:"id"`
	DisplayName string `json:"display_name"`
	Type        string `json:"type"`
	AccountName string `json:"account_name"`

	AuthMethod        string     `json:"auth_method,omitempty"`
	AllowContributors *bool      `json:"allow_contributors,omitempty"`
	AccountID         string     `json:"account_id,omitempty"`
	DC                string     `json:"dc,omitempty"`
	APIBaseURL        string     `json:"api_base_url,omitempty"`
	ExportUser        string     `json:"export_user,omitempty"`
	Consent           *Consent   `json:"consent,omitempty"`
	CreatedAt         *time.Time `json:"created_at,omitempty"`
	UpdatedAt         *time.Time `json:"updated_at,omitempty"`
	LastTestedAt      *time.Time `json:"last_tested_at,omitempty"`
	LastTestError     string     `json:"last_test_error,omitempty"`
	Exports           *int       `json:"exports,omitempty"` // how many exports use it (single reads)
}

func (s *Service) view(p auth.Principal, c store.Connection) View {
	v := View{ID: c.ID, DisplayName: c.DisplayName, Type: c.Type, AccountName: c.AccountName}
	if !auth.CanSeeConnectionDetails(p) {
		return v
	}
	allow := c.AllowContributors
	created, updated := c.CreatedAt, c.UpdatedAt
	v.AuthMethod, v.AllowContributors, v.AccountID, v.DC = c.AuthMethod, &allow, c.AccountID, c.DC
	v.APIBaseURL = c.APIBaseURL
	if v.APIBaseURL == "" && c.DC != "" {
		v.APIBaseURL = "https://" + c.DC + ".api.mailchimp.com/3.0"
	}
	v.ExportUser = c.ExportUserEmail
	v.Consent = &Consent{By: c.ConsentByEmail, At: c.ConsentAt, Text: PrivacyText}
	v.CreatedAt, v.UpdatedAt, v.LastTestedAt, v.LastTestError = &created, &updated, c.LastTestedAt, c.LastTestError
	return v
}

// CreateInput is POST /api/v1/connections.
type CreateInput struct {
	DisplayName       string `json:"display_name"`
	Type              string `json:"type"`
	APIKey            string `json:"api_key"`
	AllowContributors bool   `json:"allow_contributors"`
	PrivacyConsent    bool   `json:"privacy_consent"`
	APIBaseURL        string `json:"api_base_url,omitempty"`
}

func checkDisplayName(errs *fielderr.List, name string) string {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		errs.Add("display_name", "required")
	case utf8.RuneCountInString(name) > 100:
		errs.Add("display_name", "at most 100 characters")
	}
	return name
}

func checkBaseURL(errs *fielderr.List, raw string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		errs.Add("api_base_url", "must be an http(s) URL without user info, query or fragment, e.g. https://us6.api.mailchimp.com/3.0")
		return ""
	}
	return strings.TrimRight(u.String(), "/")
}

const consentMessage = "must be true: agree that sending profiles to Mailchimp moves them outside segsync's compliance boundary"

// Create validates an API key with Mailchimp (the account root) and saves the connection with the caller as export user and consenting admin.
func (s *Service) Create(ctx context.Context, p auth.Principal, in CreateInput) (View, error) {
	if err := auth.Require(p, auth.ManageConnections); err != nil {
		return View{}, err
	}
	var errs fielderr.List
	name := checkDisplayName(&errs, in.DisplayName)
	if in.Type != "" && in.Type != "mailchimp" {
		errs.Add("type", `must be "mailchimp"`)
	}
	key := strings.TrimSpace(in.APIKey)
	if key == "" {
		errs.Add("api_key", "required")
	}
	if !in.PrivacyConsent {
		errs.Add("privacy_consent", consentMessage)
	}
	base := checkBaseURL(&errs, in.APIBaseURL)
	if key != "" && base == "" && mailchimp.DataCenter(key) == "" {
		errs.Add("api_key", "does not end in a data center (…-us6); check the key or give api_base_url")
	}
	if err := errs.Err(); err != nil {
		return View{}, err
	}
	root, err := s.verify(ctx, mailchimp.Config{APIKey: key, BaseURL: base}, "", "api_key", key)
	if err != nil {
		return View{}, err
	}
	sealed, err := s.vault.Seal([]byte(key), credentialPurpose)
	if err != nil {
		return View{}, err
	}
	now := s.opt.Now()
	c := store.Connection{
		DisplayName: name, Type: "mailchimp", AuthMethod: MethodAPIKey, AllowContributors: in.AllowContributors,
		Credential: sealed, APIBaseURL: base, AccountID: root.AccountID, AccountName: root.AccountName,
		DC: mailchimp.DataCenter(key), ExportUserID: p.UserID, ConsentBy: p.UserID, ConsentByEmail: p.Email,
		ConsentAt: now, CreatedAt: now, LastTestedAt: &now,
	}
	if err := s.st.CreateConnection(ctx, &c); err != nil {
		return View{}, err
	}
	c.ExportUserEmail = p.Email
	s.recordCreate(ctx, p, c)
	s.log.InfoContext(ctx, "connection created", "connection_id", c.ID, "account", c.AccountName, "by", p.Email)
	return s.view(p, c), nil
}

func (s *Service) recordCreate(ctx context.Context, p auth.Principal, c store.Connection) {
	s.record(ctx, p, audit.ConnectionCreate, c.ID, map[string]any{
		"display_name": c.DisplayName, "auth_method": c.AuthMethod, "account_name": c.AccountName,
		"dc": c.DC, "allow_contributors": c.AllowContributors, "export_user": c.ExportUserEmail,
	})
	s.record(ctx, p, audit.ConnectionConsent, c.ID, map[string]any{
		"consent_by": c.ConsentByEmail, "consent_at": c.ConsentAt, "text": PrivacyText,
	})
}

// verify checks a credential by reading the account root it belongs to.
// Refusals of the credential are reported against field. accountID is the
// account the connection already has ("" for a new one): the request is then
// limited under that account's key, the one its runs use, so a rotation
// while exports run cannot exceed the account's connection limit. A new
// credential's account is named only by this answer, so its one request is
// limited under the credential's own key.
func (s *Service) verify(ctx context.Context, cfg mailchimp.Config, accountID, field string, secrets ...string) (*mailchimp.Root, error) {
	cfg.Account = accountKey(accountID)
	client, err := s.newClient(cfg)
	if err != nil {
		return nil, fielderr.New(field, "cannot be used: "+redact(err, secrets...).Error())
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	root, err := client.Root(ctx)
	if err != nil {
		return nil, s.mailchimpFault(err, field, secrets...)
	}
	return root, nil
}

// accountKey is the limiter key (mailchimp.Config.Account) of a Mailchimp
// account: every client for it shares one pool of slots, whichever
// credential it holds. It is "" for an unknown account.
func accountKey(accountID string) string {
	if accountID == "" {
		return ""
	}
	return "mailchimp-account:" + accountID
}

func (s *Service) mailchimpFault(err error, field string, secrets ...string) error {
	if mailchimp.IsAuth(err) {
		return fielderr.New(field, "Mailchimp refused this credential: "+redact(err, secrets...).Error())
	}
	return upstream(err, secrets...)
}

func (s *Service) newClient(cfg mailchimp.Config) (*mailchimp.Client, error) {
	if s.opt.ClientConfig != nil {
		s.opt.ClientConfig(&cfg)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = s.http
	}
	// verification must fail fast rather than retry for minutes
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 2
	}
	return mailchimp.New(cfg)
}

// List returns the connections p may see: all for admins, the shared ones
// (allow_contributors) for everyone else.
func (s *Service) List(ctx context.Context, p auth.Principal) ([]View, error) {
	if err := auth.Require(p, auth.ReadData); err != nil {
		return nil, err
	}
	cs, err := s.st.ListConnections(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]View, 0, len(cs))
	for _, c := range cs {
		if auth.CanSeeConnectionDetails(p) || c.AllowContributors {
			out = append(out, s.view(p, c))
		}
	}
	return out, nil
}

// Get returns one connection as p may see it; non-admins see shared ones only.
func (s *Service) Get(ctx context.Context, p auth.Principal, id int64) (View, error) {
	if err := auth.Require(p, auth.ReadData); err != nil {
		return View{}, err
	}
	c, err := s.st.GetConnection(ctx, id)
	if err != nil {
		return View{}, err
	}
	if !auth.CanSeeConnectionDetails(p) && !c.AllowContributors {
		return View{}, notShared(id)
	}
	v := s.view(p, c)
	if auth.CanSeeConnectionDetails(p) {
		n, err := s.st.ConnectionExports(ctx, id)
		if err != nil {
			return View{}, err
		}
		v.Exports = &n
	}
	return v, nil
}

func notShared(id int64) error {
	return fmt.Errorf("connection %d is not shared with contributors: %w", id, auth.ErrForbidden)
}

// Authorize checks that p may use connection id for an export (admins any,
// contributors shared ones, viewers none) and returns it.
func (s *Service) Authorize(ctx context.Context, p auth.Principal, id int64) (store.Connection, error) {
	if err := auth.Require(p, auth.UseConnection); err != nil {
		return store.Connection{}, err
	}
	c, err := s.st.GetConnection(ctx, id)
	if err != nil {
		return store.Connection{}, err
	}
	if !auth.CanUseConnection(p, c.AllowContributors) {
		return store.Connection{}, notShared(id)
	}
	return c, nil
}

// Client returns a ready Mailchimp client for a connection p may use.
func (s *Service) Client(ctx context.Context, p auth.Principal, id int64) (*mailchimp.Client, error) {
	c, err := s.Authorize(ctx, p, id)
	if err != nil {
		return nil, err
	}
	return s.clientFor(c)
}

// ClientFor returns a ready Mailchimp client for a connection without a
// permission check: for runs, which were authorised when they were
// triggered or scheduled.
func (s *Service) ClientFor(ctx context.Context, id int64) (*mailchimp.Client, error) {
	c, err := s.st.GetConnection(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.clientFor(c)
}

func (s *Service) clientFor(c store.Connection) (*mailchimp.Client, error) {
	secret, err := s.vault.Open(c.Credential, credentialPurpose)
	if err != nil {
		return nil, fmt.Errorf("connection %d: %w", c.ID, err)
	}
	cfg := mailchimp.Config{BaseURL: c.APIBaseURL}
	if c.AuthMethod == MethodOAuth {
		cfg.AccessToken = string(secret)
	} else {
		cfg.APIKey = string(secret)
	}
	// One limiter slot pool per Mailchimp account, whichever key is used.
	cfg.Account = accountKey(c.AccountID)
	if s.opt.ClientConfig != nil {
		s.opt.ClientConfig(&cfg)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = s.http
	}
	cl, err := mailchimp.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connection %d: %w", c.ID, redact(err, string(secret)))
	}
	return cl, nil
}

// Patch is PATCH /api/v1/connections/{id}; nil fields stay as they are.
type Patch struct {
	DisplayName       *string `json:"display_name,omitempty"`
	AllowContributors *bool   `json:"allow_contributors,omitempty"`
	// APIKey rotates the credential (an OAuth connection becomes an API-key
	// one); the new key must belong to the same Mailchimp account.
	APIKey     *string `json:"api_key,omitempty"`
	APIBaseURL *string `json:"api_base_url,omitempty"` // "" goes back to the key's data center
}

// Update renames, re-shares or re-keys a connection (admins only).
func (s *Service) Update(ctx context.Context, p auth.Principal, id int64, in Patch) (View, error) {
	if err := auth.Require(p, auth.ManageConnections); err != nil {
		return View{}, err
	}
	c, err := s.st.GetConnection(ctx, id)
	if err != nil {
		return View{}, err
	}
	var errs fielderr.List
	detail := map[string]any{}
	if in.DisplayName != nil {
		c.DisplayName = checkDisplayName(&errs, *in.DisplayName)
		detail["display_name"] = c.DisplayName
	}
	if in.AllowContributors != nil {
		c.AllowContributors = *in.AllowContributors
		detail["allow_contributors"] = c.AllowContributors
	}
	rekey := in.APIKey != nil || in.APIBaseURL != nil
	var key string
	if in.APIKey != nil {
		if key = strings.TrimSpace(*in.APIKey); key == "" {
			errs.Add("api_key", "must not be empty")
		}
	}
	if in.APIBaseURL != nil {
		c.APIBaseURL = checkBaseURL(&errs, *in.APIBaseURL)
		detail["api_base_url"] = c.APIBaseURL
	}
	if err := errs.Err(); err != nil {
		return View{}, err
	}
	if rekey {
		var cfg mailchimp.Config
		var secret string
		field := "api_key"
		if key != "" {
			cfg, secret = mailchimp.Config{APIKey: key}, key
			if c.APIBaseURL == "" && mailchimp.DataCenter(key) == "" {
				return View{}, fielderr.New("api_key", "does not end in a data center (…-us6); check the key or give api_base_url")
			}
		} else {
			old, err := s.vault.Open(c.Credential, credentialPurpose)
			if err != nil {
				return View{}, fmt.Errorf("connection %d: %w", c.ID, err)
			}
			secret, field = string(old), "api_base_url"
			if c.AuthMethod == MethodOAuth {
				cfg.AccessToken = secret
			} else {
				cfg.APIKey = secret
			}
			if c.APIBaseURL == "" && c.AuthMethod == MethodOAuth {
				return View{}, fielderr.New("api_base_url", "an OAuth connection needs a base URL")
			}
		}
		cfg.BaseURL = c.APIBaseURL
		root, err := s.verify(ctx, cfg, c.AccountID, field, secret)
		if err != nil {
			return View{}, err
		}
		if c.AccountID != "" && root.AccountID != c.AccountID {
			return View{}, fielderr.New(field, fmt.Sprintf("this credential belongs to another Mailchimp account (%s); "+
				"the exports of this connection write to audiences of %s: create a new connection instead", root.AccountName, c.AccountName))
		}
		c.AccountID, c.AccountName = root.AccountID, root.AccountName
		if key != "" {
			sealed, err := s.vault.Seal([]byte(key), credentialPurpose)
			if err != nil {
				return View{}, err
			}
			c.Credential, c.AuthMethod, c.DC = sealed, MethodAPIKey, mailchimp.DataCenter(key)
			c.ExportUserID, c.ExportUserEmail = p.UserID, p.Email
			detail["credential_rotated"] = true
		}
		now := s.opt.Now()
		c.LastTestedAt, c.LastTestError = &now, ""
	}
	if err := s.st.UpdateConnection(ctx, c); err != nil {
		return View{}, err
	}
	action := audit.ConnectionUpdate
	if key != "" {
		action = audit.ConnectionRotate
	}
	s.record(ctx, p, action, c.ID, detail)
	return s.view(p, c), nil
}

// Delete removes a connection (admins only). While exports use it the
// answer is store.ErrConflict unless detach is set; it returns how many
// exports were detached. Mailchimp data is never touched.
func (s *Service) Delete(ctx context.Context, p auth.Principal, id int64, detach bool) (int, error) {
	if err := auth.Require(p, auth.ManageConnections); err != nil {
		return 0, err
	}
	c, err := s.st.GetConnection(ctx, id)
	if err != nil {
		return 0, err
	}
	n, err := s.st.DeleteConnection(ctx, id, detach)
	if err != nil {
		return 0, err
	}
	s.record(ctx, p, audit.ConnectionDelete, id, map[string]any{"display_name": c.DisplayName, "account_name": c.AccountName, "detached_exports": n})
	return n, nil
}

// TestResult is the outcome of testing a connection.
type TestResult struct {
	OK          bool      `json:"ok"`
	AccountName string    `json:"account_name,omitempty"`
	Error       string    `json:"error,omitempty"`
	TestedAt    time.Time `json:"tested_at"`
}

// Test pings Mailchimp with the stored credential and reads the account
// (admins only). A refusal is a result, not an error; the outcome is kept.
func (s *Service) Test(ctx context.Context, p auth.Principal, id int64) (TestResult, error) {
	if err := auth.Require(p, auth.ManageConnections); err != nil {
		return TestResult{}, err
	}
	c, err := s.st.GetConnection(ctx, id)
	if err != nil {
		return TestResult{}, err
	}
	client, err := s.clientFor(c)
	if err != nil {
		return TestResult{}, err
	}
	res := TestResult{TestedAt: s.opt.Now()}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = client.Ping(tctx)
	var root *mailchimp.Root
	if err == nil {
		root, err = client.Root(tctx)
	}
	if err != nil {
		secret, _ := s.vault.Open(c.Credential, credentialPurpose)
		res.Error = redact(err, string(secret)).Error()
	} else {
		res.OK, res.AccountName = true, root.AccountName
		c.AccountName = root.AccountName
	}
	c.LastTestedAt, c.LastTestError = &res.TestedAt, res.Error
	if err := s.st.UpdateConnection(ctx, c); err != nil {
		return TestResult{}, err
	}
	return res, nil
}

// RecordRefusal notes on a connection that Mailchimp refused its credential
// outside a test (a run stopped on a 401 or 403), so that the connection
// shows it as its last test error until a test or a new key succeeds. msg
// is redacted like every other message about the connection.
func (s *Service) RecordRefusal(ctx context.Context, id int64, msg string) error {
	c, err := s.st.GetConnection(ctx, id)
	if err != nil {
		return err
	}
	secret, _ := s.vault.Open(c.Credential, credentialPurpose)
	now := s.opt.Now()
	c.LastTestedAt, c.LastTestError = &now, redact(errors.New(msg), string(secret)).Error()
	if err := s.st.UpdateConnection(ctx, c); err != nil {
		return fmt.Errorf("recording the refusal on connection %d: %w", id, err)
	}
	return nil
}

// Audience is one Mailchimp audience, for the export form's picker.
type Audience struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	MemberCount int64  `json:"member_count"`
}

// Audiences lists the audiences of a connection p may use.
func (s *Service) Audiences(ctx context.Context, p auth.Principal, id int64) ([]Audience, error) {
	c, err := s.Authorize(ctx, p, id)
	if err != nil {
		return nil, err
	}
	client, err := s.clientFor(c)
	if err != nil {
		return nil, err
	}
	lists, err := client.Lists(ctx)
	if err != nil {
		secret, _ := s.vault.Open(c.Credential, credentialPurpose)
		return nil, upstream(err, string(secret))
	}
	out := make([]Audience, 0, len(lists))
	for _, l := range lists {
		out = append(out, Audience{ID: l.ID, Name: l.Name, MemberCount: l.Stats.MemberCount})
	}
	return out, nil
}

// redactedError keeps an error's chain but replaces its text.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact returns err with every occurrence of the secrets removed from its
// text (the Mailchimp client already scrubs; this is the second belt).
func redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return &redactedError{msg: msg, err: err}
}

// upstreamError is a Mailchimp failure: it is ErrUpstream and still the
// client's error (for mailchimp.IsAuth and friends).
type upstreamError struct{ err error }

func (e *upstreamError) Error() string   { return ErrUpstream.Error() + ": " + e.err.Error() }
func (e *upstreamError) Unwrap() []error { return []error{ErrUpstream, e.err} }

func upstream(err error, secrets ...string) error {
	return &upstreamError{err: redact(err, secrets...)}
}
