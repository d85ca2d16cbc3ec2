package reliability

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// gate stands between segsync and the emulator. It injects the faults the
// emulator has no option for (429 bursts, bodiless 403s, slow answers, a
// revoked key, held requests), and counts, per contact, how often a write
// for it reached Mailchimp, independently of the engine's own bookkeeping.
type gate struct {
	next http.Handler

	mu      sync.Mutex
	inject  func(rq *request) action // nil: every request passes
	seq     map[string]int           // requests seen per kind
	sends   map[string]int           // subscriber hash -> field writes (batch subscribe, PUT, PATCH)
	tagged  map[string]int           // subscriber hash -> static segment additions
	revoked atomic.Bool              // the key is refused (401) from now on
	faults  map[string]int           // injected faults by name, for the report
	serving map[int]time.Time        // requests being served, by when they came
	served  int                      // requests seen, for serving's keys
}

// request is what the gate knows of one API request.
type request struct {
	method, path string
	kind         string   // batch, member-write, member-read, members-list, segment-batch, other
	hashes       []string // contacts named by a write
	n            int      // 1-based number of this request among those of its kind
}

// action is a fault to inject. The zero value passes the request through.
type action struct {
	name   string            // for the fault counter
	status int               // answer with this status...
	header map[string]string // ...these headers...
	body   string            // ...and this body (problem+json when it starts with '{')
	after  bool              // let the emulator apply the request first (the answer is lost)
	delay  time.Duration     // wait this long before answering (or before passing through)
	drop   bool              // close the connection without an answer
	// hold blocks the request until closed or the caller goes away; with
	// after, the request is applied first and its answer is held.
	hold <-chan struct{}
	// answered is called once a passed-through answer was sent.
	answered func()
}

func newGate(next http.Handler) *gate {
	return &gate{next: next, seq: map[string]int{}, sends: map[string]int{}, tagged: map[string]int{}, faults: map[string]int{}, serving: map[int]time.Time{}}
}

func hashOf(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:])
}

// classify names a request's kind and the contacts a write touches.
func classify(r *http.Request, body []byte) *request {
	rq := &request{method: r.Method, path: r.URL.Path, kind: "other"}
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/3.0"), "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "lists" && r.Method == http.MethodPost:
		rq.kind = "batch"
		var b struct {
			Members []struct {
				Email string `json:"email_address"`
			} `json:"members"`
		}
		_ = json.Unmarshal(body, &b)
		for _, m := range b.Members {
			rq.hashes = append(rq.hashes, hashOf(m.Email))
		}
	case len(parts) == 4 && parts[2] == "members" && r.Method != http.MethodGet:
		rq.kind = "member-write"
		rq.hashes = []string{parts[3]}
	case len(parts) == 4 && parts[2] == "members":
		rq.kind = "member-read"
	case len(parts) == 3 && parts[2] == "members":
		rq.kind = "members-list"
	case len(parts) == 4 && parts[2] == "segments" && r.Method == http.MethodPost:
		rq.kind = "segment-batch"
		var b struct {
			Add []string `json:"members_to_add"`
		}
		_ = json.Unmarshal(body, &b)
		for _, e := range b.Add {
			rq.hashes = append(rq.hashes, hashOf(e))
		}
	}
	return rq
}

func (g *gate) setInject(f func(rq *request) action) {
	g.mu.Lock()
	g.inject = f
	g.mu.Unlock()
}

// revoke makes the emulator refuse the key (or accept it again). It may be
// called from an inject function.
func (g *gate) revoke(on bool) { g.revoked.Store(on) }

// sent returns how often each contact was written, and the tag additions.
func (g *gate) sentCounts() (fields, tags map[string]int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	fields, tags = map[string]int{}, map[string]int{}
	for k, v := range g.sends {
		fields[k] = v
	}
	for k, v := range g.tagged {
		tags[k] = v
	}
	return fields, tags
}

func (g *gate) resetCounts() {
	g.mu.Lock()
	g.sends, g.tagged = map[string]int{}, map[string]int{}
	g.mu.Unlock()
}

func (g *gate) injected() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for k, v := range g.faults {
		out[k] = v
	}
	return out
}

// settle waits until every request that came before t has been served
// (or given up), and a little longer: after a process was killed at t, the
// writes it had put on the wire are counted before anyone reads the counts.
func (g *gate) settle(t time.Time) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && g.servingSince(t) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a request read off the wire just after t
}

func (g *gate) servingSince(t time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, came := range g.serving {
		if came.Before(t) {
			return true
		}
	}
	return false
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	id := g.served
	g.served++
	g.serving[id] = time.Now()
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.serving, id)
		g.mu.Unlock()
	}()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	api := strings.HasPrefix(r.URL.Path, "/3.0")
	rq := classify(r, body)

	g.mu.Lock()
	if api && g.revoked.Load() {
		g.faults["revoked"]++
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"type":"https://mailchimp.com/developer/marketing/docs/errors/","title":"API Key Invalid","status":401,"detail":"Your API key may be invalid, or you've attempted to access the wrong datacenter.","instance":""}`)
		return
	}
	g.seq[rq.kind]++
	rq.n = g.seq[rq.kind]
	var act action
	if api && g.inject != nil {
		act = g.inject(rq)
	}
	if act.name != "" {
		g.faults[act.name]++
	}
	// A write counts as sent when it reaches the gate, whatever happens next.
	switch rq.kind {
	case "batch", "member-write":
		for _, h := range rq.hashes {
			g.sends[h]++
		}
	case "segment-batch":
		for _, h := range rq.hashes {
			g.tagged[h]++
		}
	}
	g.mu.Unlock()

	held := func() bool { // false: the caller went away
		if act.hold == nil {
			return true
		}
		select {
		case <-act.hold:
			return true
		case <-r.Context().Done():
			return false
		}
	}
	if !act.after && !held() {
		return
	}
	answer := func() {
		if act.delay > 0 {
			t := time.NewTimer(act.delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
			}
		}
		if act.drop {
			panic(http.ErrAbortHandler)
		}
		for k, v := range act.header {
			w.Header().Set(k, v)
		}
		if strings.HasPrefix(act.body, "{") {
			w.Header().Set("Content-Type", "application/problem+json")
		}
		w.WriteHeader(act.status)
		_, _ = io.WriteString(w, act.body)
	}
	switch {
	case act.status == 0 && !act.drop && act.after:
		// Apply, then answer only after the delay: a client with a shorter
		// timeout has given up and does not know the change was made.
		rec := httptest.NewRecorder()
		g.next.ServeHTTP(rec, r)
		if !held() {
			return
		}
		sleepCtx(r.Context(), act.delay)
		if r.Context().Err() != nil {
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	case act.status == 0 && !act.drop:
		sleepCtx(r.Context(), act.delay)
		if r.Context().Err() != nil {
			return
		}
		g.next.ServeHTTP(w, r)
		if act.answered != nil {
			_ = http.NewResponseController(w).Flush()
			act.answered()
		}
	case act.after:
		g.next.ServeHTTP(httptest.NewRecorder(), r)
		if held() {
			answer()
		}
	default:
		answer()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
