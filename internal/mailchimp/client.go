package mailchimp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultTimeout          = 120 * time.Second
	DefaultMaxRetries       = 6
	DefaultRateLimitRetries = 20
	DefaultRetryBaseDelay   = 500 * time.Millisecond
	DefaultRetryMaxDelay    = 30 * time.Second
	DefaultMaxRetryAfter    = 2 * time.Minute

	maxResponseBytes = 64 << 20
)

// ErrTimeout marks an attempt that got no answer within Config.Timeout.
var ErrTimeout = errors.New("mailchimp: request timed out")

// errLimiter marks a failure of the Limiter itself (say, a lease store
// that is down), as opposed to the caller's context ending.
var errLimiter = errors.New("acquiring a connection slot")

// Config configures a Client. Exactly one of APIKey and AccessToken is
// required; everything else has a default.
type Config struct {
	APIKey      string // "<key>-<dc>"; sent as the HTTP Basic password
	AccessToken string // OAuth token; sent as Bearer; needs BaseURL
	// BaseURL overrides the URL derived from the key's data center, e.g.
	// an emulator's "http://127.0.0.1:PORT/3.0" or Metadata.BaseURL().
	BaseURL string
	// Account overrides the limiter key (Client.Account), e.g. with the
	// Mailchimp account id when several keys of one account are in use.
	Account string

	HTTPClient *http.Client  // default: a client with a pool sized for the limiter
	Limiter    Limiter       // default: one limiter shared by the whole process
	Logger     *slog.Logger  // default: discard
	Metrics    Metrics       // default: none
	UserAgent  string        // default: "segsync"
	Timeout    time.Duration // per attempt; default 120 s

	MaxRetries int // retries after the first attempt; 0: default 6; <0: none
	// RateLimitRetries bounds the retries after 429s (and bodiless 403s),
	// which are counted apart from MaxRetries: such a call never ran, and
	// Mailchimp asks to back off, not to give up; 0: default 20; <0: none.
	RateLimitRetries int
	RetryBaseDelay   time.Duration // first backoff; default 500 ms
	RetryMaxDelay    time.Duration // backoff cap; default 30 s
	MaxRetryAfter    time.Duration // cap on a server's Retry-After; default 2 min
}

// Client calls the Mailchimp Marketing API. It is safe for concurrent use.
type Client struct {
	base       string // without trailing slash
	authHeader string
	secret     string // for redaction of echoed bodies only
	account    string
	http       *http.Client
	limiter    Limiter
	log        *slog.Logger
	metrics    Metrics
	userAgent  string
	timeout    time.Duration
	maxRetries int
	maxLimited int // retries after 429s, counted apart
	baseDelay  time.Duration
	maxDelay   time.Duration
	maxAfter   time.Duration
	sleep      func(ctx context.Context, d time.Duration) error // replaced by tests
}

var dcPattern = regexp.MustCompile(`^[a-z]+[0-9]+$`)

// DataCenter returns the data center suffix of an API key ("us6"), or "".
func DataCenter(apiKey string) string {
	i := strings.LastIndexByte(apiKey, '-')
	if i < 0 {
		return ""
	}
	dc := strings.ToLower(apiKey[i+1:])
	if !dcPattern.MatchString(dc) {
		return ""
	}
	return dc
}

// BaseURLForKey is the API base URL of a key's data center.
func BaseURLForKey(apiKey string) (string, error) {
	dc := DataCenter(apiKey)
	if dc == "" {
		return "", errors.New("mailchimp: API key has no data-center suffix (expected <key>-<dc>, e.g. …-us6)")
	}
	return "https://" + dc + ".api.mailchimp.com/3.0", nil
}

// New checks cfg and returns a client. It makes no request.
func New(cfg Config) (*Client, error) {
	key, token := strings.TrimSpace(cfg.APIKey), strings.TrimSpace(cfg.AccessToken)
	switch {
	case key == "" && token == "":
		return nil, errors.New("mailchimp: an API key or an OAuth access token is required")
	case key != "" && token != "":
		return nil, errors.New("mailchimp: give an API key or an OAuth access token, not both")
	}
	base := strings.TrimSpace(cfg.BaseURL)
	if base == "" {
		if token != "" {
			return nil, errors.New("mailchimp: an OAuth access token needs the base URL from the OAuth metadata")
		}
		var err error
		if base, err = BaseURLForKey(key); err != nil {
			return nil, err
		}
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("mailchimp: base URL %q must be an http(s) URL without user info", redactURL(base))
	}
	u.RawQuery, u.Fragment = "", ""
	c := &Client{
		base:       strings.TrimRight(u.String(), "/"),
		http:       cfg.HTTPClient,
		limiter:    cfg.Limiter,
		log:        cfg.Logger,
		metrics:    cfg.Metrics,
		userAgent:  cfg.UserAgent,
		timeout:    cfg.Timeout,
		maxRetries: cfg.MaxRetries,
		maxLimited: cfg.RateLimitRetries,
		baseDelay:  cfg.RetryBaseDelay,
		maxDelay:   cfg.RetryMaxDelay,
		maxAfter:   cfg.MaxRetryAfter,
	}
	secret := key
	if key != "" {
		c.authHeader = "Basic " + basicAuth("segsync", key)
	} else {
		c.authHeader = "Bearer " + token
		secret = token
	}
	c.secret = secret
	c.account = cfg.Account
	if c.account == "" {
		sum := sha256.Sum256([]byte(secret))
		c.account = u.Host + "/" + hex.EncodeToString(sum[:8])
	}
	if c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = MaxConnsPerAccount
		c.http = &http.Client{Transport: t}
	}
	if c.limiter == nil {
		c.limiter = defaultLimiter()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.metrics == nil {
		c.metrics = noMetrics{}
	}
	if c.userAgent == "" {
		c.userAgent = "segsync"
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	switch {
	case c.maxLimited == 0:
		c.maxLimited = DefaultRateLimitRetries
	case c.maxLimited < 0:
		c.maxLimited = 0
	}
	if c.baseDelay <= 0 {
		c.baseDelay = DefaultRetryBaseDelay
	}
	if c.maxDelay <= 0 {
		c.maxDelay = DefaultRetryMaxDelay
	}
	if c.maxDelay < c.baseDelay {
		c.maxDelay = c.baseDelay
	}
	if c.maxAfter <= 0 {
		c.maxAfter = DefaultMaxRetryAfter
	}
	c.sleep = sleepCtx
	return c, nil
}

// Account is the key this client's requests are limited under: the API
// host and a hash of the credential, or Config.Account.
func (c *Client) Account() string { return c.account }

// BaseURL is the API base URL the client calls.
func (c *Client) BaseURL() string { return c.base }

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = url.User("redacted")
		return u.String()
	}
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// request is one API call: Op names its route for metrics and errors, path
// is already escaped.
type request struct {
	op     string
	method string
	path   string
	query  url.Values
	body   any
	out    any
	// replayed, when set, is set to true once an attempt is repeated
	// after one that may have been applied (timeout, dropped connection,
	// 5xx): the final answer may then describe the effect of an earlier
	// attempt (say, "contact exists" for a contact the first one created).
	replayed *bool
}

// answer is what one attempt got back.
type answer struct {
	status int
	header http.Header
	body   []byte
	buf    *bytes.Buffer // holds body when it came from bodies
}

// bodies holds the buffers answers are read into: a first export reads
// thousands of batch answers of tens of kilobytes each, and reading each
// into a new slice was a tenth of its allocations. A buffer grown past
// maxPooledBody is left to the garbage collector.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBody = 1 << 20

// release gives the answer's buffer back once nothing reads body anymore.
func (a answer) release() {
	if a.buf != nil && a.buf.Cap() <= maxPooledBody {
		bodies.Put(a.buf)
	}
}

// do runs r with limiting and retries, and decodes a 2xx answer into r.out.
func (c *Client) do(ctx context.Context, r request) error {
	var body []byte
	if r.body != nil {
		var err error
		if a, ok := r.body.(bodyAppender); ok {
			body, err = a.appendJSON(make([]byte, 0, a.size()))
		} else {
			body, err = json.Marshal(r.body)
		}
		if err != nil {
			return fmt.Errorf("mailchimp %s: encoding request: %w", r.op, err)
		}
	}
	target := c.base + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	failed, limited := 0, 0 // retries so far, by kind
	for attempt := 0; ; attempt++ {
		ans, err := c.attempt(ctx, r, target, body)
		defer ans.release() // what the answer is decoded into holds none of it
		if err == nil && ans.status >= 200 && ans.status < 300 {
			answered(ctx)
			if r.out == nil || len(bytes.TrimSpace(ans.body)) == 0 {
				return nil
			}
			if err := decodeAnswer(ans.body, r.out); err != nil {
				return fmt.Errorf("mailchimp %s: decoding answer: %w", r.op, err)
			}
			return nil
		}
		if errors.Is(err, ErrGated) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("mailchimp %s: %w", r.op, ctxErr(ctx))
		}
		var reason string
		var wait time.Duration
		var final error
		used, budget := &failed, c.maxRetries // the retries this answer draws on
		switch {
		case errors.Is(err, errLimiter):
			reason, final = "limiter", err
		case errors.Is(err, ErrTimeout):
			reason, final = "timeout", fmt.Errorf("mailchimp %s: %w (after %s)", r.op, ErrTimeout, c.timeout)
		case err != nil:
			reason, final = "network", fmt.Errorf("mailchimp %s: %w", r.op, err)
		default:
			apiErr := c.apiError(r.op, ans)
			final = apiErr
			switch {
			case ans.status == http.StatusTooManyRequests:
				reason, used, budget = "rate_limited", &limited, c.maxLimited
				wait = c.retryAfter(ans.header.Get("Retry-After"))
			case ans.status == http.StatusForbidden && !apiErr.Problem:
				reason, used, budget = "forbidden_no_body", &limited, c.maxLimited
			case ans.status >= 500:
				reason = "server_error"
				if ans.status == http.StatusServiceUnavailable {
					wait = c.retryAfter(ans.header.Get("Retry-After"))
				}
			default:
				return apiErr
			}
		}
		if *used >= budget {
			if attempt > 0 {
				return fmt.Errorf("%w (gave up after %d attempts)", final, attempt+1)
			}
			return final
		}
		*used++
		if wait <= 0 {
			wait = c.backoff(attempt)
		}
		if r.replayed != nil && (reason == "timeout" || reason == "network" || reason == "server_error") {
			*r.replayed = true
		}
		c.metrics.ObserveRetry(r.op, reason)
		c.log.LogAttrs(ctx, slog.LevelDebug, "mailchimp: retrying",
			slog.String("op", r.op), slog.String("reason", reason),
			slog.Int("attempt", attempt+1), slog.Duration("wait", wait))
		if err := c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("mailchimp %s: waiting to retry (%s): %w", r.op, reason, err)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctxErr(ctx)
	case <-t.C:
		return nil
	}
}

// ctxErr is ctx's error together with its cause, so that errors.Is finds
// both context.Canceled and a caller's own cause.
func ctxErr(ctx context.Context) error {
	err, cause := ctx.Err(), context.Cause(ctx)
	if cause == nil || cause == err {
		return err
	}
	return fmt.Errorf("%w: %w", err, cause)
}

// attempt makes one request while holding a limiter slot. A transport
// error, a timeout or a body that cannot be read completely is returned as
// err; any HTTP answer is returned as ans.
func (c *Client) attempt(ctx context.Context, r request, target string, body []byte) (answer, error) {
	waitStart := time.Now()
	endWait := slotWait(ctx)
	release, err := c.limiter.Acquire(ctx, c.account)
	endWait()
	if err != nil {
		return answer{}, fmt.Errorf("mailchimp %s: %w: %w", r.op, errLimiter, err)
	}
	defer release()
	c.metrics.ObserveLimiterWait(time.Since(waitStart))

	actx, cancel := context.WithTimeoutCause(ctx, c.timeout, ErrTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, r.method, target, rd)
	if err != nil {
		return answer{}, fmt.Errorf("mailchimp %s: building request: %w", r.op, err)
	}
	req.Header.Set("Authorization", c.authHeader)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	// Last moment before the request leaves: a closed gate stops it.
	if err := checkGate(ctx, r.op); err != nil {
		return answer{}, err
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	var ans answer
	if err == nil {
		ans = answer{status: resp.StatusCode, header: resp.Header, buf: bodies.Get().(*bytes.Buffer)}
		ans.buf.Reset()
		_, err = ans.buf.ReadFrom(io.LimitReader(resp.Body, maxResponseBytes))
		ans.body = ans.buf.Bytes()
		resp.Body.Close()
	}
	status := ans.status
	if err != nil {
		status = 0
	}
	c.metrics.ObserveRequest(r.op, status, time.Since(start))
	if err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(actx), ErrTimeout) {
			return answer{}, ErrTimeout
		}
		return answer{}, c.scrub(err)
	}
	return ans, nil
}

// scrub makes sure a transport error cannot carry the credential (it never
// should: the credential travels in a header, not the URL).
func (c *Client) scrub(err error) error {
	if c.secret != "" && strings.Contains(err.Error(), c.secret) {
		return errors.New(strings.ReplaceAll(err.Error(), c.secret, "[redacted]"))
	}
	return err
}

// apiError builds the *Error of a non-2xx answer.
func (c *Client) apiError(op string, ans answer) *Error {
	e := &Error{}
	trimmed := bytes.TrimSpace(ans.body)
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, e) == nil && (e.Title != "" || e.Detail != "") {
		e.Problem = true
	} else {
		*e = Error{}
		excerpt := strings.Join(strings.Fields(string(trimmed)), " ")
		if len(excerpt) > 200 {
			excerpt = excerpt[:200] + "…"
		}
		e.Detail = excerpt
	}
	e.Status = ans.status
	if e.Title == "" {
		e.Title = http.StatusText(ans.status)
	}
	if e.Instance == "" {
		e.Instance = ans.header.Get("X-Request-Id")
	}
	if c.secret != "" { // a server echoing the credential must not make us print it
		e.Title = strings.ReplaceAll(e.Title, c.secret, "[redacted]")
		e.Detail = strings.ReplaceAll(e.Detail, c.secret, "[redacted]")
		for i := range e.Fields {
			e.Fields[i].Message = strings.ReplaceAll(e.Fields[i].Message, c.secret, "[redacted]")
		}
	}
	e.Op = op
	e.RetryAfter = ans.header.Get("Retry-After")
	return e
}

// backoff is the jittered exponential wait before retry number attempt+1:
// drawn from [d/2, d] with d = base·2^attempt capped at the maximum.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.maxDelay
	if attempt < 30 {
		if x := c.baseDelay << attempt; x > 0 && x < d {
			d = x
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryAfter parses a Retry-After header (delay seconds or an HTTP date),
// capped at MaxRetryAfter; 0 means absent or unusable.
func (c *Client) retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0
		}
		if secs > int64(c.maxAfter/time.Second) {
			return c.maxAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	} else {
		return 0
	}
	if d <= 0 {
		// "Retry now" still deserves a small, jittered pause.
		return c.backoff(0) / 4
	}
	return min(d, c.maxAfter)
}
