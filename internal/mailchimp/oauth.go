package mailchimp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// DefaultLoginURL is the base of Mailchimp's OAuth 2 pages.
const DefaultLoginURL = "https://login.mailchimp.com"

// OAuthConfig is the OAuth 2 web-server flow of a Mailchimp app: authorize
// at loginURL/oauth2/authorize, exchange the code at loginURL/oauth2/token.
// Mailchimp tokens do not expire and have no refresh token or scopes.
func OAuthConfig(clientID, clientSecret, loginURL, redirectURL string) *oauth2.Config {
	base := strings.TrimRight(loginURL, "/")
	if base == "" {
		base = DefaultLoginURL
	}
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		RedirectURL:  redirectURL,
		Endpoint: oauth2.Endpoint{
			AuthURL:   base + "/oauth2/authorize",
			TokenURL:  base + "/oauth2/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// FlexID is an identifier that Mailchimp sends as a number in some places
// and as a string in others; it decodes from either.
type FlexID string

// UnmarshalJSON accepts a JSON string, number or null.
func (id *FlexID) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*id = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = FlexID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("id %s is neither a string nor a number", b)
	}
	*id = FlexID(n.String())
	return nil
}

// MetadataLogin is the user who authorized the app.
type MetadataLogin struct {
	LoginID    FlexID `json:"login_id"`
	LoginName  string `json:"login_name"`
	LoginEmail string `json:"login_email"`
	Email      string `json:"email"`
}

// Metadata describes the account an OAuth token acts on.
type Metadata struct {
	DC          string        `json:"dc"`
	Role        string        `json:"role"`
	AccountName string        `json:"accountname"`
	UserID      FlexID        `json:"user_id"`
	Login       MetadataLogin `json:"login"`
	LoginURL    string        `json:"login_url"`
	APIEndpoint string        `json:"api_endpoint"` // e.g. https://us1.api.mailchimp.com
}

// BaseURL is the Marketing API base URL of the token's account.
func (m Metadata) BaseURL() (string, error) {
	if ep := strings.TrimRight(m.APIEndpoint, "/"); ep != "" {
		return strings.TrimSuffix(ep, "/3.0") + "/3.0", nil
	}
	if dcPattern.MatchString(m.DC) {
		return "https://" + m.DC + ".api.mailchimp.com/3.0", nil
	}
	return "", errors.New("mailchimp: OAuth metadata has neither api_endpoint nor a data center")
}

// FetchMetadata asks loginURL/oauth2/metadata which account accessToken
// belongs to. The HTTP client is the one in ctx under oauth2.HTTPClient, if
// any, else a default client with a 30 s timeout.
func FetchMetadata(ctx context.Context, loginURL, accessToken string) (*Metadata, error) {
	if accessToken == "" {
		return nil, errors.New("mailchimp: OAuth metadata needs an access token")
	}
	base := strings.TrimRight(loginURL, "/")
	if base == "" {
		base = DefaultLoginURL
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/oauth2/metadata", nil)
	if err != nil {
		return nil, fmt.Errorf("mailchimp: OAuth metadata request: %w", err)
	}
	req.Header.Set("Authorization", "OAuth "+accessToken)
	req.Header.Set("Accept", "application/json")
	hc := &http.Client{Timeout: 30 * time.Second}
	if v, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && v != nil {
		hc = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mailchimp: OAuth metadata: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("mailchimp: OAuth metadata: reading answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		c := &Client{secret: accessToken}
		return nil, c.apiError("GET /oauth2/metadata", answer{status: resp.StatusCode, header: resp.Header, body: body})
	}
	var md Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("mailchimp: OAuth metadata: decoding answer: %w", err)
	}
	if _, err := md.BaseURL(); err != nil {
		return nil, err
	}
	return &md, nil
}
