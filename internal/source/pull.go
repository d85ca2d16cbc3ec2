package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"crypto/rand"
	"encoding/hex"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/store"
)

// Limits of one pull.
const (
	stageBatch = 5000 // rows per staging transaction
	maxErrors  = 1000 // row errors kept (all are counted)
	maxKey     = 255  // longest customer id
)

// Puller executes queued pulls: claim with a lease, stream the source's rows
// into the staging table, apply them in one transaction, finish. A worker
// that cannot renew its lease for 0.8 × Lease stops at once; the pull is
// then claimed again and restarts from scratch (its staged rows dropped).
type Puller struct {
	Store     store.Store
	Sources   *Service
	Connector Connector
	Audit     *audit.Log
	Log       *slog.Logger
	Metrics   *Metrics
	// Lease (default 20 s), Poll (default 1 s), Workers (default 1).
	Lease   time.Duration
	Poll    time.Duration
	Workers int
	// OnFinish is called after every finished pull (the refresh advances).
	OnFinish func(ctx context.Context)

	once  sync.Once
	owner string
	wake  chan struct{}
}

func (p *Puller) init() {
	p.once.Do(func() {
		var b [4]byte
		_, _ = rand.Read(b[:])
		host, _ := os.Hostname()
		p.owner = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
		p.wake = make(chan struct{}, 1)
		if p.Lease <= 0 {
			p.Lease = 20 * time.Second
		}
		if p.Poll <= 0 {
			p.Poll = time.Second
		}
		if p.Workers <= 0 {
			p.Workers = 1
		}
		if p.Log == nil {
			p.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Enqueue queues a pull of a source (single flight).
func (p *Puller) Enqueue(ctx context.Context, sourceID int64, trigger string, allowShrink bool, by string) (store.Pull, bool, error) {
	p.init()
	rec, err := p.Store.GetSource(ctx, sourceID)
	if err != nil {
		return store.Pull{}, false, err
	}
	if rec.Kind == store.SourceKindPush {
		return store.Pull{}, false, fmt.Errorf("%w: the uploads source takes pushed imports; there is nothing to pull", store.ErrInvalid)
	}
	pull, created, err := p.Store.EnqueuePull(ctx, sourceID, trigger, allowShrink, by)
	if err == nil {
		p.Wake()
	}
	return pull, created, err
}

// Wake makes an idle worker look for work now.
func (p *Puller) Wake() {
	p.init()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run executes pulls until ctx ends.
func (p *Puller) Run(ctx context.Context) error {
	p.init()
	var wg sync.WaitGroup
	for range p.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(p.Poll)
			defer t.Stop()
			for {
				for ctx.Err() == nil {
					ok, err := p.RunOne(ctx)
					if err != nil && ctx.Err() == nil {
						p.Log.Error("claiming a pull", "err", err)
					}
					if !ok {
						break
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				case <-p.wake:
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// RunOne claims and executes one pull; ok is false when none was waiting.
func (p *Puller) RunOne(ctx context.Context) (bool, error) {
	p.init()
	pull, ok, err := p.Store.ClaimPull(ctx, p.owner, p.Lease)
	if err != nil || !ok {
		return false, err
	}
	p.execute(ctx, pull)
	if p.OnFinish != nil {
		p.OnFinish(ctx)
	}
	return true, nil
}

var (
	errCancelRequested = errors.New("cancelled on request")
	errLeaseLost       = errors.New("the pull's lease was lost")
)

// execute runs one claimed pull to its end.
func (p *Puller) execute(parent context.Context, pull store.Pull) {
	start := time.Now()
	log := p.Log.With("pull", pull.ID, "source", pull.SourceID)
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	ex := &execution{p: p, pull: pull, errs: []store.PullError{}}
	// Heartbeats: renew the lease, save counts, notice cancel requests;
	// stop at once when the lease cannot be renewed for 0.8 × Lease.
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		every := max(min(p.Lease/4, time.Second), 20*time.Millisecond)
		t := time.NewTicker(every)
		defer t.Stop()
		renewed := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			hctx, hcancel := context.WithTimeout(ctx, p.Lease*8/10-time.Since(renewed))
			cancelReq, err := p.Store.HeartbeatPull(hctx, pull.ID, pull.LeaseToken, p.Lease, ex.snapshot())
			hcancel()
			switch {
			case errors.Is(err, store.ErrConflict):
				cancel(errLeaseLost)
				return
			case err != nil:
				if time.Since(renewed) >= p.Lease*8/10 {
					cancel(errLeaseLost)
					return
				}
				log.Warn("pull heartbeat", "err", err)
			default:
				renewed = time.Now()
				if cancelReq {
					cancel(errCancelRequested)
					return
				}
			}
		}
	}()
	if pull.CancelRequested {
		cancel(errCancelRequested)
	}
	rec, err := ex.run(ctx)
	cancel(nil)
	<-hbDone
	cause := context.Cause(ctx)
	counts := ex.snapshot()
	status, msg := store.RunSucceeded, ""
	switch {
	case errors.Is(cause, errLeaseLost) || errors.Is(err, store.ErrConflict):
		log.Warn("pull abandoned: its lease was lost; it restarts elsewhere")
		p.Metrics.observe(rec.Name, "lease_lost", 0, time.Since(start))
		return
	case err == nil && counts.Rejected > 0:
		status = store.RunPartiallySucceeded
	case err == nil:
	case errors.Is(cause, errCancelRequested):
		status, msg = store.RunCancelled, "cancelled on request; nothing was changed"
	case parent.Err() != nil:
		log.Info("pull interrupted by shutdown; it restarts on the next start")
		return
	default:
		status, msg = store.RunFailed, err.Error()
		if !errors.Is(err, store.ErrShrinkGuard) {
			msg += "; nothing was changed"
		}
	}
	if err := p.Store.FinishPull(context.WithoutCancel(parent), pull.ID, pull.LeaseToken, status, counts, ex.errs, msg); err != nil {
		log.Error("finishing pull", "err", err)
		return
	}
	p.Metrics.observe(rec.Name, status, counts.Received, time.Since(start))
	log.Info("pull finished", "status", status, "error", msg, "received", counts.Received, "new", counts.New,
		"updated", counts.Updated, "unchanged", counts.Unchanged, "removed", counts.Removed, "rejected", counts.Rejected)
	if p.Audit != nil && (status == store.RunSucceeded || status == store.RunPartiallySucceeded) {
		_ = p.Audit.Record(parent, audit.Actor{Email: pull.RequestedBy}, "source.pull", "source", pull.SourceID, map[string]any{
			"name": rec.Name, "pull": pull.ID, "received": counts.Received, "new": counts.New, "updated": counts.Updated,
			"unchanged": counts.Unchanged, "removed": counts.Removed, "rejected": counts.Rejected, "deleted": counts.Deleted})
	}
}

// execution is one pull in progress.
type execution struct {
	p      *Puller
	pull   store.Pull
	mu     sync.Mutex
	counts store.PullCounts
	errs   []store.PullError
}

func (ex *execution) snapshot() store.PullCounts {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.counts
}

func (ex *execution) reject(row int64, reason string) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.counts.Rejected++
	if len(ex.errs) < maxErrors {
		ex.errs = append(ex.errs, store.PullError{Row: row, Reason: reason})
	}
}

func (ex *execution) run(ctx context.Context) (store.SourceRecord, error) {
	st := ex.p.Store
	rec, err := st.GetSource(ctx, ex.pull.SourceID)
	if err != nil {
		return rec, fmt.Errorf("reading the source: %w", err)
	}
	cfg, err := ex.p.Sources.ConfigOf(rec)
	if err != nil {
		return rec, err
	}
	opt := Options{}
	incremental := rec.Mode == ModeIncremental
	if incremental {
		opt.Cursor, opt.After = rec.Cursor, rec.HighWater
	}
	r, err := ex.p.Connector.Open(ctx, cfg, opt)
	if err != nil {
		return rec, err
	}
	defer r.Close()
	plan, err := newRowPlan(rec, r.Columns())
	if err != nil {
		return rec, err
	}
	batch := make([]store.StagedRow, 0, stageBatch)
	var buf []byte
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		dups, err := st.StagePullRows(ctx, ex.pull.ID, ex.pull.LeaseToken, batch)
		if err != nil {
			return err
		}
		for _, n := range dups {
			i := slices.IndexFunc(batch, func(s store.StagedRow) bool { return s.Num == n })
			ex.reject(n, fmt.Sprintf("duplicate key %q: an earlier row of the pull has it; this row is ignored", batch[i].CustomerID))
		}
		batch, buf = batch[:0], buf[:0]
		return nil
	}
	var num int64
	for {
		row, ok, err := r.Next(ctx)
		if err != nil {
			return rec, fmt.Errorf("reading the source after %d rows: %w", num, err)
		}
		if !ok {
			break
		}
		num++
		if row.Num == 0 {
			row.Num = num
		}
		ex.mu.Lock()
		ex.counts.Received++
		ex.mu.Unlock()
		key, attrs, reason := plan.convert(row, buf)
		if reason != "" {
			ex.reject(row.Num, reason)
			if key == "" {
				continue
			}
			attrs = nil // keep what the source held for this key
		} else {
			buf = attrs
		}
		staged := store.StagedRow{Num: row.Num, CustomerID: key}
		if attrs != nil {
			staged.Attrs = attrs[plan.last:]
		}
		batch = append(batch, staged)
		if len(batch) == stageBatch {
			if err := flush(); err != nil {
				return rec, err
			}
		}
	}
	if err := flush(); err != nil {
		return rec, err
	}
	if ctx.Err() != nil {
		return rec, context.Cause(ctx)
	}
	c := ex.snapshot()
	out, err := st.ApplyPull(ctx, ex.pull.ID, ex.pull.LeaseToken, store.ApplyOptions{Full: !incremental, AllowShrink: ex.pull.AllowShrink, Mark: markOf(incremental, r)}, c)
	if err != nil {
		return rec, err
	}
	ex.mu.Lock()
	ex.counts = out
	ex.mu.Unlock()
	return rec, nil
}

func markOf(incremental bool, r Reader) string {
	if !incremental {
		return ""
	}
	return r.Mark()
}

// rowPlan turns a source's rows into profile attributes.
type rowPlan struct {
	key  string
	cols []planCol // attribute columns sorted by attribute name
	last int       // start of the latest row's attributes in the buffer
}

type planCol struct {
	col, attr, typ string
}

// newRowPlan checks the result's columns against the source: the key (and
// cursor) must be there, every other column not excluded must map to a
// valid, unreserved attribute name. A fault fails the pull, naming the
// column.
func newRowPlan(rec store.SourceRecord, cols []Column) (*rowPlan, error) {
	pl := &rowPlan{key: rec.Key}
	has := func(name string) bool {
		return slices.ContainsFunc(cols, func(c Column) bool { return c.Name == name })
	}
	if !has(rec.Key) {
		return nil, fmt.Errorf("the key column %q is not in the result (columns: %s)", rec.Key, columnNames(cols))
	}
	if rec.Mode == ModeIncremental && !has(rec.Cursor) {
		return nil, fmt.Errorf("the cursor column %q is not in the result (columns: %s)", rec.Cursor, columnNames(cols))
	}
	seen := map[string]string{}
	for _, c := range cols {
		if c.Name == rec.Key || slices.Contains(rec.Exclude, c.Name) {
			continue
		}
		attr := c.Name
		if r, ok := rec.Rename[c.Name]; ok {
			attr = r
		}
		switch {
		case strings.HasPrefix(attr, store.ReservedAttrPrefix):
			return nil, fmt.Errorf("column %q: the attribute name %q is reserved (mailchimp.* attributes come from Mailchimp); rename or exclude the column", c.Name, attr)
		case !attrjson.ValidName(attr):
			return nil, fmt.Errorf("column %q is not a valid attribute name (%s); rename or exclude it", c.Name, attrjson.NamePattern)
		case seen[attr] != "":
			return nil, fmt.Errorf("columns %q and %q both give the attribute %q; rename or exclude one", seen[attr], c.Name, attr)
		}
		seen[attr] = c.Name
		pl.cols = append(pl.cols, planCol{col: c.Name, attr: attr, typ: c.Type})
	}
	slices.SortFunc(pl.cols, func(a, b planCol) int { return strings.Compare(a.attr, b.attr) })
	return pl, nil
}

func columnNames(cols []Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// convert appends the row's canonical attribute object to buf; it returns
// the key and the reason when the row is refused.
func (pl *rowPlan) convert(row Row, buf []byte) (key string, out []byte, reason string) {
	key, err := keyString(row.Values[pl.key])
	if err != nil {
		return "", buf, fmt.Sprintf("key column %q: %v", pl.key, err)
	}
	if row.Err != "" {
		return key, buf, row.Err
	}
	pl.last = len(buf)
	buf = append(buf, '{')
	for _, c := range pl.cols {
		v, ok := row.Values[c.col]
		if !ok || v == nil {
			continue
		}
		if len(buf) > pl.last+1 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = append(buf, c.attr...)
		buf = append(buf, '"', ':')
		var err error
		if buf, err = appendValue(buf, v); err != nil {
			return key, buf[:pl.last], fmt.Sprintf("column %q: %v", c.col, err)
		}
	}
	return key, append(buf, '}'), ""
}

func keyString(v any) (string, error) {
	var s string
	switch x := v.(type) {
	case nil:
		return "", errors.New("is empty")
	case string:
		s = strings.TrimSpace(x)
	case int64:
		s = strconv.FormatInt(x, 10)
	case int:
		s = strconv.Itoa(x)
	case float64:
		if x != math.Trunc(x) {
			return "", fmt.Errorf("%v is not a customer id", x)
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		s = fmt.Sprint(x)
	}
	switch {
	case s == "":
		return "", errors.New("is empty")
	case len(s) > maxKey:
		return "", fmt.Errorf("is longer than %d bytes", maxKey)
	}
	return s, nil
}

// appendValue appends a typed value in attrjson's canonical form.
func appendValue(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case bool:
		return strconv.AppendBool(dst, x), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return dst, fmt.Errorf("%v is not a number attributes can hold", x)
		}
		n, _ := attrjson.CanonicalNumber(strconv.FormatFloat(x, 'f', -1, 64))
		return append(dst, n...), nil
	case *big.Float:
		n, ok := attrjson.CanonicalNumber(x.Text('f', -1))
		if !ok {
			return dst, fmt.Errorf("%v is not a number", x)
		}
		return append(dst, n...), nil
	case time.Time:
		x = x.UTC()
		var s string
		if x.Hour() == 0 && x.Minute() == 0 && x.Second() == 0 && x.Nanosecond() == 0 {
			s = x.Format("2006-01-02")
		} else {
			s = x.Format(time.RFC3339Nano)
		}
		d, ok := attrjson.NormalizeDate(s)
		if !ok {
			return dst, fmt.Errorf("%v is not a date attributes can hold", x)
		}
		return attrjson.AppendString(dst, d), nil
	case string:
		return attrjson.AppendString(dst, x), nil
	case []byte:
		return attrjson.AppendString(dst, string(x)), nil
	}
	return attrjson.AppendString(dst, fmt.Sprint(v)), nil
}
