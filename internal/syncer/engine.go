// Package syncer is segsync's run engine. One run of an export streams the
// desired state (the union of the export's segments in subscriber-hash
// order, duplicates merged), merges it with the export's synced state (same
// order), and sends only the differences to Mailchimp: new contacts by batch
// subscribe, changed fields by batch subscribe where re-sending the status
// is harmless and by per-contact PATCH where it is not, tags through static
// segments, and the on_leave policy for contacts that left. Acknowledged
// changes are recorded in batched transactions as they arrive, so a run
// stopped at any point is resumed by simply running again. docs/engine.md
// explains the strategy and its cost in calls.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"golang.org/x/sync/errgroup"
)

// Mailchimp is the part of the Marketing API the engine uses; *mailchimp.Client
// implements it.
type Mailchimp interface {
	BatchSubscribe(ctx context.Context, listID string, members []mailchimp.BatchMember, updateExisting bool) (*mailchimp.BatchResult, error)
	ListMembers(ctx context.Context, listID string, q mailchimp.MemberQuery, fn func([]mailchimp.Member) error) error
	GetMember(ctx context.Context, listID, email string) (*mailchimp.Member, error)
	PutMember(ctx context.Context, listID string, in mailchimp.MemberInput) (*mailchimp.Member, error)
	PatchMember(ctx context.Context, listID, email string, in mailchimp.MemberInput) (*mailchimp.Member, error)
	ArchiveMember(ctx context.Context, listID, email string) error
	ListSegments(ctx context.Context, listID, typ string) ([]mailchimp.Segment, error)
	CreateStaticSegment(ctx context.Context, listID, name string) (*mailchimp.Segment, error)
	UpdateSegmentMembers(ctx context.Context, listID string, segmentID int64, add, remove []string) (*mailchimp.SegmentUpdate, error)
	MergeFields(ctx context.Context, listID string) ([]mailchimp.MergeField, error)
	CreateMergeField(ctx context.Context, listID string, in mailchimp.MergeField) (*mailchimp.MergeField, error)
}

// Store is the part of the store the engine uses.
type Store interface {
	StatusAsOf(ctx context.Context, exportID int64) (time.Time, error)
	SetStatusAsOf(ctx context.Context, exportID int64, t time.Time) error
	ExportTags(ctx context.Context, exportID int64, names []string) (map[string]int, error)
	AllExportTags(ctx context.Context, exportID int64) (map[int]string, error)
	ReleaseUnusedTags(ctx context.Context, exportID int64) error
	StreamSynced(ctx context.Context, exportID int64, fn func(store.Synced) error) error
	ApplySynced(ctx context.Context, exportID int64, changes []store.SyncedChange) error
	AddIntents(ctx context.Context, exportID int64, intents []store.Intent) (int64, error)
	LeftIntents(ctx context.Context, exportID int64) (map[string]string, error)
	UpdateSyncedStatuses(ctx context.Context, exportID int64, statuses map[string]string) error
	SyncedOtherStatus(ctx context.Context, exportID int64, status string) (bool, error)
	RecordArchived(ctx context.Context, exportID int64, emails map[string]string) error
	AddRejections(ctx context.Context, runID int64, rs []store.Rejection) error
}

// Engine executes runs. Its zero value is not usable; fill the fields.
type Engine struct {
	Store  Store
	Source Source
	Log    *slog.Logger
	// Concurrency is how many Mailchimp calls a run keeps in flight
	// (default 10, Mailchimp's per-account limit; the client's limiter
	// enforces the account-wide limit across runs and processes).
	Concurrency int
	// BatchSize is the size of batch subscribes and segment updates
	// (default and maximum 500).
	BatchSize int
	// StatusSkew is subtracted from the time of the last status listing
	// when asking Mailchimp for members changed since (default 10 min).
	StatusSkew time.Duration
	// RecordPatience is how long writes of acknowledgements are retried
	// when the database fails (restart, lock, full disk) before the run
	// fails (default 30 s).
	RecordPatience time.Duration
	// MaxHeld bounds the creates and the leavers a plan pass holds back to
	// pair address changes (default 100,000 each; see moves.go).
	MaxHeld int
	// FullEvery is how often a run plans every profile although an
	// incremental plan would do (default a week; see incremental.go).
	FullEvery time.Duration
	Metrics   *Metrics
}

// Options of one run.
type Options struct {
	RunID int64
	// LeaseToken, with RunID, is the fencing token of the claim that runs
	// it (package jobs): every write of the run then goes through the
	// store fenced by the claim (store.RunFencer), and the counts are saved
	// with the acknowledgements they count. A write after the claim was
	// lost fails with store.ErrLeaseLost and stops the run.
	LeaseToken string
	DryRun     bool
	// Tracker receives progress and counts as the run goes; may be nil.
	Tracker *Tracker
}

// Result is the outcome of a run.
type Result struct {
	Status   string // store.RunSucceeded, RunPartiallySucceeded
	Progress store.Progress
	Counts   store.RunCounts
	Timings  store.RunTimings
	Sample   store.RunSample
}

// ErrAuth wraps a 401/403 of the account: the run stops.
var ErrAuth = errors.New("Mailchimp refused the connection's credential")

// Tracker holds a run's live progress and counts; safe for concurrent use.
// Counts of acknowledged changes are added once the changes are recorded
// (and, with Options.LeaseToken, saved in the same transaction), so the
// counts a resumed run starts from match the recorded state.
type Tracker struct {
	mu       sync.Mutex
	counts   store.RunCounts
	progress store.Progress
	// earlier are the timings of the run's earlier attempts; clock
	// measures this one.
	earlier store.RunTimings
	clock   phaseClock
	// saveMu orders the saves of the counts: a heartbeat (Save) never
	// writes counts older than the recorder has just saved.
	saveMu sync.Mutex
}

// NewTracker starts from the progress, counts and timings of an earlier
// attempt of the same run (a resumed run adds to what was acknowledged and
// spent before).
func NewTracker(p store.Progress, c store.RunCounts, t store.RunTimings) *Tracker {
	return &Tracker{progress: store.Progress{Done: p.Done}, counts: c, earlier: t}
}

// Save calls save with the current progress, counts and timings, never
// while the recorder saves counts with its changes: heartbeats save
// through it.
func (t *Tracker) Save(save func(store.Progress, store.RunCounts, store.RunTimings) error) error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	p, c := t.Snapshot()
	return save(p, c, t.Timings())
}

// Timings returns where the run's time went so far, earlier attempts
// included.
func (t *Tracker) Timings() store.RunTimings { return t.earlier.Add(t.clock.timings()) }

// commit hands write the counts with deltas added; once it succeeded, the
// deltas are added to the tracker's counts.
func (t *Tracker) commit(deltas []countDelta, write func(store.RunCounts) error) error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	_, c := t.Snapshot()
	for _, d := range deltas {
		d(&c)
	}
	if err := write(c); err != nil {
		return err
	}
	t.update(func(_ *store.Progress, rc *store.RunCounts) {
		for _, d := range deltas {
			d(rc)
		}
	})
	return nil
}

// Snapshot returns the current progress and counts.
func (t *Tracker) Snapshot() (store.Progress, store.RunCounts) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.progress, t.counts
}

func (t *Tracker) update(fn func(p *store.Progress, c *store.RunCounts)) {
	t.mu.Lock()
	fn(&t.progress, &t.counts)
	if t.progress.Done > t.progress.Total {
		t.progress.Total = t.progress.Done
	}
	t.mu.Unlock()
}

const sampleSize = 10

// Kinds of change, as used in samples and metrics.
const (
	KindCreate      = "create"
	KindUpdate      = "update"
	KindRestore     = "restore"
	KindTagAdd      = "tag_add"
	KindTagRemove   = "tag_remove"
	KindArchive     = "archive"
	KindUnsubscribe = "unsubscribe"
	// KindEmailChange (moves.go): an address changed in place.
)

// Execute runs export exp once against mc (bound to the export's account).
// Cancelling ctx stops the run within a few seconds; what was acknowledged
// until then is recorded.
func (e *Engine) Execute(ctx context.Context, exp store.Export, mc Mailchimp, opt Options) (Result, error) {
	tr := opt.Tracker
	if tr == nil {
		tr = &Tracker{}
	}
	eng := e
	if opt.LeaseToken != "" {
		// The run writes only under its claim: a copy of the engine whose
		// store is fenced by it.
		f, ok := e.Store.(store.RunFencer)
		if !ok {
			return Result{}, fmt.Errorf("run %d: the store cannot fence a run's writes by its lease", opt.RunID)
		}
		fenced := *e
		fenced.Store = f.FenceRun(store.RunLease{RunID: opt.RunID, Token: opt.LeaseToken})
		eng = &fenced
	}
	r := &runner{Engine: eng, exp: exp, mc: mc, opt: opt, tr: tr, log: e.logger().With("export", exp.ID, "run", opt.RunID)}
	start := time.Now()
	// The run's calls report their waits for the account's connections.
	ctx = mailchimp.WithSlotWait(ctx, func() func() { return tr.clock.begin(phaseIdle) })
	res, err := r.run(ctx)
	if d, ok := e.Source.(deferrer); ok {
		d.StartDeferred()
	}
	res.Timings = tr.Timings() // the flow-back of statuses, deferred by run, included
	e.Metrics.observeRun(res, err, time.Since(start), tr.clock.durations())
	return res, err
}

func (e *Engine) logger() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

// runner is the state of one run.
type runner struct {
	*Engine
	exp  store.Export
	mc   Mailchimp
	opt  Options
	tr   *Tracker
	log  *slog.Logger
	list string

	specs    []fieldSpec
	rules    []*segment.Rule
	segBits  []uint64
	tagNames map[uint64]string // bit -> tag name, every bit the export has assigned

	// growTotal: no plan pass counted the changes; the diff adds each
	// change to the progress total as it finds it.
	growTotal bool

	// pair holds creates and leavers back during the plan pass; moves are
	// the address changes it found, applied by the send pass.
	pair  *pairer
	moves *moves

	// asOf is when the export's statuses were last refreshed before this
	// run (zero: never, or a dry run); refreshedAt is when this run's
	// status refresh began (zero: none).
	asOf, refreshedAt time.Time

	// inc is the run's plan scope (nil: every profile, nothing kept).
	inc *incremental

	// owedFlow is closed when a first run's full flow-back pass, started
	// beside its last tag calls, has ended (nil: none started).
	owedFlow chan struct{}

	// early is a first run's member sort, started before its first reads
	// (nil: none); the diff streams it instead of starting its own.
	early *earlySort

	segMu    sync.Mutex
	segIDs   map[string]int64 // tag name -> static segment id
	rejected atomic.Int64
}

func (r *runner) concurrency() int {
	if r.Concurrency <= 0 {
		return 10
	}
	return r.Concurrency
}

func (r *runner) batchSize() int {
	if r.BatchSize <= 0 || r.BatchSize > mailchimp.MaxBatchSize {
		return mailchimp.MaxBatchSize
	}
	return r.BatchSize
}

func (r *runner) run(ctx context.Context) (Result, error) {
	r.list = r.exp.AudienceID
	defer r.flowStatuses(ctx)
	endPlan := r.timed(phasePlan)
	defer endPlan()
	if !r.opt.DryRun {
		var err error
		if r.asOf, err = r.Store.StatusAsOf(ctx, r.exp.ID); err != nil {
			return r.result(), err
		}
	}
	if !r.opt.DryRun && r.asOf.IsZero() {
		// A first run's status refresh (the archived contacts) needs
		// nothing prepare reads: both go at once, with the listing of the
		// audience's tags, so the first create leaves one round trip
		// sooner. Its members are read and sorted meanwhile.
		if err := r.prepareSegments(ctx); err != nil {
			return r.result(), err
		}
		r.early = r.startSort(ctx)
		defer r.early.close()
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return r.prepareFields(gctx) })
		g.Go(func() error { return r.refreshStatuses(gctx) })
		if len(r.exp.SegmentIDs) > 0 {
			g.Go(func() error { return r.listSegments(gctx) })
		}
		if err := g.Wait(); err != nil {
			return r.result(), err
		}
		if err := r.choosePlan(ctx, true); err != nil {
			return r.result(), err
		}
		endPlan()
		return r.firstRun(ctx)
	}
	if err := r.prepareSegments(ctx); err != nil {
		return r.result(), err
	}
	if err := r.prepareFields(ctx); err != nil {
		return r.result(), err
	}
	if !r.opt.DryRun {
		if err := r.choosePlan(ctx, false); err != nil {
			return r.result(), err
		}
	}
	// Pass 1: plan. It counts the work (the progress total) and, for a dry
	// run, is the whole run. A run with nothing to do ends here, without a
	// single call beyond reading the merge fields.
	plan, err := r.plan(ctx)
	endPlan()
	if err != nil {
		return r.result(), err
	}
	if r.opt.DryRun {
		pc := plan.counts
		r.tr.update(func(p *store.Progress, c *store.RunCounts) {
			c.Created, c.Restored, c.Updated, c.TagsAdded, c.TagsRemoved = pc.Created, pc.Restored, pc.Updated, pc.TagsAdded, pc.TagsRemoved
			c.Archived, c.Unsubscribed, c.EmailChanged = pc.Archived, pc.Unsubscribed, pc.EmailChanged
			p.Total, p.Done = p.Done+plan.changes, p.Done+plan.changes
		})
		res := r.result()
		res.Sample = plan.sample
		return res, nil
	}
	r.tr.update(func(p *store.Progress, c *store.RunCounts) { p.Total = p.Done + plan.changes })
	if plan.changes > 0 {
		// Pass 2: learn what changed in Mailchimp since the last refresh
		// (statuses, archived contacts), then diff again and send.
		if err := r.refreshStatuses(ctx); err != nil {
			return r.result(), err
		}
		if err := r.send(ctx); err != nil {
			return r.result(), err
		}
		if err := r.Store.ReleaseUnusedTags(ctx, r.exp.ID); err != nil {
			r.log.Warn("releasing unused tag bits", "err", err)
		}
	}
	return r.result(), r.savePlan(ctx)
}

// plan runs the plan pass, pairing address changes (moves.go). When more
// creates or leavers than MaxHeld turn up, the store names the customers
// whose address changed and the pass is repeated holding only those.
func (r *runner) plan(ctx context.Context) (*planner, error) {
	plan := &planner{r: r, sample: store.RunSample{}}
	r.pair, r.moves = newPairer(r.MaxHeld, nil), nil
	defer func() { r.pair = nil }()
	if err := r.diff(ctx, plan.visit); err != nil {
		return nil, err
	}
	if !r.pair.overflow {
		return plan, nil
	}
	f, ok := r.Store.(addressChangeFinder)
	if !ok {
		r.log.Warn("too many creates and leavers to pair address changes", "max", r.pair.max)
		return plan, nil
	}
	only, err := f.SyncedAddressChanges(ctx, r.exp.ID, r.exp.Mapping.Email)
	if err != nil {
		return nil, err
	}
	plan = &planner{r: r, sample: store.RunSample{}}
	r.pair, r.moves = newPairer(0, only), nil
	if err := r.diff(ctx, plan.visit); err != nil {
		return nil, err
	}
	return plan, nil
}

// firstRun sends an export whose first status refresh just ran, so has sent
// nothing yet: every contact is a create, and planning would only count
// them at the cost of a whole extra pass over the segments (about a tenth
// of a 1M export's wall time at Mailchimp's latency). The progress total
// grows as the diff finds the contacts.
func (r *runner) firstRun(ctx context.Context) (Result, error) {
	r.growTotal = true
	if err := r.send(ctx); err != nil {
		return r.result(), err
	}
	if err := r.Store.ReleaseUnusedTags(ctx, r.exp.ID); err != nil {
		r.log.Warn("releasing unused tag bits", "err", err)
	}
	return r.result(), r.savePlan(ctx)
}

func (r *runner) result() Result {
	p, c := r.tr.Snapshot()
	status := store.RunSucceeded
	if c.Rejected > 0 {
		status = store.RunPartiallySucceeded
	}
	return Result{Status: status, Progress: p, Counts: c, Timings: r.tr.Timings()}
}

// prepareFields reads the audience's merge fields (creating missing ones
// when the export allows).
func (r *runner) prepareFields(ctx context.Context) error {
	m := r.exp.Mapping
	if m.Email == "" {
		return errors.New("the export's mapping has no e-mail attribute")
	}
	if wants := mappedFields(m); len(wants) > 0 {
		fields, err := r.mc.MergeFields(ctx, r.list)
		if err != nil {
			return r.callErr("reading the audience's merge fields", err)
		}
		types := map[string]string{}
		for _, f := range fields {
			types[f.Tag] = f.Type
		}
		for _, w := range wants {
			typ, ok := types[w.tag]
			if !ok {
				if !r.exp.CreateMissingMergeFields || r.opt.DryRun {
					if r.opt.DryRun {
						typ = mailchimp.MergeText
					} else {
						return fmt.Errorf("merge field %s does not exist in audience %s", w.tag, r.list)
					}
				} else {
					typ = r.guessType(ctx, w.attr)
					f, err := r.mc.CreateMergeField(ctx, r.list, mailchimp.MergeField{Tag: w.tag, Name: w.tag, Type: typ})
					if err != nil {
						return r.callErr("creating merge field "+w.tag, err)
					}
					r.countWrite()
					typ = f.Type
					types[w.tag] = typ
				}
			}
			r.specs = append(r.specs, fieldSpec{attr: w.attr, tag: w.tag, typ: typ})
		}
	}
	return nil
}

// prepareSegments reads the segments' rules, their tag names and bits.
func (r *runner) prepareSegments(ctx context.Context) error {
	names := make([]string, len(r.exp.SegmentIDs))
	r.rules = make([]*segment.Rule, len(r.exp.SegmentIDs))
	for i, id := range r.exp.SegmentIDs {
		sg, err := r.Source.GetSegment(ctx, id)
		if err != nil {
			return fmt.Errorf("reading segment %d: %w", id, err)
		}
		names[i], r.rules[i] = r.exp.TagPrefix+sg.Name, sg.Rule
	}
	bits, err := r.Store.ExportTags(ctx, r.exp.ID, names)
	if err != nil {
		return err
	}
	r.segBits = make([]uint64, len(names))
	for i, n := range names {
		r.segBits[i] = 1 << bits[n]
	}
	all, err := r.Store.AllExportTags(ctx, r.exp.ID)
	if err != nil {
		return err
	}
	r.tagNames = map[uint64]string{}
	for b, n := range all {
		r.tagNames[1<<b] = n
	}
	return nil
}

// attributeCatalogue is a Source that keeps the catalogue of its
// profiles' attributes with their types (package sqldb does).
type attributeCatalogue interface {
	ProfileAttributes(ctx context.Context) ([]store.AttributeInfo, error)
}

// guessType picks the merge type of a merge field to create for an
// attribute from the type most profiles give it in the catalogue: number,
// date, or else text.
func (r *runner) guessType(ctx context.Context, attr string) string {
	c, ok := r.Source.(attributeCatalogue)
	if !ok {
		return mailchimp.MergeText
	}
	infos, err := c.ProfileAttributes(ctx)
	if err != nil {
		r.log.Warn("reading the attribute catalogue; the merge field will be text", "attribute", attr, "err", err)
		return mailchimp.MergeText
	}
	for _, a := range infos {
		if a.Name != attr {
			continue
		}
		switch a.Type {
		case attrjson.TypeNumber:
			return mailchimp.MergeNumber
		case attrjson.TypeDate:
			return mailchimp.MergeDate
		}
	}
	return mailchimp.MergeText
}

// refreshStatuses learns the current status of the contacts that changed in
// Mailchimp since the last refresh, so that no status is ever sent on stale
// knowledge.
func (r *runner) refreshStatuses(ctx context.Context) error {
	defer r.timed(phaseStatusRefresh)()
	asOf := r.asOf // read by run; the run holds the export, so it stays
	now := time.Now()
	if !asOf.IsZero() {
		// The export's own writes change last_changed too, so listing every
		// member changed since would return everything the last run sent
		// (a whole audience after a first run: 1,000 pages for 1M). What
		// must be known is who is no longer subscribed, so the other
		// statuses are listed one by one; the subscribed are listed only
		// when the export knows contacts in another status that may have
		// become subscribed.
		statuses := []string{mailchimp.StatusUnsubscribed, mailchimp.StatusCleaned, mailchimp.StatusPending, mailchimp.StatusTransactional}
		other, err := r.Store.SyncedOtherStatus(ctx, r.exp.ID, mailchimp.StatusSubscribed)
		if err != nil {
			return err
		}
		if other {
			statuses = append(statuses, mailchimp.StatusSubscribed)
		}
		// The listings are independent: they go at once.
		g, gctx := errgroup.WithContext(ctx)
		for _, status := range statuses {
			g.Go(func() error {
				q := mailchimp.MemberQuery{Status: status, SinceLastChanged: asOf.Add(-r.skew()), Fields: []string{"members.id", "members.status"}}
				err := r.mc.ListMembers(gctx, r.list, q, func(ms []mailchimp.Member) error {
					st := make(map[string]string, len(ms))
					for _, m := range ms {
						if m.ID != "" && m.Status != "" {
							st[m.ID] = m.Status
						}
					}
					r.planOnly(slices.Collect(maps.Keys(st)))
					return r.Store.UpdateSyncedStatuses(gctx, r.exp.ID, st)
				})
				if err != nil {
					return r.callErr("listing "+status+" members changed since the last run", err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	// Listings leave archived contacts out unless asked for. Archived
	// contacts must be known before any batch subscribe, which would restore
	// them: all of them on the first run, those archived since afterwards.
	q := mailchimp.MemberQuery{Status: mailchimp.StatusArchived, Fields: []string{"members.id", "members.email_address"}}
	if !asOf.IsZero() {
		q.SinceLastChanged = asOf.Add(-r.skew())
	}
	err := r.mc.ListMembers(ctx, r.list, q, func(ms []mailchimp.Member) error {
		arch := make(map[string]string, len(ms))
		for _, m := range ms {
			if m.ID != "" {
				arch[m.ID] = emailaddr.Normalize(m.EmailAddress)
			}
		}
		r.planOnly(slices.Collect(maps.Keys(arch)))
		return r.Store.RecordArchived(ctx, r.exp.ID, arch)
	})
	if err != nil {
		return r.callErr("listing archived members", err)
	}
	r.refreshedAt = now
	return r.Store.SetStatusAsOf(ctx, r.exp.ID, now)
}

// statusFlow is a store that writes Mailchimp statuses back on the
// profiles (package sqldb does). FlowOwed does the full pass an export owes
// its profiles since its first status refresh, if any, while the run may
// still record tag answers.
type statusFlow interface {
	FlowStatuses(ctx context.Context, exportID int64, audienceID string, at time.Time) (int64, error)
	FlowOwed(ctx context.Context, exportID int64, audienceID string, at time.Time) (int64, bool, error)
}

// startOwedFlow starts, once a first run knows every contact's status (no
// job but tag calls is left), the full flow-back pass the export owes its
// profiles, beside the run's last tag calls instead of after them. The
// created contacts still held for their tags are recorded first (their
// tags follow as updates), and the pass begins once the recorder has
// written them. The channel returned is closed once the pass is done with
// the recorder; the pass itself ends before the run's flowStatuses.
func (r *runner) startOwedFlow(s *sender) (recorded chan struct{}) {
	recorded = make(chan struct{})
	f, ok := r.Store.(statusFlow)
	if !ok || !r.growTotal || r.refreshedAt.IsZero() { // growTotal: a first run (firstRun)
		close(recorded)
		return recorded
	}
	done := make(chan struct{})
	r.owedFlow = done
	go func() {
		defer close(done)
		s.hold.release(time.Time{})
		s.rec.sync()
		close(recorded)
		defer r.timed(phaseRecord)()
		start := time.Now()
		n, owed, err := f.FlowOwed(context.WithoutCancel(s.ctx), r.exp.ID, r.list, r.refreshedAt)
		if err != nil {
			r.log.Warn("writing Mailchimp statuses on profiles", "err", err)
		} else if owed {
			r.log.Info("Mailchimp statuses written on profiles (full pass)", "profiles", n, "took", time.Since(start).Round(time.Millisecond))
		}
	}()
	return recorded
}

// flowStatuses writes what this run learned and acknowledged about the
// contacts' statuses on their profiles (reserved attributes
// mailchimp.<audience>.status and .status_changed_at), also when the run
// ended early: what was recorded is true. A run that refreshed no status
// still writes what an earlier one left unwritten (a crash before its
// flow-back), as of that run's refresh; with nothing due that costs a look
// into an index.
func (r *runner) flowStatuses(ctx context.Context) {
	if r.owedFlow != nil {
		<-r.owedFlow
	}
	f, ok := r.Store.(statusFlow)
	if !ok || r.opt.DryRun {
		return
	}
	at := r.refreshedAt
	if at.IsZero() {
		if at = r.asOf; at.IsZero() {
			return // no status ever refreshed: nothing to write
		}
	}
	defer r.timed(phaseRecord)()
	start := time.Now()
	n, err := f.FlowStatuses(context.WithoutCancel(ctx), r.exp.ID, r.list, at)
	if err != nil {
		r.log.Warn("writing Mailchimp statuses on profiles", "err", err)
		return
	}
	if n > 0 {
		r.log.Info("Mailchimp statuses written on profiles", "profiles", n, "took", time.Since(start).Round(time.Millisecond))
	}
}

func (r *runner) skew() time.Duration {
	if r.StatusSkew <= 0 {
		return 10 * time.Minute
	}
	return r.StatusSkew
}

// callErr wraps a failed call: auth failures become ErrAuth.
func (r *runner) callErr(what string, err error) error {
	if mailchimp.IsAuth(err) {
		return fmt.Errorf("%s: %w: %v", what, ErrAuth, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// timed starts a span of phase ph; the returned function ends it.
func (r *runner) timed(ph phase) func() { return r.tr.clock.begin(ph) }

func (r *runner) countWrite() {
	r.tr.update(func(_ *store.Progress, c *store.RunCounts) { c.WriteCalls++ })
}

func (r *runner) tagList(bits uint64) []string {
	var out []string
	for b := uint64(1); b != 0; b <<= 1 {
		if bits&b != 0 {
			if n, ok := r.tagNames[b]; ok {
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}
