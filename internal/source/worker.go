package source

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/profile"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/source/connector"
	"github.com/segsync/segsync/internal/source/stage"
	"github.com/segsync/segsync/internal/store"
)

const (
	stageBatch   = 2000 // rows staged per transaction
	maxRowErrors = 1000 // row errors kept per pull (all are counted)
)

// Worker executes queued pulls, one at a time per process, and drives the
// schedules: sources' cron schedules, the system refresh's cron, and each
// refresh from its pulls to its runs.
type Worker struct {
	Service *Service
	Store   Store
	Log     *slog.Logger
	Metrics *Metrics
	// Runs queues the exports of a refresh (*jobs.Runner).
	Runs RunQueuer
	// Lease is how long a claimed pull stays ours without a heartbeat
	// (default 20 s); Poll how often an idle worker looks for work.
	Lease, Poll time.Duration
	// RefreshSchedule is the system refresh's cron (UTC); SchedulerTick how
	// often schedules and refreshes are looked at (default 5 s).
	RefreshSchedule string
	SchedulerTick   time.Duration
	// StageDir is where pulls stage their rows (package stage): the
	// data directory; the system's temporary directory when empty.
	StageDir string

	once sync.Once
	wake chan struct{}
}

func (w *Worker) init() {
	w.once.Do(func() {
		w.wake = make(chan struct{}, 1)
		if w.Lease <= 0 {
			w.Lease = 20 * time.Second
		}
		if w.Poll <= 0 {
			w.Poll = time.Second
		}
		if w.SchedulerTick <= 0 {
			w.SchedulerTick = 5 * time.Second
		}
		if w.Log == nil {
			w.Log = slog.New(slog.DiscardHandler)
		}
		w.Service.OnQueued(w.Wake)
		stage.RemoveStale(w.StageDir)
	})
}

// Wake makes an idle worker look for work now.
func (w *Worker) Wake() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run executes pulls and schedules until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	w.init()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(w.SchedulerTick)
		defer t.Stop()
		for {
			if err := w.Tick(ctx, time.Now()); err != nil && ctx.Err() == nil {
				w.Log.Error("source scheduler", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	t := time.NewTicker(w.Poll)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			worked, err := w.RunOne(ctx)
			if err != nil && ctx.Err() == nil {
				w.Log.Error("pull", "err", err)
			}
			if !worked {
				break
			}
			if err := w.Service.Advance(ctx); err != nil && ctx.Err() == nil { // a pull ended: its refresh may go on
				w.Log.Error("refresh", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		case <-w.wake:
		}
	}
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var (
	errLeaseLost = errors.New("the pull's lease was lost")
	errCancelled = errors.New("cancelled on request")
)

// RunOne claims and executes one pull; false when there was none.
func (w *Worker) RunOne(ctx context.Context) (bool, error) {
	w.init()
	lease := store.Lease{Token: newToken(), TTL: w.Lease}
	p, ok, err := w.Store.ClaimPull(ctx, lease)
	if err != nil || !ok {
		return false, err
	}
	w.execute(ctx, p, lease)
	return true, nil
}

// pullState is what a pull has read so far.
type pullState struct {
	mu     sync.Mutex
	counts store.PullCounts
	errs   []store.PullError
}

func (s *pullState) reject(row int64, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.Rejected++
	if len(s.errs) < maxRowErrors {
		s.errs = append(s.errs, store.PullError{Row: row, Reason: reason})
	}
}

// sortErrors puts the kept row errors in row order (the stager reports
// duplicates while the reader reports the rest).
func (s *pullState) sortErrors() {
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.SortStableFunc(s.errs, func(a, b store.PullError) int { return cmp.Compare(a.Row, b.Row) })
}

func (s *pullState) snapshot() store.PullCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// execute runs one claimed pull to its end. Every write is fenced by the
// lease: a worker that lost it (paused, partitioned) writes nothing more.
func (w *Worker) execute(parent context.Context, p store.Pull, lease store.Lease) {
	started := time.Now()
	log := w.Log.With("pull", p.ID, "source", p.SourceID)
	st := &pullState{}
	src, err := w.Store.GetSource(parent, p.SourceID)
	finish := func(status, msg string) {
		c := st.snapshot()
		if err := w.Store.FinishPull(context.WithoutCancel(parent), p.ID, lease, status, c, st.errs, msg); err != nil {
			log.Error("finishing pull", "err", err)
			return
		}
		w.Metrics.finished(src.Name, status, countsMap(c), time.Since(started))
		log.Info("pull finished", "status", status, "error", msg)
	}
	if err != nil {
		finish(store.RunFailed, "reading the source: "+err.Error())
		return
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	if p.CancelRequested {
		cancel(errCancelled)
	}
	var applying atomic.Bool
	hbDone := make(chan struct{})
	go func() { // heartbeats; fencing: give up at 0.8 × lease without renewal
		defer close(hbDone)
		beat := max(min(w.Lease/4, time.Second), 20*time.Millisecond)
		t := time.NewTicker(beat)
		defer t.Stop()
		renewed := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if applying.Load() {
				// The apply's transaction holds the pull's row (or the
				// database) locked: no other worker can claim it until
				// it commits, and the heartbeat would only wait for it.
				renewed = time.Now()
				continue
			}
			hctx, hcancel := context.WithTimeout(ctx, w.Lease/2)
			cancelReq, err := w.Store.HeartbeatPull(hctx, p.ID, lease, st.snapshot())
			hcancel()
			switch {
			case ctx.Err() != nil: // the pull ended meanwhile
				return
			case errors.Is(err, store.ErrConflict):
				cancel(errLeaseLost)
				return
			case err != nil:
				if time.Since(renewed) > w.Lease*8/10 {
					log.Warn("pull abandoned: the lease could not be renewed in time", "err", err)
					cancel(errLeaseLost)
					return
				}
				log.Warn("heartbeat", "err", err)
			default:
				renewed = time.Now()
				if cancelReq {
					cancel(errCancelled)
					return
				}
			}
		}
	}()
	stg, err := stage.Open(ctx, w.StageDir)
	if err != nil {
		cancel(nil)
		<-hbDone
		finish(store.RunFailed, err.Error()+"; nothing was changed")
		return
	}
	defer stg.Close()
	highWater, readErr := w.read(ctx, src, stg, st)
	read := time.Since(started)
	stop := func() { cancel(nil); <-hbDone }
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errLeaseLost):
		stop()
		log.Warn("pull abandoned: lease lost; another worker runs it again")
		return
	case errors.Is(cause, errCancelled):
		stop()
		finish(store.RunCancelled, "cancelled on request; nothing was changed")
		return
	case parent.Err() != nil:
		stop()
		w.handBack(context.WithoutCancel(parent), p.ID, lease, log)
		return
	case readErr != nil:
		stop()
		finish(store.RunFailed, readErr.Error()+"; nothing was changed")
		return
	}
	status := store.RunSucceeded
	if st.snapshot().Rejected > 0 {
		status = store.RunPartiallySucceeded
	}
	apply := store.ApplyPull{Stage: stg, Full: src.Mode != ModeIncremental, MinRatio: src.MinRatio, AllowShrink: p.AllowShrink, HighWater: highWater}
	applying.Store(true)
	counts, err := w.Store.ApplyPullStage(ctx, p.ID, lease, apply, st.snapshot(), st.errs, status)
	stop()
	stg.Close() // now: a large stage need not wait for the logging below
	switch {
	case errors.Is(err, store.ErrShrink):
		finish(store.RunFailed, shrinkMessage(err))
		return
	case errors.Is(err, store.ErrConflict):
		log.Warn("pull abandoned: lease lost while applying; nothing was applied")
		return
	case err != nil:
		if parent.Err() != nil {
			w.handBack(context.WithoutCancel(parent), p.ID, lease, log)
			return
		}
		finish(store.RunFailed, "applying the pull: "+err.Error())
		return
	}
	w.Metrics.finished(src.Name, status, countsMap(counts), time.Since(started))
	w.Service.recordOn(context.WithoutCancel(parent), audit.Actor{Email: orSystem(p.RequestedBy)}, ActionPull, "profile", "", map[string]any{
		"via": "source", "source_id": src.ID, "source": src.Name, "pull": p.ID, "received": counts.Received, "new": counts.New, "updated": counts.Updated,
		"removed": counts.Removed, "rejected": counts.Rejected, "deleted": counts.Deleted})
	log.Info("pull applied", "status", status, "received", counts.Received, "new", counts.New, "updated", counts.Updated,
		"unchanged", counts.Unchanged, "removed", counts.Removed, "rejected", counts.Rejected,
		"read", read.Round(time.Millisecond), "apply", (time.Since(started) - read).Round(time.Millisecond))
}

func orSystem(by string) string {
	if by == "" {
		return audit.System.Email
	}
	return by
}

// shrinkMessage is the guard's refusal without the store's context.
func shrinkMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, store.ErrShrink.Error()); i >= 0 {
		msg = msg[i:]
	}
	return msg
}

func countsMap(c store.PullCounts) map[string]int64 {
	return map[string]int64{"received": c.Received, "new": c.New, "updated": c.Updated, "unchanged": c.Unchanged,
		"removed": c.Removed, "rejected": c.Rejected}
}

// batch is rows on their way to the stage, with their row numbers.
type batch struct {
	rows []store.StagedRow
	nums []int64
}

// read streams the source's rows into the pull's stage and returns the
// new high-water mark. Reading and staging overlap: one goroutine stages a
// batch while this one reads the next (two batches in memory at most).
// handBack gives an interrupted pull back at shutdown: the next process
// (or another one) starts it again at once, not after its lease.
func (w *Worker) handBack(ctx context.Context, id int64, lease store.Lease, log *slog.Logger) {
	if err := w.Store.ReleasePull(ctx, id, lease); err != nil {
		log.Warn("handing the pull back", "err", err)
		return
	}
	log.Info("pull interrupted by shutdown and handed back; it starts again from scratch")
}

func (w *Worker) read(ctx context.Context, src store.Source, stg *stage.Stage, st *pullState) (string, error) {
	cfg, c, err := w.Service.connectorConfig(src)
	if err != nil {
		return "", err
	}
	opt := connector.Options{Key: src.Key}
	if src.Mode == ModeIncremental {
		opt.Cursor, opt.After = src.Cursor, src.HighWater
	}
	r, err := connector.Open(ctx, cfg, opt)
	if err != nil {
		return "", err
	}
	defer r.Close()
	m := newRowMapper(src.Key, c.Rename, c.Exclude)
	if src.Kind != connector.KindHTTP { // columns are known before the first row
		if err := m.checkColumns(r.Columns()); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	full := make(chan batch)     // to the stager
	empty := make(chan batch, 2) // back from it, to be filled again
	empty <- batch{rows: make([]store.StagedRow, 0, stageBatch), nums: make([]int64, 0, stageBatch)}
	empty <- batch{rows: make([]store.StagedRow, 0, stageBatch), nums: make([]int64, 0, stageBatch)}
	staged := make(chan struct{})
	go func() {
		defer close(staged)
		for b := range full {
			dups, err := stg.Add(ctx, b.rows)
			if err != nil {
				cancel(fmt.Errorf("staging rows: %w", err))
				return
			}
			for _, i := range dups {
				st.reject(b.nums[i], fmt.Sprintf("duplicate key %q: an earlier row has it", b.rows[i].CustomerID))
			}
			clear(b.rows) // let the strings go
			empty <- batch{rows: b.rows[:0], nums: b.nums[:0]}
		}
	}()
	b := <-empty
	send := func() error {
		select {
		case full <- b:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		select {
		case b = <-empty:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	err = func() error {
		defer close(full)
		for {
			row, ok, err := r.Next(ctx)
			if err != nil {
				if cause := context.Cause(ctx); cause != nil {
					return cause
				}
				return err
			}
			if !ok {
				break
			}
			st.mu.Lock()
			st.counts.Received++
			st.mu.Unlock()
			if row.Err != "" {
				st.reject(row.Num, row.Err)
				continue
			}
			id, attrs, reason, fatal := m.mapRow(row)
			if fatal != nil {
				return fatal
			}
			if reason != "" {
				st.reject(row.Num, reason)
				continue
			}
			b.rows = append(b.rows, store.StagedRow{CustomerID: id, Attrs: attrs})
			b.nums = append(b.nums, row.Num)
			if len(b.rows) == stageBatch {
				if err := send(); err != nil {
					return err
				}
			}
		}
		if len(b.rows) > 0 {
			return send()
		}
		return nil
	}()
	<-staged
	if err == nil {
		err = context.Cause(ctx) // the stager's failure
	}
	if err != nil {
		return "", err
	}
	st.sortErrors()
	if !m.keySeen && st.snapshot().Received > 0 && src.Kind != connector.KindHTTP {
		return "", fmt.Errorf("the key column %q is not in the query's result", src.Key)
	}
	return r.Mark(), nil
}

// rowMapper turns a connector row into a customer id and attributes:
// the key column, renames, exclusions and the attribute-name rules.
type rowMapper struct {
	key     string
	rename  map[string]string
	exclude map[string]bool
	checked map[string][]byte // column → attribute name (nil = excluded)
	keySeen bool
	mm      []attrjson.Member
	buf     []byte
	// The rows of a query have their fields in one order: the order by
	// name of the last row's attributes is kept (names, by identity of
	// the cached names, and perm) and reused while it fits.
	names  [][]byte
	perm   []int
	sorted []attrjson.Member
}

func newRowMapper(key string, rename map[string]string, exclude []string) *rowMapper {
	m := &rowMapper{key: key, rename: rename, exclude: map[string]bool{}, checked: map[string][]byte{}}
	for _, c := range exclude {
		m.exclude[c] = true
	}
	return m
}

// column resolves a column's attribute name (nil: not an attribute), or a
// fatal error for a column that cannot be an attribute.
func (m *rowMapper) column(col string) ([]byte, error) {
	if a, ok := m.checked[col]; ok {
		return a, nil
	}
	a := col
	switch {
	case col == m.key || m.exclude[col]:
		a = ""
	case m.rename[col] != "":
		a = m.rename[col]
	}
	var name []byte
	if a != "" {
		if msg := checkAttrName(a); msg != "" {
			return nil, fmt.Errorf("column %q: %s; rename it (rename: {%q: \"new_name\"}) or exclude it", col, msg, col)
		}
		name = []byte(a)
	}
	m.checked[col] = name
	return name, nil
}

func (m *rowMapper) checkColumns(cols []connector.Column) error {
	found := false
	for _, c := range cols {
		if c.Name == m.key {
			found = true
		}
		if _, err := m.column(c.Name); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("the key column %q is not in the query's result", m.key)
	}
	return nil
}

func (m *rowMapper) mapRow(row connector.Row) (id, attrs, reason string, fatal error) {
	m.mm = m.mm[:0]
	for _, f := range row.Fields {
		if f.Name == m.key {
			m.keySeen = true
			id = keyText(f.Value)
			continue
		}
		a, err := m.column(f.Name)
		if err != nil {
			return "", "", "", err
		}
		if a != nil {
			m.mm = append(m.mm, attrjson.Member{Name: a, Value: f.Value})
		}
	}
	m.buf = attrjson.AppendObject(m.buf[:0], m.byName())
	for i := 1; i < len(m.sorted); i++ { // sorted by name
		if bytes.Equal(m.sorted[i].Name, m.sorted[i-1].Name) {
			return "", "", "", fmt.Errorf("two columns give the attribute %q (check rename)", m.sorted[i].Name)
		}
	}
	switch {
	case id == "":
		return "", "", fmt.Sprintf("the key column %q is empty", m.key), nil
	case len(id) > profile.MaxKeyBytes:
		return "", "", fmt.Sprintf("the key is longer than %d bytes", profile.MaxKeyBytes), nil
	}
	return id, string(m.buf), "", nil
}

// byName returns the row's members (m.mm) ordered by name, in m.sorted,
// through the order of the last row when its names were the same.
func (m *rowMapper) byName() []attrjson.Member {
	same := len(m.names) == len(m.mm)
	for i := 0; same && i < len(m.mm); i++ {
		same = len(m.mm[i].Name) > 0 && len(m.names[i]) > 0 && &m.mm[i].Name[0] == &m.names[i][0]
	}
	if !same {
		m.names, m.perm = m.names[:0], m.perm[:0]
		for i, x := range m.mm {
			m.names = append(m.names, x.Name)
			m.perm = append(m.perm, i)
		}
		slices.SortStableFunc(m.perm, func(a, b int) int { return bytes.Compare(m.mm[a].Name, m.mm[b].Name) })
	}
	m.sorted = m.sorted[:0]
	for _, i := range m.perm {
		m.sorted = append(m.sorted, m.mm[i])
	}
	return m.sorted
}

// keyText is a key value as text: a string's contents or a number's digits.
func keyText(v []byte) string {
	if len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]) // nothing escaped
	}
	if len(v) > 0 && v[0] == '"' {
		var s string
		_ = json.Unmarshal(v, &s)
		return s
	}
	return string(v)
}
