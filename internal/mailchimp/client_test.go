package mailchimp

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const testKey = "0123456789abcdef0123456789abcdef-us6"

func TestNewBaseURLAndAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		base    string
		wantErr string
	}{
		{"key with dc", Config{APIKey: testKey}, "https://us6.api.mailchimp.com/3.0", ""},
		{"override", Config{APIKey: testKey, BaseURL: "http://127.0.0.1:9/3.0/"}, "http://127.0.0.1:9/3.0", ""},
		{"token with base", Config{AccessToken: "tok", BaseURL: "https://us1.api.mailchimp.com/3.0"}, "https://us1.api.mailchimp.com/3.0", ""},
		{"no credential", Config{}, "", "API key or an OAuth access token is required"},
		{"both", Config{APIKey: testKey, AccessToken: "tok"}, "", "not both"},
		{"key without dc", Config{APIKey: "0123456789abcdef"}, "", "no data-center suffix"},
		{"key with bad dc", Config{APIKey: "0123-us6.evil.com/"}, "", "no data-center suffix"},
		{"token without base", Config{AccessToken: "tok"}, "", "base URL from the OAuth metadata"},
		{"bad base", Config{APIKey: testKey, BaseURL: "ftp://x"}, "", "must be an http(s) URL"},
		{"base with user", Config{APIKey: testKey, BaseURL: "https://u:p@x/3.0"}, "", "must be an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New error = %v, want containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "0123456789abcdef") || strings.Contains(err.Error(), "u:p@") {
					t.Fatalf("error leaks the credential: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.BaseURL() != tt.base {
				t.Errorf("BaseURL = %s, want %s", c.BaseURL(), tt.base)
			}
			if strings.Contains(c.Account(), "0123456789abcdef") || c.Account() == "" {
				t.Errorf("Account() = %q", c.Account())
			}
		})
	}
	a, _ := New(Config{APIKey: testKey, BaseURL: "http://h/3.0"})
	b, _ := New(Config{APIKey: testKey, BaseURL: "http://h/3.0"})
	o, _ := New(Config{APIKey: "ffff-us6", BaseURL: "http://h/3.0"})
	x, _ := New(Config{APIKey: testKey, BaseURL: "http://h/3.0", Account: "acct-1"})
	if a.Account() != b.Account() || a.Account() == o.Account() || x.Account() != "acct-1" {
		t.Errorf("account keys: same key %q/%q, other key %q, override %q", a.Account(), b.Account(), o.Account(), x.Account())
	}
}

func TestAuthHeaders(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Authorization"))
		io.WriteString(w, `{"health_status":"Everything's Chimpy!"}`)
	}))
	defer srv.Close()
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{APIKey: testKey}, "Basic " + base64.StdEncoding.EncodeToString([]byte("segsync:"+testKey))},
		{Config{AccessToken: "tok-123"}, "Bearer tok-123"},
	} {
		tt.cfg.BaseURL = srv.URL + "/3.0"
		c, err := New(tt.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got.Load() != tt.want {
			t.Errorf("Authorization = %q, want %q", got.Load(), tt.want)
		}
	}
}

// step is one scripted answer of the fake server.
type step func(w http.ResponseWriter, r *http.Request)

func problem(status int, title, detail string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
		w.Header().Set("X-Request-Id", "req-1")
		w.WriteHeader(status)
		io.WriteString(w, `{"type":"https://mailchimp.com/developer/marketing/docs/errors/","title":"`+title+`","status":`+strconv.Itoa(status)+`,"detail":"`+detail+`","instance":"req-1"}`)
	}
}

func bare(status int, header map[string]string, body string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func ok(body string) step {
	return bare(200, map[string]string{"Content-Type": "application/json"}, body)
}

func dropped(w http.ResponseWriter, r *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

func truncated(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "100")
	w.WriteHeader(200)
	io.WriteString(w, `{"health_status":`)
	w.(http.Flusher).Flush()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

func slow(w http.ResponseWriter, r *http.Request) {
	<-r.Context().Done() // outlast the client's attempt timeout
}

// script serves its steps in order and repeats the last one; it records
// every request body and the highest number of requests in flight.
type script struct {
	mu       sync.Mutex
	steps    []step
	n        int
	bodies   []string
	inFlight atomic.Int32
	peak     atomic.Int32
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cur := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		p := s.peak.Load()
		if cur <= p || s.peak.CompareAndSwap(p, cur) {
			break
		}
	}
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	st := s.steps[min(s.n, len(s.steps)-1)]
	s.n++
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	st(w, r)
}

func (s *script) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// newScripted starts a fake server and a client with fast retries whose
// sleeps are recorded instead of slept.
func newScripted(t *testing.T, steps ...step) (*Client, *script, *[]time.Duration, *bytes.Buffer) {
	t.Helper()
	s := &script{steps: steps}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	logs := &bytes.Buffer{}
	c, err := New(Config{
		APIKey: testKey, BaseURL: srv.URL + "/3.0",
		Limiter:          NewLocalLimiter(2),
		Logger:           slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MaxRetries:       3,
		RateLimitRetries: 4,
		RetryBaseDelay:   100 * time.Millisecond,
		RetryMaxDelay:    time.Second,
		MaxRetryAfter:    10 * time.Second,
		Timeout:          200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sleeps []time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) error {
		if n := c.limiter.(interface{ InUse(string) int }).InUse(c.Account()); n != 0 {
			t.Errorf("%d limiter slots held during a backoff sleep", n)
		}
		mu.Lock()
		sleeps = append(sleeps, d)
		mu.Unlock()
		return ctx.Err()
	}
	return c, s, &sleeps, logs
}

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	const chimpy = `{"health_status":"Everything's Chimpy!"}`
	retryAtDate := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", time.Now().Add(5*time.Second).UTC().Format(http.TimeFormat))
		w.WriteHeader(429)
	}
	tests := []struct {
		name   string
		steps  []step
		calls  int
		check  func(t *testing.T, err error)
		sleeps func(t *testing.T, d []time.Duration)
	}{
		{
			name:  "429 with Retry-After seconds",
			steps: []step{bare(429, map[string]string{"Retry-After": "3"}, ""), ok(chimpy)},
			calls: 2,
			sleeps: func(t *testing.T, d []time.Duration) {
				if len(d) != 1 || d[0] != 3*time.Second {
					t.Errorf("sleeps = %v, want [3s]", d)
				}
			},
		},
		{
			name:  "429 with Retry-After date",
			steps: []step{retryAtDate, ok(chimpy)},
			calls: 2,
			sleeps: func(t *testing.T, d []time.Duration) {
				if len(d) != 1 || d[0] < 3*time.Second || d[0] > 5*time.Second {
					t.Errorf("sleeps = %v, want about 5s", d)
				}
			},
		},
		{
			name:  "429 with huge Retry-After is capped",
			steps: []step{bare(429, map[string]string{"Retry-After": "86400"}, ""), ok(chimpy)},
			calls: 2,
			sleeps: func(t *testing.T, d []time.Duration) {
				if len(d) != 1 || d[0] != 10*time.Second {
					t.Errorf("sleeps = %v, want [10s]", d)
				}
			},
		},
		{
			name:  "429 problem without Retry-After backs off exponentially",
			steps: []step{problem(429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."), problem(429, "Too Many Requests", ""), ok(chimpy)},
			calls: 3,
			sleeps: func(t *testing.T, d []time.Duration) {
				if len(d) != 2 || d[0] < 50*time.Millisecond || d[0] > 100*time.Millisecond || d[1] < 100*time.Millisecond || d[1] > 200*time.Millisecond {
					t.Errorf("sleeps = %v, want [50ms..100ms, 100ms..200ms]", d)
				}
			},
		},
		{
			name:  "429 without body forever gives up",
			steps: []step{bare(429, nil, "")},
			calls: 5,
			check: func(t *testing.T, err error) {
				if !IsRateLimited(err) || !strings.Contains(err.Error(), "gave up after 5 attempts") {
					t.Errorf("err = %v", err)
				}
			},
		},
		{
			// Three failures use up MaxRetries (3); the 429s between them
			// are counted apart, so the call still gets its answer.
			name: "429s do not use up the retries of failures",
			steps: []step{bare(500, nil, ""), bare(429, nil, ""), bare(502, nil, ""), bare(429, nil, ""),
				bare(503, nil, ""), bare(429, nil, ""), ok(chimpy)},
			calls: 7,
		},
		{
			name:  "403 without body is overload",
			steps: []step{bare(403, map[string]string{"Content-Type": "text/html"}, "<html>Forbidden</html>"), ok(chimpy)},
			calls: 2,
		},
		{
			name:  "403 problem is auth, not retried",
			steps: []step{problem(403, "Forbidden", "You don't have permission to access this resource")},
			calls: 1,
			check: func(t *testing.T, err error) {
				if !IsAuth(err) {
					t.Errorf("err = %v, want auth", err)
				}
			},
		},
		{
			name:  "401 not retried",
			steps: []step{problem(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")},
			calls: 1,
			check: func(t *testing.T, err error) {
				e, ok := AsError(err)
				if !IsAuth(err) || !ok || e.Title != "API Key Invalid" || e.Instance != "req-1" || !e.Problem {
					t.Errorf("err = %#v", err)
				}
			},
		},
		{
			name:  "400 not retried",
			steps: []step{problem(400, "Invalid Resource", "The resource submitted could not be validated.")},
			calls: 1,
			check: func(t *testing.T, err error) {
				if !IsInvalidResource(err) {
					t.Errorf("err = %v", err)
				}
			},
		},
		{
			name:  "404 not retried",
			steps: []step{problem(404, "Resource Not Found", "The requested resource could not be found.")},
			calls: 1,
			check: func(t *testing.T, err error) {
				if !IsNotFound(err) {
					t.Errorf("err = %v", err)
				}
			},
		},
		{
			name:  "5xx retried",
			steps: []step{problem(500, "Internal Server Error", ""), bare(503, nil, "upstream down"), bare(502, nil, ""), ok(chimpy)},
			calls: 4,
			sleeps: func(t *testing.T, d []time.Duration) {
				want := []time.Duration{100, 200, 400}
				for i, w := range want {
					w *= time.Millisecond
					if i >= len(d) || d[i] < w/2 || d[i] > w {
						t.Errorf("sleep %d = %v, want %v..%v (all %v)", i, d, w/2, w, d)
					}
				}
			},
		},
		{
			name:  "5xx forever gives up",
			steps: []step{bare(503, nil, "")},
			calls: 4,
			check: func(t *testing.T, err error) {
				e, ok := AsError(err)
				if !ok || e.Status != 503 || e.Problem || e.Title != "Service Unavailable" {
					t.Errorf("err = %v", err)
				}
			},
		},
		{
			name:  "503 with Retry-After",
			steps: []step{bare(503, map[string]string{"Retry-After": "2"}, ""), ok(chimpy)},
			calls: 2,
			sleeps: func(t *testing.T, d []time.Duration) {
				if len(d) != 1 || d[0] != 2*time.Second {
					t.Errorf("sleeps = %v, want [2s]", d)
				}
			},
		},
		{name: "dropped connection retried", steps: []step{dropped, dropped, ok(chimpy)}, calls: 3},
		{name: "truncated body retried", steps: []step{truncated, ok(chimpy)}, calls: 2},
		{name: "slow answer times out and is retried", steps: []step{slow, ok(chimpy)}, calls: 2},
		{
			name:  "slow forever gives up with ErrTimeout",
			steps: []step{slow},
			calls: 4,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrTimeout) {
					t.Errorf("err = %v, want ErrTimeout", err)
				}
				if k, r := Classify(err); k != Transient || !strings.HasPrefix(r, ReasonNetwork) {
					t.Errorf("Classify = %v %q", k, r)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, s, sleeps, logs := newScripted(t, tt.steps...)
			err := c.Ping(context.Background())
			if tt.check != nil {
				tt.check(t, err)
			} else if err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if got := s.calls(); got != tt.calls {
				t.Errorf("server saw %d calls, want %d", got, tt.calls)
			}
			if tt.sleeps != nil {
				tt.sleeps(t, *sleeps)
			}
			if len(*sleeps) != tt.calls-1 {
				t.Errorf("%d sleeps for %d calls", len(*sleeps), tt.calls)
			}
			if err != nil && strings.Contains(err.Error(), "0123456789abcdef") {
				t.Errorf("error leaks the key: %v", err)
			}
			if strings.Contains(logs.String(), "0123456789abcdef") {
				t.Errorf("log leaks the key: %s", logs)
			}
		})
	}
}

func TestRetryReplaysBody(t *testing.T) {
	t.Parallel()
	c, s, _, _ := newScripted(t, problem(500, "Internal Server Error", ""), dropped,
		ok(`{"id":"abc","email_address":"ann@shop.org","status":"subscribed"}`))
	m, err := c.PutMember(context.Background(), "L1", MemberInput{EmailAddress: "Ann@Shop.org", StatusIfNew: StatusSubscribed,
		MergeFields: map[string]any{"FNAME": "Ann", "LNAME": ""}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != StatusSubscribed {
		t.Errorf("member = %+v", m)
	}
	want := `{"email_address":"Ann@Shop.org","status_if_new":"subscribed","merge_fields":{"FNAME":"Ann","LNAME":""}}`
	if len(s.bodies) != 3 {
		t.Fatalf("%d requests", len(s.bodies))
	}
	for i, b := range s.bodies {
		if b != want {
			t.Errorf("body %d = %s, want %s", i, b, want)
		}
	}
}

func TestCancellation(t *testing.T) {
	t.Parallel()
	t.Run("during backoff", func(t *testing.T) {
		t.Parallel()
		c, _, _, _ := newScripted(t, bare(503, nil, ""))
		ctx, cancel := context.WithCancel(context.Background())
		c.sleep = func(ctx context.Context, d time.Duration) error { cancel(); return sleepCtx(ctx, time.Hour) }
		err := c.Ping(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("during request", func(t *testing.T) {
		t.Parallel()
		c, s, _, _ := newScripted(t, slow)
		c.timeout = time.Hour
		ctx, cancel := context.WithCancelCause(context.Background())
		runStopped := errors.New("run stopped")
		go func() {
			// The call is counted once the server has read it; in flight
			// alone can come just before that.
			for s.calls() == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel(runStopped)
		}()
		err := c.Ping(ctx)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, runStopped) || s.calls() != 1 {
			t.Fatalf("err = %v after %d calls, want context.Canceled after 1", err, s.calls())
		}
	})
	t.Run("waiting for a slot", func(t *testing.T) {
		t.Parallel()
		c, s, _, _ := newScripted(t, ok(`{"health_status":"Everything's Chimpy!"}`))
		lim := c.limiter.(*LocalLimiter)
		for range lim.Max() {
			if _, err := lim.Acquire(context.Background(), c.Account()); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := c.Ping(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || s.calls() != 0 {
			t.Fatalf("err = %v after %d calls", err, s.calls())
		}
	})
}

// flakyLimiter fails its first Acquire, as a lease store that is briefly
// unreachable would.
type flakyLimiter struct {
	*LocalLimiter
	failed atomic.Bool
}

func (f *flakyLimiter) Acquire(ctx context.Context, account string) (func(), error) {
	if !f.failed.Swap(true) {
		return nil, errors.New("lease store unreachable")
	}
	return f.LocalLimiter.Acquire(ctx, account)
}

func TestLimiterFailureRetried(t *testing.T) {
	t.Parallel()
	c, s, sleeps, _ := newScripted(t, ok(`{"health_status":"Everything's Chimpy!"}`))
	lim := &flakyLimiter{LocalLimiter: NewLocalLimiter(1)}
	c.limiter = lim
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.calls() != 1 || len(*sleeps) != 1 {
		t.Errorf("%d calls, %d sleeps; want 1 and 1", s.calls(), len(*sleeps))
	}
}

func TestLimiterBoundsConcurrency(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	s := &script{steps: []step{func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, `{"health_status":"Everything's Chimpy!"}`)
	}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	lim := NewLocalLimiter(3)
	// Two clients of the same key share the limit.
	var clients []*Client
	for range 2 {
		c, err := New(Config{APIKey: testKey, BaseURL: srv.URL + "/3.0", Limiter: lim})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() { errs <- clients[i%2].Ping(context.Background()) })
	}
	// Wait until the limit is reached, then let everything through.
	for s.inFlight.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	if n := lim.InUse(clients[0].Account()); n != 3 {
		t.Errorf("InUse = %d, want 3", n)
	}
	once.Do(func() { close(release) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if p := s.peak.Load(); p != 3 {
		t.Errorf("peak concurrency %d, want 3", p)
	}
	if s.calls() != 20 {
		t.Errorf("calls = %d", s.calls())
	}
	if n := lim.InUse(clients[0].Account()); n != 0 {
		t.Errorf("%d slots still held", n)
	}
}

func TestLocalLimiter(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want int }{{0, 10}, {-1, 10}, {1, 1}, {7, 7}, {10, 10}, {50, 10}} {
		if got := NewLocalLimiter(tt.in).Max(); got != tt.want {
			t.Errorf("NewLocalLimiter(%d).Max() = %d, want %d", tt.in, got, tt.want)
		}
	}
	l := NewLocalLimiter(2)
	ctx := context.Background()
	r1, _ := l.Acquire(ctx, "a")
	r2, _ := l.Acquire(ctx, "a")
	if _, err := l.Acquire(ctx, "b"); err != nil {
		t.Fatalf("other account blocked: %v", err)
	}
	full, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(full, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third slot: err = %v", err)
	}
	r1()
	r1() // releasing twice gives back one slot only
	if got := l.InUse("a"); got != 1 {
		t.Fatalf("InUse = %d, want 1", got)
	}
	r3, err := l.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	r2()
	r3()
	done, cancel2 := context.WithCancel(ctx)
	cancel2()
	if _, err := l.Acquire(done, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: err = %v", err)
	}
}

func TestPrometheusMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := NewPrometheusMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPrometheusMetrics(reg); err != nil {
		t.Fatalf("second registration: %v", err)
	}
	c, _, _, _ := newScripted(t, bare(429, nil, ""), bare(403, nil, ""), ok(`{"health_status":"Everything's Chimpy!"}`))
	c.metrics = m
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mt.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case mt.GetCounter() != nil:
				got[key] = mt.GetCounter().GetValue()
			case mt.GetHistogram() != nil:
				got[key] = float64(mt.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"segsync_mailchimp_requests_total,endpoint=GET /ping,status=200":              1,
		"segsync_mailchimp_requests_total,endpoint=GET /ping,status=403":              1,
		"segsync_mailchimp_requests_total,endpoint=GET /ping,status=429":              1,
		"segsync_mailchimp_rate_limited_total,endpoint=GET /ping":                     2,
		"segsync_mailchimp_retries_total,endpoint=GET /ping,reason=rate_limited":      1,
		"segsync_mailchimp_retries_total,endpoint=GET /ping,reason=forbidden_no_body": 1,
		"segsync_mailchimp_request_duration_seconds,endpoint=GET /ping":               3,
		"segsync_mailchimp_limiter_wait_seconds":                                      3,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
