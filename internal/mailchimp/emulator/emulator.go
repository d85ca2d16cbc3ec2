package emulator

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures an Emulator. The zero value is a usable, fault-free
// emulator with one generated account.
type Options struct {
	// APIKeys are the accounts' API keys, each "<hex>-<dc>". One key is
	// generated when empty.
	APIKeys []string
	// MaxConns is the number of concurrent requests each account may have in
	// flight; more are answered with 429. Default 10.
	MaxConns int
	// Latency is how long every API request takes, the emulator's own work
	// included (the answer is held until then); LatencyPerMember is added
	// per member in batch calls (batch subscribe, static segment batches).
	Latency          time.Duration
	LatencyPerMember time.Duration
	// FailRate (0–1) is the share of API requests that fail with 500, 503 or
	// a dropped connection; some fail after the change was applied.
	FailRate float64
	// Seed makes the fault sequence deterministic.
	Seed int64
	// Logger receives one debug line per request; nil discards.
	Logger *slog.Logger
	// RecordCalls keeps every API request's route, arrival and answer
	// until the next ResetCounters (RecordedCalls), for a benchmark's
	// account of the connections' idle time.
	RecordCalls bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	// WebhookClient makes the webhook URL validations (GET) and deliveries
	// (POST); a client with a 10 s timeout when nil. Tests may override it.
	WebhookClient *http.Client
	// WebhookRetries is the number of retries of a failed delivery
	// (default 3, as Mailchimp; <0: none). WebhookRetryDelay is the wait
	// before the first retry, doubling after each (default 1 s; Mailchimp
	// spreads its retries over 75 minutes). WebhookTimeout bounds one
	// attempt (default 10 s, as Mailchimp).
	WebhookRetries    int
	WebhookRetryDelay time.Duration
	WebhookTimeout    time.Duration
}

// Emulator is an in-memory Mailchimp Marketing API v3. It is safe for
// concurrent use; each audience has its own lock.
type Emulator struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	maxConns int32
	handler  http.Handler

	accounts []*account

	mu     sync.RWMutex
	byKey  map[string]*account  // API keys and OAuth access tokens
	codes  map[string]oauthCode // OAuth authorization codes not yet exchanged
	lists  map[string]*list
	nextID atomic.Int64 // web ids, segment ids, merge ids (emulator-wide)

	faultMu sync.Mutex
	rng     *mrand.Rand

	callMu sync.Mutex
	calls  map[string]int
	// callSpan is when the first request since the last reset came in
	// and when the last one answered.
	callSpan [2]time.Time
	// firstWrite is when the first request since the last reset that was
	// not a GET came in.
	firstWrite time.Time
	recorded   []Call // with Options.RecordCalls

	routeList []string // API routes, "METHOD /path/{template}"

	hooks             deliverer // webhook delivery queue, worker and log
	defaultHookClient *http.Client
}

// account is one Mailchimp account (one API key).
type account struct {
	key      string
	dc       string
	id       string
	name     string
	inflight atomic.Int32
	maxSeen  atomic.Int32
	lists    []*list // creation order; guarded by Emulator.mu
}

// New builds an emulator.
func New(opts Options) *Emulator {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.APIKeys) == 0 {
		opts.APIKeys = []string{GenerateKey("us1")}
	}
	e := &Emulator{
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Now,
		maxConns: int32(min(opts.MaxConns, math.MaxInt32)),
		byKey:    map[string]*account{},
		codes:    map[string]oauthCode{},
		lists:    map[string]*list{},
		rng:      mrand.New(mrand.NewPCG(uint64(opts.Seed), 0x5e95_c0de)),
		calls:    map[string]int{},
	}
	e.defaultHookClient = &http.Client{Timeout: DefaultWebhookTimeout}
	e.nextID.Store(1000)
	for i, k := range opts.APIKeys {
		dc := "us1"
		if j := strings.LastIndexByte(k, '-'); j >= 0 && j < len(k)-1 {
			dc = k[j+1:]
		}
		sum := md5.Sum([]byte(k))
		a := &account{key: k, dc: dc, id: hex.EncodeToString(sum[:])[:25], name: fmt.Sprintf("Emulated Account %d", i+1)}
		e.accounts = append(e.accounts, a)
		e.byKey[k] = a
	}
	e.handler = e.routes()
	return e
}

// GenerateKey returns a random API key for data center dc.
func GenerateKey(dc string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-" + dc
}

// Handler serves the API under /3.0, OAuth under /oauth2 and the control
// endpoints under /_emulator. A fault that drops the connection panics with
// http.ErrAbortHandler, which http.Server turns into a closed connection;
// callers that invoke ServeHTTP directly with FailRate > 0 must recover it.
func (e *Emulator) Handler() http.Handler { return e.handler }

// Keys returns the accounts' API keys in the order given.
func (e *Emulator) Keys() []string {
	out := make([]string, len(e.accounts))
	for i, a := range e.accounts {
		out[i] = a.key
	}
	return out
}

// Routes returns the emulated API routes, "METHOD /path/{template}" with
// the OpenAPI document's path templates (relative to /3.0).
func (e *Emulator) Routes() []string { return slices.Clone(e.routeList) }

// apiFunc handles one API request for an authenticated account. It returns
// the body to send with 200 (a []byte of JSON, or a value to marshal), nil
// for 204, or an error (an *apiError becomes its problem document).
type apiFunc func(r *http.Request, a *account) (any, error)

// rawJSON is a response body that is already encoded.
type rawJSON []byte

// projectedJSON is an encoded body to which fields / exclude_fields were
// already applied.
type projectedJSON []byte

// fault kinds drawn for a request.
type fault uint8

const (
	faultNone fault = iota
	fault500
	fault503
	faultDrop
)

// api registers an API route under /3.0. route uses the OpenAPI path
// template, e.g. "POST /lists/{list_id}".
func (e *Emulator) api(mux *http.ServeMux, route string, h apiFunc) {
	e.routeList = append(e.routeList, route)
	method, path, _ := strings.Cut(route, " ")
	pattern := method + " /3.0" + path
	if path == "/" {
		pattern = method + " /3.0/{$}"
		mux.HandleFunc(method+" /3.0", func(w http.ResponseWriter, r *http.Request) { e.serveAPI(w, r, route, h) })
	}
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { e.serveAPI(w, r, route, h) })
}

func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request, route string, h apiFunc) {
	e.count(route)
	if e.opts.RecordCalls {
		defer e.record(route, time.Now())
	}
	defer e.answered()
	a, perr := e.authenticate(r)
	if perr != nil {
		writeProblem(w, perr)
		return
	}
	n := a.inflight.Add(1)
	defer a.inflight.Add(-1)
	for {
		seen := a.maxSeen.Load()
		if n <= seen || a.maxSeen.CompareAndSwap(seen, n) {
			break
		}
	}
	if n > e.maxConns {
		w.Header().Set("Retry-After", "1")
		writeProblem(w, &apiError{status: http.StatusTooManyRequests, title: "Too Many Requests",
			detail: fmt.Sprintf("You have exceeded the limit of %d simultaneous connections.", e.maxConns)})
		return
	}
	// The call takes Latency, the emulator's own work included (it stands
	// for Mailchimp's, which the latency models): the change is applied at
	// once and the answer leaves Latency after the request came in. A
	// caller that gives up meanwhile loses the answer, not the change.
	answerAt := time.Now().Add(e.opts.Latency)
	r = r.WithContext(context.WithValue(r.Context(), answerAtKey{}, &answerAt)) // memberDelay adds to it
	f, after := e.drawFault()
	if f != faultNone && !after {
		if err := sleepUntil(r.Context(), answerAt); err != nil {
			return
		}
		e.log.Debug("emulator: injected fault before change", "route", route, "fault", f)
		injectFault(w, f)
		return
	}
	out, err := h(r, a)
	// The answer is encoded within the latency too, and held until it is due.
	held := httptest.NewRecorder()
	if f == faultNone {
		if err != nil {
			ae, ok := err.(*apiError)
			if !ok {
				e.log.Error("emulator: internal error", "route", route, "err", err)
				ae = &apiError{status: http.StatusInternalServerError, title: "Internal Server Error", detail: err.Error()}
			}
			writeProblem(held, ae)
		} else {
			writeResult(held, r, out)
		}
	}
	if err := sleepUntil(r.Context(), answerAt); err != nil {
		return
	}
	if f != faultNone {
		e.log.Debug("emulator: injected fault after change", "route", route, "fault", f)
		injectFault(w, f)
		return
	}
	e.log.Debug("emulator: request", "route", route, "path", r.URL.Path)
	maps.Copy(w.Header(), held.Header())
	w.WriteHeader(held.Code)
	_, _ = w.Write(held.Body.Bytes())
}

func writeResult(w http.ResponseWriter, r *http.Request, out any) {
	if out == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var body []byte
	switch v := out.(type) {
	case projectedJSON:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(v)
		return
	case rawJSON:
		body = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			writeProblem(w, &apiError{status: 500, title: "Internal Server Error", detail: err.Error()})
			return
		}
		body = b
	}
	q := r.URL.Query()
	if fields, excl := q.Get("fields"), q.Get("exclude_fields"); fields != "" || excl != "" {
		b, err := filterFields(body, fields, excl)
		if err != nil {
			writeProblem(w, err)
			return
		}
		body = b
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// injectFault answers with a server error or drops the connection.
func injectFault(w http.ResponseWriter, f fault) {
	switch f {
	case fault500:
		writeProblem(w, &apiError{status: http.StatusInternalServerError, title: "Internal Server Error",
			detail: "An unexpected internal error has occurred. Please contact Support for more information."})
	case fault503:
		writeProblem(w, &apiError{status: http.StatusServiceUnavailable, title: "Service Unavailable",
			detail: "This service is temporarily unavailable. Please try again later."})
	default:
		// The server closes the connection without an answer.
		panic(http.ErrAbortHandler)
	}
}

// drawFault decides, from the seeded sequence, whether this request fails
// and whether the failure comes after the change was applied.
func (e *Emulator) drawFault() (fault, bool) {
	if e.opts.FailRate <= 0 {
		return faultNone, false
	}
	e.faultMu.Lock()
	defer e.faultMu.Unlock()
	if e.rng.Float64() >= e.opts.FailRate {
		return faultNone, false
	}
	f := fault(1 + e.rng.IntN(3))
	return f, e.rng.IntN(2) == 0
}

func (e *Emulator) count(route string) {
	e.callMu.Lock()
	e.calls[route]++
	if e.callSpan[0].IsZero() {
		e.callSpan[0] = time.Now()
	}
	if e.firstWrite.IsZero() && !strings.HasPrefix(route, http.MethodGet+" ") {
		e.firstWrite = time.Now()
	}
	e.callMu.Unlock()
}

// record keeps a request that came in at start and is answered now.
func (e *Emulator) record(route string, start time.Time) {
	end := time.Now()
	e.callMu.Lock()
	e.recorded = append(e.recorded, Call{Route: route, Start: start, End: end})
	e.callMu.Unlock()
}

// answered notes the end of a request for CallSpan.
func (e *Emulator) answered() {
	e.callMu.Lock()
	e.callSpan[1] = time.Now()
	e.callMu.Unlock()
}

// authenticate finds the account of the request's credential: HTTP Basic
// with any user name and the key as password, or a Bearer (or OAuth) token.
func (e *Emulator) authenticate(r *http.Request) (*account, *apiError) {
	var cred string
	if _, pw, ok := r.BasicAuth(); ok {
		cred = pw
	} else if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "OAuth") {
			cred = strings.TrimSpace(tok)
		}
	}
	if cred == "" {
		return nil, &apiError{status: http.StatusUnauthorized, title: "API Key Missing",
			detail: "Your request did not include an API key."}
	}
	e.mu.RLock()
	a := e.byKey[cred]
	e.mu.RUnlock()
	if a == nil {
		return nil, &apiError{status: http.StatusUnauthorized, title: "API Key Invalid",
			detail: "Your API key may be invalid, or you've attempted to access the wrong datacenter."}
	}
	return a, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sleepUntil waits until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error { return sleepCtx(ctx, time.Until(t)) }

// memberDelay applies --latency-per-member for a batch of n members.
// It waits before the change, and the answer of the batch leaves that much
// later than the call latency alone (see serveAPI).
func (e *Emulator) memberDelay(ctx context.Context, n int) error {
	d := time.Duration(n) * e.opts.LatencyPerMember
	if at, ok := ctx.Value(answerAtKey{}).(*time.Time); ok {
		*at = at.Add(d)
	}
	return sleepCtx(ctx, d)
}

// answerAtKey holds, in a request's context, when its answer leaves.
type answerAtKey struct{}

// decodeBody reads a JSON request body into v.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<20))
	if err := dec.Decode(v); err != nil {
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			return errField(te.Field, fmt.Sprintf("This value should be of type %s.", jsonKind(te.Type.Kind().String())))
		}
		return errJSON()
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct", "ptr":
		return "object"
	default:
		return "number"
	}
}

func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	e.api(mux, "GET /", e.getRoot)
	e.api(mux, "GET /ping", e.getPing)

	e.api(mux, "GET /lists", e.getLists)
	e.api(mux, "POST /lists", e.postLists)
	e.api(mux, "GET /lists/{list_id}", e.getList)
	e.api(mux, "PATCH /lists/{list_id}", e.patchList)
	e.api(mux, "DELETE /lists/{list_id}", e.deleteList)
	e.api(mux, "POST /lists/{list_id}", e.batchSubscribe)

	e.api(mux, "GET /lists/{list_id}/merge-fields", e.getMergeFields)
	e.api(mux, "POST /lists/{list_id}/merge-fields", e.postMergeField)
	e.api(mux, "GET /lists/{list_id}/merge-fields/{merge_id}", e.getMergeField)
	e.api(mux, "PATCH /lists/{list_id}/merge-fields/{merge_id}", e.patchMergeField)
	e.api(mux, "DELETE /lists/{list_id}/merge-fields/{merge_id}", e.deleteMergeField)

	e.api(mux, "GET /lists/{list_id}/members", e.getMembers)
	e.api(mux, "POST /lists/{list_id}/members", e.postMember)
	e.api(mux, "GET /lists/{list_id}/members/{subscriber_hash}", e.getMember)
	e.api(mux, "PUT /lists/{list_id}/members/{subscriber_hash}", e.putMember)
	e.api(mux, "PATCH /lists/{list_id}/members/{subscriber_hash}", e.patchMember)
	e.api(mux, "DELETE /lists/{list_id}/members/{subscriber_hash}", e.archiveMember)
	e.api(mux, "POST /lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent", e.deletePermanent)
	e.api(mux, "GET /lists/{list_id}/members/{subscriber_hash}/tags", e.getMemberTags)
	e.api(mux, "POST /lists/{list_id}/members/{subscriber_hash}/tags", e.postMemberTags)

	e.api(mux, "GET /lists/{list_id}/segments", e.getSegments)
	e.api(mux, "POST /lists/{list_id}/segments", e.postSegment)
	e.api(mux, "GET /lists/{list_id}/segments/{segment_id}", e.getSegment)
	e.api(mux, "PATCH /lists/{list_id}/segments/{segment_id}", e.patchSegment)
	e.api(mux, "DELETE /lists/{list_id}/segments/{segment_id}", e.deleteSegment)
	e.api(mux, "POST /lists/{list_id}/segments/{segment_id}", e.batchSegment)
	e.api(mux, "GET /lists/{list_id}/segments/{segment_id}/members", e.getSegmentMembers)
	e.api(mux, "POST /lists/{list_id}/segments/{segment_id}/members", e.postSegmentMember)
	e.api(mux, "DELETE /lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}", e.deleteSegmentMember)
	e.api(mux, "GET /lists/{list_id}/tag-search", e.tagSearch)

	e.api(mux, "GET /lists/{list_id}/webhooks", e.getWebhooks)
	e.api(mux, "POST /lists/{list_id}/webhooks", e.postWebhook)
	e.api(mux, "GET /lists/{list_id}/webhooks/{webhook_id}", e.getWebhook)
	e.api(mux, "PATCH /lists/{list_id}/webhooks/{webhook_id}", e.patchWebhook)
	e.api(mux, "DELETE /lists/{list_id}/webhooks/{webhook_id}", e.deleteWebhook)

	mux.HandleFunc("/3.0/", func(w http.ResponseWriter, r *http.Request) {
		e.count(r.Method + " (unknown)")
		if _, perr := e.authenticate(r); perr != nil {
			writeProblem(w, perr)
			return
		}
		// A path that exists with other methods is 405, as on Mailchimp.
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/3.0/" && pattern != "" {
				writeProblem(w, errMethod("The requested method and resource are not compatible. See the Allow header for this resource's available methods."))
				return
			}
		}
		writeProblem(w, errNotFound())
	})

	mux.HandleFunc("GET /oauth2/authorize", e.oauthAuthorize)
	mux.HandleFunc("POST /oauth2/token", e.oauthToken)
	mux.HandleFunc("GET /oauth2/metadata", e.oauthMetadata)

	mux.HandleFunc("POST /_emulator/lists/{list_id}/members/{subscriber_hash}/unsubscribe", e.control(ctlUnsubscribe))
	mux.HandleFunc("POST /_emulator/lists/{list_id}/members/{subscriber_hash}/bounce", e.control(ctlBounce))
	return mux
}
