package connection

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/fielderr"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/store"
)

// oauthStateTTL bounds how long an admin may take on Mailchimp's pages.
const oauthStateTTL = 15 * time.Minute

// ErrOAuthDisabled means no Mailchimp app (client id and secret) is configured.
var ErrOAuthDisabled = errors.New("Authenticate with Mailchimp is not configured: set SEGSYNC_MAILCHIMP_CLIENT_ID and SEGSYNC_MAILCHIMP_CLIENT_SECRET")

// OAuthEnabled reports whether the OAuth flow is configured.
func (s *Service) OAuthEnabled() bool {
	return s.opt.OAuth.ClientID != "" && s.opt.OAuth.ClientSecret != "" && s.opt.OAuth.RedirectURL != ""
}

func (s *Service) oauthConfig() *oauth2.Config {
	o := s.opt.OAuth
	return mailchimp.OAuthConfig(o.ClientID, o.ClientSecret, o.LoginURL, o.RedirectURL)
}

func (s *Service) oauthContext(ctx context.Context) context.Context {
	hc := s.opt.OAuth.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return context.WithValue(ctx, oauth2.HTTPClient, hc)
}

// StartInput is GET /api/v1/connections/oauth/start.
type StartInput struct {
	DisplayName       string
	AllowContributors bool
	PrivacyConsent    bool
}

func stateHash(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// StartOAuth begins "Authenticate with Mailchimp" for an admin: it records
// the pending connection under a random state and returns Mailchimp's
// authorize URL to redirect the browser to.
func (s *Service) StartOAuth(ctx context.Context, p auth.Principal, in StartInput) (string, error) {
	if err := auth.Require(p, auth.ManageConnections); err != nil {
		return "", err
	}
	if !s.OAuthEnabled() {
		return "", ErrOAuthDisabled
	}
	var errs fielderr.List
	name := checkDisplayName(&errs, in.DisplayName)
	if !in.PrivacyConsent {
		errs.Add("privacy_consent", consentMessage)
	}
	if err := errs.Err(); err != nil {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("OAuth state: %w", err)
	}
	state := base64.RawURLEncoding.EncodeToString(b)
	now := s.opt.Now()
	if err := s.st.CreateOAuthState(ctx, store.OAuthState{StateHash: stateHash(state), UserID: p.UserID,
		DisplayName: name, AllowContributors: in.AllowContributors, ConsentAt: now, ExpiresAt: now.Add(oauthStateTTL)}); err != nil {
		return "", err
	}
	return s.oauthConfig().AuthCodeURL(state), nil
}

// FinishOAuth completes the flow on Mailchimp's redirect: it checks the state
// (single use, unexpired, started by the same admin), exchanges the code for
// a token, asks the metadata endpoint for the account's data center and API
// endpoint, verifies the token and saves the connection. mcError is the
// callback's error parameter, if Mailchimp sent one.
func (s *Service) FinishOAuth(ctx context.Context, p auth.Principal, state, code, mcError string) (View, error) {
	if err := auth.Require(p, auth.ManageConnections); err != nil {
		return View{}, err
	}
	if !s.OAuthEnabled() {
		return View{}, ErrOAuthDisabled
	}
	if state == "" {
		return View{}, fielderr.New("state", "missing")
	}
	st, err := s.st.TakeOAuthState(ctx, stateHash(state))
	if errors.Is(err, store.ErrNotFound) {
		return View{}, fielderr.New("state", "unknown or already used; start again")
	}
	if err != nil {
		return View{}, err
	}
	if !s.opt.Now().Before(st.ExpiresAt) {
		return View{}, fielderr.New("state", "expired; start again")
	}
	if st.UserID != p.UserID {
		return View{}, fmt.Errorf("this Mailchimp authorisation was started by another user: %w", auth.ErrForbidden)
	}
	if mcError != "" {
		return View{}, fielderr.New("error", "Mailchimp did not authorise segsync: "+mcError)
	}
	if code == "" {
		return View{}, fielderr.New("code", "missing")
	}
	octx := s.oauthContext(ctx)
	secrets := []string{s.opt.OAuth.ClientSecret, code}
	tok, err := s.oauthConfig().Exchange(octx, code)
	if err != nil {
		return View{}, upstream(fmt.Errorf("exchanging the authorisation code: %w", err), secrets...)
	}
	access := tok.AccessToken
	if access == "" {
		return View{}, upstream(errors.New("Mailchimp returned no access token"))
	}
	secrets = append(secrets, access)
	md, err := mailchimp.FetchMetadata(octx, s.opt.OAuth.LoginURL, access)
	if err != nil {
		return View{}, upstream(fmt.Errorf("reading the OAuth metadata: %w", err), secrets...)
	}
	base, err := md.BaseURL()
	if err != nil {
		return View{}, upstream(err, secrets...)
	}
	root, err := s.verify(ctx, mailchimp.Config{AccessToken: access, BaseURL: base}, "", "code", secrets...)
	if err != nil {
		return View{}, err
	}
	sealed, err := s.vault.Seal([]byte(access), credentialPurpose)
	if err != nil {
		return View{}, err
	}
	name := root.AccountName
	if name == "" {
		name = md.AccountName
	}
	now := s.opt.Now()
	c := store.Connection{
		DisplayName: st.DisplayName, Type: "mailchimp", AuthMethod: MethodOAuth, AllowContributors: st.AllowContributors,
		Credential: sealed, APIBaseURL: base, AccountID: root.AccountID, AccountName: name, DC: md.DC,
		ExportUserID: p.UserID, ConsentBy: p.UserID, ConsentByEmail: p.Email, ConsentAt: st.ConsentAt,
		CreatedAt: now, LastTestedAt: &now,
	}
	if err := s.st.CreateConnection(ctx, &c); err != nil {
		return View{}, err
	}
	c.ExportUserEmail = p.Email
	s.recordCreate(ctx, p, c)
	s.log.InfoContext(ctx, "connection created through OAuth", "connection_id", c.ID, "account", c.AccountName, "by", p.Email)
	return s.view(p, c), nil
}
