package syncer

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/store"
	"golang.org/x/sync/singleflight"
)

// ticket counts the operations still open for one contact; when the last
// one ends, the contact counts as done in the run's progress.
type ticket struct {
	n atomic.Int32
	s *sender
}

func (t *ticket) add() { t.n.Add(1) }
func (t *ticket) done() {
	if t.n.Add(-1) == 0 {
		t.s.r.tr.update(func(p *store.Progress, _ *store.RunCounts) { p.Done++ })
	}
}

// op is one contact's part in a call.
type op struct {
	c  *change
	tk *ticket
	// held is the created contact's row while it waits for its tags
	// (tag additions only; see heldRow).
	held *heldRow
}

// sender executes a diff's changes: it batches them, sends up to the
// concurrency limit and hands acknowledgements to the recorder.
type sender struct {
	r      *runner
	ctx    context.Context
	cancel context.CancelCauseFunc
	sem    chan struct{}
	budget chan struct{}
	// wg counts every job; feeders the jobs other than tag calls, any of
	// which may queue tags.
	wg, feeders sync.WaitGroup
	rec         *recorder
	hold        *holder
	// tail: the diff has ended, so no create is held for its tags any
	// more, and tag calls let the other jobs have the free slots first
	// (see send).
	tail atomic.Bool
	gate feederGate
	// intents takes the create intents to write (intentLoop); left are
	// those earlier runs or attempts left (store.LeftIntents), read once.
	intents chan intentWrite
	left    map[string]string

	creates, bulks []op

	tagMu  sync.Mutex
	tagAdd map[uint64][]op
	tagDel map[uint64][]op
	// tagSeen counts the additions and removals queued so far, by tag.
	tagSeen map[uint64]*[2]int
	// segsAsked: the tag bits whose static segment prepareSegments has
	// looked up or created (under tagMu); segCalls: the lookups and
	// creations in flight, one per tag.
	segsAsked uint64
	segCalls  singleflight.Group
}

func (r *runner) send(ctx context.Context) error {
	defer r.timed(phaseSend)()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s := &sender{r: r, ctx: ctx, cancel: cancel,
		sem:    make(chan struct{}, r.concurrency()),
		budget: make(chan struct{}, 4*r.concurrency()),
		tagAdd: map[uint64][]op{}, tagDel: map[uint64][]op{}, tagSeen: map[uint64]*[2]int{}}
	left, err := r.Store.LeftIntents(ctx, r.exp.ID)
	if err != nil {
		return err
	}
	s.left = left
	s.rec = newRecorder(r, func(err error) { cancel(err) })
	s.hold = newHolder(s.rec, maxHold)
	s.intents = make(chan intentWrite)
	go s.intentLoop()
	err = r.diff(ctx, s.visit)
	if err == nil {
		s.flushBatches()
	}
	// The last creates are recorded as they are answered, not held for
	// their tags, and go out before the tag calls queued meanwhile: the
	// statuses must all be written before a first run's flow-back pass can
	// begin (startOwedFlow), which then runs beside the tag calls left.
	// The work in memory stays bounded: at most the budget's creates are
	// left when the diff ends.
	s.tail.Store(true)
	s.hold.release(time.Time{})
	// Once no job can queue tags any more, the part-filled tag batches go
	// out at once, beside the tag calls still in flight.
	s.feeders.Wait()
	recorded := make(chan struct{}) // the early flow-back is past its use of the recorder
	if err == nil && ctx.Err() == nil {
		recorded = r.startOwedFlow(s)
		s.flushTags()
	} else {
		close(recorded)
	}
	s.wg.Wait()
	close(s.intents) // every job that writes intents has ended
	<-recorded
	s.hold.close() // every job that answers tags has ended
	if recErr := s.rec.close(); recErr != nil {
		return recErr
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if err != nil {
		return err
	}
	return ctx.Err()
}

// maxHold is how long a created contact's row may wait for its tags
// before it is recorded without them (heldRow).
const maxHold = 2 * time.Second

func (s *sender) fail(err error) { s.cancel(err) }

// spawn runs fn on its own goroutine once a concurrency slot is free.
// Top-level jobs (from the diff) also take a budget slot, which bounds the
// work in memory; follow-ups (from acknowledgements) do not, so they can
// never deadlock against their parents.
func (s *sender) spawn(top bool, fn func(ctx context.Context)) { s.launch(top, true, nil, fn) }

// spawnAfter is spawn with pre run on the new goroutine before it waits for
// a concurrency slot: work that needs no Mailchimp connection (writing
// create intents to the database) must not hold one of the account's few
// connections idle. fn runs only if pre returns true.
func (s *sender) spawnAfter(top bool, pre func(ctx context.Context) bool, fn func(ctx context.Context)) {
	s.launch(top, true, pre, fn)
}

// launch is spawnAfter for a job that may queue tags (feeds) or not (a
// tag call).
func (s *sender) launch(top, feeds bool, pre func(ctx context.Context) bool, fn func(ctx context.Context)) {
	if top {
		select {
		case s.budget <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
	}
	s.wg.Add(1)
	if feeds {
		s.feeders.Add(1)
	}
	go func() {
		defer s.wg.Done()
		if feeds {
			defer s.feeders.Done()
		}
		if top {
			defer func() { <-s.budget }()
		}
		if pre != nil && (s.ctx.Err() != nil || !pre(s.ctx)) {
			return
		}
		if feeds {
			s.gate.enter()
		} else if s.tail.Load() && !s.gate.wait(s.ctx) {
			return
		}
		select {
		case s.sem <- struct{}{}:
			if feeds {
				s.gate.leave()
			}
		case <-s.ctx.Done():
			if feeds {
				s.gate.leave()
			}
			return
		}
		var once sync.Once
		release := func() { once.Do(func() { <-s.sem }) }
		defer release()
		if s.ctx.Err() != nil {
			return
		}
		fn(context.WithValue(s.ctx, slotKey{}, release))
	}()
}

type slotKey struct{}

// lastCall marks the call made with the context it returns as its job's
// last: the job's slot goes back as soon as a successful answer has been
// read (mailchimp.WithAnswered), not after decoding it, which for a batch
// of 500 members kept a slot from the next call for milliseconds.
func lastCall(ctx context.Context) context.Context {
	return mailchimp.WithAnswered(ctx, func() { releaseSlot(ctx) })
}

// feederGate counts the jobs other than tag calls that wait for a
// connection slot; wait returns once none does (false: ctx ended).
type feederGate struct {
	mu      sync.Mutex
	waiting int
	clear   chan struct{} // closed when waiting drops to zero; nil at zero
}

func (g *feederGate) enter() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waiting == 0 {
		g.clear = make(chan struct{})
	}
	g.waiting++
}

func (g *feederGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waiting--; g.waiting == 0 {
		close(g.clear)
		g.clear = nil
	}
}

func (g *feederGate) wait(ctx context.Context) bool {
	for {
		g.mu.Lock()
		ch := g.clear
		g.mu.Unlock()
		if ch == nil {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// releaseSlot gives the Mailchimp connection slot of the job running with
// ctx back once its call has answered: handling the answer (recording the
// acknowledgements, queueing tags) needs no connection, and may wait for
// the database, which must not leave the account's few connections idle.
// A job's last call gives it back earlier when it succeeds, once its
// answer is read and before it is decoded (lastCall).
func releaseSlot(ctx context.Context) {
	if f, ok := ctx.Value(slotKey{}).(func()); ok {
		f()
	}
}

func (s *sender) visit(c *change) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if s.r.growTotal {
		s.r.tr.update(func(p *store.Progress, _ *store.RunCounts) { p.Total++ })
	}
	tk := &ticket{s: s}
	tk.add() // held until the visit has scheduled everything
	defer tk.done()
	o := op{c: c, tk: tk}
	switch c.fields {
	case KindCreate:
		tk.add()
		s.creates = append(s.creates, o)
		if len(s.creates) >= s.r.batchSize() {
			s.flushCreates()
		}
		return nil // tags follow the acknowledgement
	case KindRestore:
		tk.add()
		s.spawn(true, func(ctx context.Context) { s.restore(ctx, o) })
		return nil // tags follow the acknowledgement
	case KindEmailChange:
		tk.add()
		s.spawn(true, func(ctx context.Context) { s.emailChange(ctx, o) })
		return nil // tags follow the acknowledgement
	case fieldsBulk:
		tk.add()
		s.bulks = append(s.bulks, o)
		if len(s.bulks) >= s.r.batchSize() {
			s.flushBulks()
		}
	case fieldsPatch:
		tk.add()
		s.spawn(true, func(ctx context.Context) { s.patch(ctx, o) })
	}
	switch c.leave {
	case KindArchive:
		tk.add()
		s.spawn(true, func(ctx context.Context) { s.archive(ctx, o) })
	case KindUnsubscribe:
		tk.add()
		s.spawn(true, func(ctx context.Context) { s.unsubscribe(ctx, o) })
	}
	s.queueTags(o, c.addTags, c.removeTags)
	return nil
}

func (s *sender) flushBatches() {
	s.flushCreates()
	s.flushBulks()
}

func (s *sender) flushCreates() {
	if len(s.creates) == 0 {
		return
	}
	batch := s.creates
	s.creates = nil
	s.prepareSegments(batch)
	s.spawnAfter(true, func(ctx context.Context) bool { return s.createIntents(ctx, batch) },
		func(ctx context.Context) { s.create(ctx, batch) })
}

func (s *sender) flushBulks() {
	if len(s.bulks) == 0 {
		return
	}
	batch := s.bulks
	s.bulks = nil
	s.spawn(true, func(ctx context.Context) { s.bulkUpdate(ctx, batch) })
}

// callFailed handles a call that failed as a whole after the client's
// retries: an auth failure stops the run; cancellation ends quietly;
// anything else is a transient rejection of each contact in it.
func (s *sender) callFailed(ops []op, what string, err error) {
	if mailchimp.IsAuth(err) {
		s.fail(fmt.Errorf("%s: %w: %v", what, ErrAuth, err))
		return
	}
	if errors.Is(err, mailchimp.ErrGated) {
		// The worker's lease may have lapsed: the run stops, and the
		// contacts were not sent, so they are not rejections.
		s.fail(err)
		return
	}
	if s.ctx.Err() != nil {
		return
	}
	kind, reason := mailchimp.Classify(err)
	for _, o := range ops {
		s.reject(o, kind, reason, false)
	}
}

// reject records a refused contact. permanentMarker stores the data hash
// so the same data is not sent again.
func (s *sender) reject(o op, kind mailchimp.Kind, reason string, permanentMarker bool) {
	if o.held != nil {
		s.hold.tagAnswered(o.held, 0, nil)
	}
	c := o.c
	s.r.Metrics.contact("rejected")
	s.rec.reject(store.Rejection{Email: c.email, CustomerID: c.customerID, Reason: reason, Kind: kind.String()})
	count := func(rc *store.RunCounts) { rc.Rejected++ }
	if kind == mailchimp.Permanent && permanentMarker && c.d != nil {
		row := s.base(c)
		row.RejectedHash = c.d.fieldsHash
		s.rec.outcome(store.SyncedChange{Hash: c.hash, Set: &row}, c.intentBatch, count)
	} else {
		s.rec.count(count)
	}
	o.tk.done()
}

// base is the contact's current synced row, or a new one.
func (s *sender) base(c *change) store.Synced {
	if c.s != nil {
		return *c.s
	}
	return store.Synced{Hash: c.hash, Email: c.email, CustomerID: c.customerID}
}

// acked returns the row after the contact's fields were acknowledged.
func (s *sender) acked(c *change, status string) store.Synced {
	row := s.base(c)
	row.Email, row.CustomerID = c.email, c.customerID
	row.InAudience, row.InExport = true, true
	row.FieldsHash, row.RejectedHash = c.d.fieldsHash, ""
	if status != "" {
		row.Status = status
	}
	return row
}

// createIntents notes, before a batch of creates is sent, that the
// contacts are being created; false when the run failed.
func (s *sender) createIntents(ctx context.Context, ops []op) bool {
	// Note the intent first: if the answer is lost (crash, dropped
	// connection), the next attempt hears "contact exists" and can tell,
	// from this note and the contact's data, that the contact is ours.
	intents := make([]store.Intent, len(ops))
	for i, o := range ops {
		intents[i] = store.Intent{Hash: o.c.hash, Email: o.c.email, CustomerID: o.c.customerID, FieldsHash: o.c.d.fieldsHash}
	}
	done := make(chan intentResult, 1)
	s.intents <- intentWrite{intents: intents, done: done}
	res := <-done
	if res.err != nil {
		s.fail(res.err)
		return false
	}
	for _, o := range ops {
		o.c.earlierIntent, o.c.intentBatch = s.left[o.c.hash], res.batch
	}
	return true
}

// nonEmpty is fields without its empty values (a new contact has no value
// to clear): fields itself when none is empty (most contacts), else a copy.
// Nothing writes to the merge values of a plan.
func nonEmpty(fields map[string]any) map[string]any {
	empty := 0
	for _, v := range fields {
		if v == "" {
			empty++
		}
	}
	if empty == 0 {
		return fields
	}
	out := make(map[string]any, len(fields)-empty)
	for k, v := range fields {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// intentWrite is one batch's create intents and where to report that they
// are durable, or could not be written.
type intentWrite struct {
	intents []store.Intent
	done    chan intentResult
}

// intentResult is the outcome of writing intents: the store's batch that
// holds them, or the error.
type intentResult struct {
	batch int64
	err   error
}

// maxIntentRows bounds the intents written in one transaction.
const maxIntentRows = 5000

// intentLoop writes create intents as they come, with every batch that
// waits meanwhile in the same store batch and transaction (a group
// commit): batches wait for the database's single writer side by side.
// Each batch is sent only once its own intents are durable, and the
// recorder learns of the store batch first, so that it drops the batch
// with the last outcome of its creates.
func (s *sender) intentLoop() {
	for w := range s.intents {
		batch := []intentWrite{w}
		intents := append([]store.Intent(nil), w.intents...)
	more:
		for len(intents) < maxIntentRows {
			select {
			case w, ok := <-s.intents:
				if !ok {
					break more
				}
				batch, intents = append(batch, w), append(intents, w.intents...)
			default:
				break more
			}
		}
		if err := s.ctx.Err(); err != nil {
			// The run stops: the batches will not be sent.
			for _, w := range batch {
				w.done <- intentResult{err: err}
			}
			continue
		}
		endRecord := s.r.timed(phaseRecord)
		var id int64
		err := s.rec.retry(func() (err error) {
			id, err = s.r.Store.AddIntents(context.WithoutCancel(s.ctx), s.r.exp.ID, intents)
			return err
		})
		endRecord()
		if err == nil {
			s.rec.noted(id, len(intents))
		}
		for _, w := range batch {
			w.done <- intentResult{batch: id, err: err}
		}
	}
}

func (s *sender) create(ctx context.Context, ops []op) {
	members := make([]mailchimp.BatchMember, len(ops))
	byEmail := make(map[string]int, len(ops)) // index in ops
	for i, o := range ops {
		status := s.r.exp.StatusIfNew
		if o.c.createStatus != "" {
			status = o.c.createStatus
		}
		members[i] = mailchimp.BatchMember{EmailAddress: o.c.email, Status: status}
		if o.c.d.fieldsEmpty { // a new contact has no value to clear
			members[i].MergeFields = nonEmpty(o.c.d.fieldMap())
		} else {
			members[i].EncodedMergeFields = o.c.d.fields
		}
		byEmail[o.c.email] = i
	}
	res, err := s.r.mc.BatchSubscribe(lastCall(ctx), s.r.list, members, false)
	releaseSlot(ctx)
	s.r.countWrite()
	if err != nil {
		s.callFailed(ops, "batch subscribe", err)
		return
	}
	answered := make([]bool, len(ops))
	// unanswered finds the op of an address the answer names, once.
	unanswered := func(addr string) (op, bool) {
		i, ok := byEmail[emailaddr.Normalize(addr)]
		if !ok || answered[i] {
			return op{}, false
		}
		answered[i] = true
		return ops[i], true
	}
	for _, m := range res.NewMembers {
		o, ok := unanswered(m.EmailAddress)
		if !ok {
			continue
		}
		row := s.acked(o.c, m.Status)
		row.CreatedByUs = true
		// Nothing sends the contact's fields again: its tags wait in
		// memory without them.
		o.c.d.fields = nil
		// A contact the plan found without a synced row gets its first:
		// the store need not look for it (store.SyncedChange.New).
		ch := store.SyncedChange{Hash: o.c.hash, Set: &row, New: o.c.s == nil}
		count := func(rc *store.RunCounts) { rc.Created++ }
		if o.c.addTags != 0 && !s.tail.Load() {
			o.held = s.hold.hold(ch, o.c.intentBatch, bits.OnesCount64(o.c.addTags), count)
		} else {
			s.rec.outcome(ch, o.c.intentBatch, count)
		}
		s.r.Metrics.contact(KindCreate)
		s.queueTags(o, o.c.addTags, 0)
		o.tk.done()
	}
	for _, m := range res.UpdatedMembers { // not expected without update_existing
		o, ok := unanswered(m.EmailAddress)
		if !ok {
			continue
		}
		row := s.acked(o.c, m.Status)
		s.rec.outcome(store.SyncedChange{Hash: o.c.hash, Set: &row}, o.c.intentBatch)
		s.queueTags(o, o.c.addTags, 0)
		o.tk.done()
	}
	for _, be := range res.Errors {
		o, ok := unanswered(be.EmailAddress)
		if !ok {
			continue
		}
		if be.ErrorCode == "ERROR_CONTACT_EXISTS" {
			s.spawn(false, func(ctx context.Context) { s.adopt(ctx, o, res.Replayed) })
			continue
		}
		kind, reason := mailchimp.ClassifyBatchError(be)
		s.reject(o, kind, reason, true)
	}
	for i, o := range ops {
		if !answered[i] {
			s.reject(o, mailchimp.Transient, "no_answer: Mailchimp's answer did not mention this contact", false)
		}
	}
}

// statusCreating marked a synced row whose contact was sent for creation
// without an acknowledgement yet, before intents had a table of their own
// (migration 0017 turns such rows into intents).
const statusCreating = "creating"

// adopt handles a contact that already exists: learn its status and data;
// if it is exactly what this export sent in a create whose answer was lost,
// it is ours; otherwise it is adopted: its fields are set (PATCH, only when
// they differ) and its status is never touched. Tags follow.
//
// replayed says the create was sent again after an attempt whose answer was
// lost, within this run: the contact may have been created by that attempt,
// which is recognised like an intent mark from an earlier attempt of the run.
func (s *sender) adopt(ctx context.Context, o op, replayed bool) {
	c := o.c
	m, err := s.r.mc.GetMember(ctx, s.r.list, c.email)
	if err != nil {
		s.callFailed([]op{o}, "reading member", err)
		return
	}
	if m.Status == mailchimp.StatusArchived {
		// Archived by someone else: it stays archived, and we send nothing
		// until the status refresh sees it come back.
		row := s.base(c)
		row.InAudience, row.InExport, row.Status = true, true, mailchimp.StatusArchived
		s.rec.outcome(store.SyncedChange{Hash: c.hash, Set: &row}, c.intentBatch, func(rc *store.RunCounts) { rc.SkippedArchived++ })
		o.tk.done()
		return
	}
	want := c.d.fieldMap()
	same := sameFields(m.MergeFields, want)
	intent := replayed || c.earlierIntent == c.d.fieldsHash
	ours := same && intent && m.Status == s.r.exp.StatusIfNew
	status := m.Status
	if !same {
		pm, err := s.r.mc.PatchMember(ctx, s.r.list, c.email, mailchimp.MemberInput{MergeFields: want})
		s.r.countWrite()
		if err != nil {
			if s.memberGone(o, err) {
				return
			}
			s.memberCallFailed(o, "updating member fields", err)
			return
		}
		status = pm.Status
	}
	row := s.acked(c, status)
	row.CreatedByUs = ours
	if ours {
		s.rec.outcome(store.SyncedChange{Hash: c.hash, Set: &row}, c.intentBatch, func(rc *store.RunCounts) { rc.Created++ })
		s.r.Metrics.contact(KindCreate)
	} else {
		s.rec.outcome(store.SyncedChange{Hash: c.hash, Set: &row}, c.intentBatch, func(rc *store.RunCounts) { rc.Adopted++; rc.Updated++ })
		s.r.Metrics.contact("adopt")
	}
	s.queueTags(o, c.addTags, 0)
	o.tk.done()
}

// sameFields reports whether a member's merge fields already hold the values.
func sameFields(have map[string]any, want map[string]any) bool {
	for tag, v := range want {
		h := have[tag]
		if h == nil {
			h = ""
		}
		if fmt.Sprint(h) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

func hasValues(fields map[string]any) bool { return len(fields) > 0 }

// memberCallFailed handles a failed single-contact call.
func (s *sender) memberCallFailed(o op, what string, err error) {
	if mailchimp.IsAuth(err) || errors.Is(err, mailchimp.ErrGated) || s.ctx.Err() != nil {
		s.callFailed([]op{o}, what, err)
		return
	}
	kind, reason := mailchimp.Classify(err)
	s.reject(o, kind, reason, true)
}

// memberGone handles a 404 on an existing contact: it was deleted from the
// audience by someone else. The row forgets it is in the audience, so the
// next run creates it again (or learns it was permanently deleted).
func (s *sender) memberGone(o op, err error) bool {
	if !mailchimp.IsNotFound(err) {
		return false
	}
	row := s.base(o.c)
	row.InAudience, row.Status, row.ArchivedByUs = false, "", false
	s.rec.outcome(store.SyncedChange{Hash: o.c.hash, Set: &row, RemoveTags: row.Tags}, o.c.intentBatch)
	kind, reason := mailchimp.Classify(err)
	s.reject(o, kind, reason, false)
	return true
}

// bulkUpdate sends changed fields of contacts known to be subscribed by
// batch subscribe with update_existing and status "subscribed", which
// leaves a subscribed contact subscribed. A contact that unsubscribed or
// bounced meanwhile is refused by Mailchimp ("compliance state") and then
// updated by PATCH, which never touches the status.
func (s *sender) bulkUpdate(ctx context.Context, ops []op) {
	members := make([]mailchimp.BatchMember, len(ops))
	byEmail := make(map[string]op, len(ops))
	for i, o := range ops {
		members[i] = mailchimp.BatchMember{EmailAddress: o.c.email, Status: mailchimp.StatusSubscribed, EncodedMergeFields: o.c.d.fields}
		byEmail[o.c.email] = o
	}
	res, err := s.r.mc.BatchSubscribe(lastCall(ctx), s.r.list, members, true)
	releaseSlot(ctx)
	s.r.countWrite()
	if err != nil {
		s.callFailed(ops, "batch update", err)
		return
	}
	answered := make(map[string]bool, len(ops))
	ack := func(m mailchimp.MemberRef) {
		o, ok := byEmail[emailaddr.Normalize(m.EmailAddress)]
		if !ok || answered[o.c.email] {
			return
		}
		answered[o.c.email] = true
		row := s.acked(o.c, m.Status)
		s.rec.change(store.SyncedChange{Hash: o.c.hash, Set: &row}, func(rc *store.RunCounts) { rc.Updated++ })
		s.r.Metrics.contact(KindUpdate)
		o.tk.done()
	}
	for _, m := range res.UpdatedMembers {
		ack(m)
	}
	for _, m := range res.NewMembers {
		ack(m)
	}
	for _, be := range res.Errors {
		o, ok := byEmail[emailaddr.Normalize(be.EmailAddress)]
		if !ok || answered[o.c.email] {
			continue
		}
		answered[o.c.email] = true
		kind, reason := mailchimp.ClassifyBatchError(be)
		if kind == mailchimp.Permanent && len(reason) >= len(mailchimp.ReasonComplianceState) &&
			reason[:len(mailchimp.ReasonComplianceState)] == mailchimp.ReasonComplianceState {
			s.spawn(false, func(ctx context.Context) { s.patch(ctx, o) })
			continue
		}
		s.reject(o, kind, reason, true)
	}
	for _, o := range ops {
		if !answered[o.c.email] {
			s.reject(o, mailchimp.Transient, "no_answer: Mailchimp's answer did not mention this contact", false)
		}
	}
}

// patch sends changed fields to one contact without a status.
func (s *sender) patch(ctx context.Context, o op) {
	m, err := s.r.mc.PatchMember(ctx, s.r.list, o.c.email, mailchimp.MemberInput{MergeFields: o.c.d.fieldMap()})
	s.r.countWrite()
	if err != nil {
		if !s.memberGone(o, err) {
			s.memberCallFailed(o, "updating member fields", err)
		}
		return
	}
	row := s.acked(o.c, m.Status)
	s.rec.change(store.SyncedChange{Hash: o.c.hash, Set: &row}, func(rc *store.RunCounts) { rc.Updated++ })
	s.r.Metrics.contact(KindUpdate)
	o.tk.done()
}

// restore brings back a contact this export archived. PATCH without a
// status restores an archived member to the status it had before, so a
// contact that unsubscribed before it was archived stays unsubscribed.
func (s *sender) restore(ctx context.Context, o op) {
	c := o.c
	m, err := s.r.mc.PatchMember(ctx, s.r.list, c.email, mailchimp.MemberInput{MergeFields: c.d.fieldMap()})
	s.r.countWrite()
	if err != nil {
		s.memberCallFailed(o, "restoring member", err)
		return
	}
	row := s.acked(c, m.Status)
	row.ArchivedByUs = false
	s.rec.change(store.SyncedChange{Hash: c.hash, Set: &row}, func(rc *store.RunCounts) { rc.Restored++ })
	s.r.Metrics.contact(KindRestore)
	s.queueTags(o, c.addTags, c.removeTags)
	o.tk.done()
}

func (s *sender) archive(ctx context.Context, o op) {
	err := s.r.mc.ArchiveMember(ctx, s.r.list, o.c.email)
	s.r.countWrite()
	if err != nil && !mailchimp.IsNotFound(err) {
		s.memberCallFailed(o, "archiving member", err)
		return
	}
	row := s.base(o.c)
	row.InExport = false
	if err == nil {
		row.ArchivedByUs, row.Status = true, mailchimp.StatusArchived
	} else {
		row.InAudience, row.Status = false, ""
	}
	s.rec.change(store.SyncedChange{Hash: o.c.hash, Set: &row}, func(rc *store.RunCounts) { rc.Archived++ })
	s.r.Metrics.contact(KindArchive)
	o.tk.done()
}

func (s *sender) unsubscribe(ctx context.Context, o op) {
	m, err := s.r.mc.PatchMember(ctx, s.r.list, o.c.email, mailchimp.MemberInput{Status: mailchimp.StatusUnsubscribed})
	s.r.countWrite()
	if err != nil {
		if !s.memberGone(o, err) {
			s.memberCallFailed(o, "unsubscribing member", err)
		}
		return
	}
	row := s.base(o.c)
	row.InExport, row.Status = false, m.Status
	s.rec.change(store.SyncedChange{Hash: o.c.hash, Set: &row}, func(rc *store.RunCounts) { rc.Unsubscribed++ })
	s.r.Metrics.contact(KindUnsubscribe)
	o.tk.done()
}

// queueTags puts the contact's tag additions and removals into the per-tag
// buffers; a buffer is sent once tagDue says so.
func (s *sender) queueTags(o op, add, remove uint64) {
	if add == 0 && remove == 0 {
		return
	}
	s.tagMu.Lock()
	defer s.tagMu.Unlock()
	for b := uint64(1); b != 0; b <<= 1 {
		if add&b == 0 && remove&b == 0 {
			continue
		}
		seen := s.tagSeen[b]
		if seen == nil {
			seen = new([2]int)
			s.tagSeen[b] = seen
		}
		if add&b != 0 {
			o.tk.add()
			s.tagAdd[b] = append(s.tagAdd[b], o)
			seen[0]++
		}
		if remove&b != 0 {
			o.tk.add()
			s.tagDel[b] = append(s.tagDel[b], o)
			seen[1]++
		}
		if tagDue(s.r.batchSize(), len(s.tagAdd[b]), len(s.tagDel[b]), *seen) {
			s.flushTagLocked(b)
		}
	}
}

// tagWait is how many batches of a tag's additions (or removals) may wait
// for the other side (tagDue).
const tagWait = 8

// tagDue reports whether a tag's buffers (add additions, del removals,
// and seen of each queued so far in the run) are to be sent, with batches
// of n. One call carries a batch of each side, so the fewest calls are
// those of the side with more, each carrying a batch of the other side
// too. A full side goes out at once when the other side is full too, or
// has had nothing in this run (a first run's additions); otherwise it
// waits for up to tagWait batches. The other side's members often come
// late, after the fact: the additions of created contacts follow the
// answer to their batch of creates, which is sent once 500 creates are
// planned. Sent as soon as a side was full, a 1 % change over 1M
// profiles took a tag call more than the minimum (25 of 24).
func tagDue(n, add, del int, seen [2]int) bool {
	switch {
	case add >= n && del >= n:
		return true
	case add >= n:
		return seen[1] == 0 || add >= tagWait*n
	case del >= n:
		return seen[0] == 0 || del >= tagWait*n
	}
	return false
}

// flushTags sends every non-empty tag buffer, in as few calls as they fit.
func (s *sender) flushTags() {
	s.tagMu.Lock()
	defer s.tagMu.Unlock()
	for b := range s.tagSeen { // every tag that had members queued
		for len(s.tagAdd[b])+len(s.tagDel[b]) > 0 {
			s.flushTagLocked(b)
		}
	}
}

func (s *sender) flushTagLocked(bit uint64) {
	n := s.r.batchSize()
	add, del := s.tagAdd[bit], s.tagDel[bit]
	if len(add) > n {
		s.tagAdd[bit] = append([]op(nil), add[n:]...)
		add = add[:n]
	} else {
		delete(s.tagAdd, bit)
	}
	if len(del) > n {
		s.tagDel[bit] = append([]op(nil), del[n:]...)
		del = del[:n]
	} else {
		delete(s.tagDel, bit)
	}
	if len(add) == 0 && len(del) == 0 {
		return
	}
	// The tag's static segment is looked up (or created) before the call
	// waits for a connection slot: calls waiting for the creation of a
	// segment must not hold slots the creates could use meanwhile.
	var segID int64
	find := func(ctx context.Context) bool {
		var err error
		if segID, err = s.segmentFor(ctx, s.r.tagNames[bit], len(add) > 0); err != nil {
			s.callFailed(append(append([]op(nil), add...), del...), "tag "+s.r.tagNames[bit], err)
			return false
		}
		return true
	}
	s.launch(false, false, find, func(ctx context.Context) { s.tagCall(ctx, bit, segID, add, del) })
}

// segmentFor returns the static segment of a tag, creating it when create
// is set and it does not exist; 0 means it does not exist. Tag names are
// matched without regard to case, as Mailchimp does. Callers for one tag
// share one lookup or creation, while those of other tags go on; its calls
// take a connection slot of their own (the caller holds none).
func (s *sender) segmentFor(ctx context.Context, name string, create bool) (int64, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	if id, ok, known := s.r.knownSegment(key); ok || (known && !create) {
		return id, nil
	}
	v, err, _ := s.segCalls.Do(fmt.Sprintf("%t/%s", create, key), func() (any, error) {
		select {
		case s.sem <- struct{}{}:
			defer func() { <-s.sem }()
		case <-ctx.Done():
			return int64(0), ctx.Err()
		}
		id, ok, known := s.r.knownSegment(key)
		if !known {
			ids, err := s.r.readSegments(ctx)
			if err != nil {
				return int64(0), err
			}
			s.r.learnSegments(ids)
			id, ok, _ = s.r.knownSegment(key)
		}
		if ok || !create {
			return id, nil
		}
		sg, err := s.r.mc.CreateStaticSegment(ctx, s.r.list, name)
		s.r.countWrite()
		if err != nil {
			// The create may have succeeded with its answer lost (the retry
			// then hears "already exists"), or another run created it: look.
			if ids, lerr := s.r.readSegments(ctx); lerr == nil {
				s.r.learnSegments(ids)
				if id, ok, _ := s.r.knownSegment(key); ok {
					return id, nil
				}
			}
			return int64(0), err
		}
		s.r.learnSegment(key, sg.ID)
		return sg.ID, nil
	})
	return v.(int64), err
}

// knownSegment is the static segment of a tag (key: its lower-case name) as
// far as the run knows; known is false until the audience's segments are
// read.
func (r *runner) knownSegment(key string) (id int64, ok, known bool) {
	r.segMu.Lock()
	defer r.segMu.Unlock()
	id, ok = r.segIDs[key]
	return id, ok, r.segIDs != nil
}

// learnSegments replaces what the run knows of the audience's static
// segments; learnSegment adds one the run created.
func (r *runner) learnSegments(ids map[string]int64) {
	r.segMu.Lock()
	defer r.segMu.Unlock()
	r.segIDs = ids
}

func (r *runner) learnSegment(key string, id int64) {
	r.segMu.Lock()
	defer r.segMu.Unlock()
	r.segIDs[key] = id
}

// prepareSegments starts creating the static segments the batch's contacts
// will be tagged with, when they are missing, as the batch is queued: the
// first tag calls of a first run then find them, instead of waiting for
// their creation behind the creates queued meanwhile.
func (s *sender) prepareSegments(batch []op) {
	var bits uint64
	for _, o := range batch {
		bits |= o.c.addTags
	}
	s.tagMu.Lock()
	bits &^= s.segsAsked
	s.segsAsked |= bits
	s.tagMu.Unlock()
	for b := uint64(1); b != 0 && bits != 0; b <<= 1 {
		if bits&b == 0 {
			continue
		}
		bits &^= b
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_, _ = s.segmentFor(s.ctx, s.r.tagNames[b], true) // a failure is the tag call's to report
		}()
	}
}

// listSegments reads the audience's static segments (tags) into segIDs,
// before the first tag call needs them.
func (r *runner) listSegments(ctx context.Context) error {
	ids, err := r.readSegments(ctx)
	if err != nil {
		return r.callErr("listing the audience's tags", err)
	}
	r.learnSegments(ids)
	return nil
}

// readSegments reads the audience's static segments (tags): id by name
// folded as Mailchimp matches tag names.
func (r *runner) readSegments(ctx context.Context) (map[string]int64, error) {
	segs, err := r.mc.ListSegments(ctx, r.list, mailchimp.SegmentStatic)
	if err != nil {
		return nil, err
	}
	ids := map[string]int64{}
	for _, sg := range segs {
		k := strings.ToLower(strings.TrimSpace(sg.Name))
		if _, dup := ids[k]; !dup {
			ids[k] = sg.ID
		}
	}
	return ids, nil
}

func (s *sender) tagCall(ctx context.Context, bit uint64, segID int64, add, del []op) {
	name := s.r.tagNames[bit]
	all := append(append([]op(nil), add...), del...)
	refused := map[string]string{}
	if segID != 0 {
		emails := func(ops []op) []string {
			out := make([]string, len(ops))
			for i, o := range ops {
				out[i] = o.c.email
			}
			return out
		}
		res, err := s.r.mc.UpdateSegmentMembers(lastCall(ctx), s.r.list, segID, emails(add), emails(del))
		releaseSlot(ctx)
		s.r.countWrite()
		if err != nil {
			s.callFailed(all, "tag "+name, err)
			return
		}
		for _, e := range res.Errors {
			for _, a := range e.EmailAddresses {
				refused[emailaddr.Normalize(a)] = e.Error
			}
		}
	}
	for i, o := range all {
		// A refused removal means the tag is not there: that is the goal.
		if why, ok := refused[o.c.email]; ok && i < len(add) {
			s.reject(o, mailchimp.Transient, "tag "+name+": "+why, false)
			continue
		}
		ch := store.SyncedChange{Hash: o.c.hash}
		count := func(rc *store.RunCounts) { rc.TagsAdded++ }
		if i < len(add) {
			ch.AddTags = bit
			s.r.Metrics.contact(KindTagAdd)
			if o.held != nil && s.hold.tagAnswered(o.held, bit, count) {
				o.tk.done()
				continue
			}
		} else {
			ch.RemoveTags = bit
			if o.c.d == nil && o.c.s != nil && o.c.s.InExport && o.c.leave == "" {
				row := *o.c.s
				row.InExport = false
				ch.Set = &row
			}
			count = func(rc *store.RunCounts) { rc.TagsRemoved++ }
			s.r.Metrics.contact(KindTagRemove)
		}
		s.rec.change(ch, count)
		o.tk.done()
	}
}

// A recorder's transaction holds up to recordBatch acknowledgements, or
// what came in recordEvery: fewer, larger transactions write each page of
// the synced state fewer times (a commit writes every page it changed).
// The run's heartbeat waits for the transaction (it saves the counts the
// transaction saves, and both update the run's row), so a batch that took
// longer than recordTxTarget makes the next ones smaller, down to
// recordBatchMin (nextRecordBatch): on a loaded PostgreSQL, 20,000
// acknowledgements took 10 s a transaction and a 200k first run lost its
// lease to its own recorder.
const (
	recordBatch      = 20000
	recordBatchMin   = 500
	recordBatchStart = 2000
	recordEvery      = time.Second
	recordTxTarget   = time.Second
)

// nextRecordBatch is the recorder's batch after a transaction of n
// acknowledgements took took, with cur the batch it was allowed.
func nextRecordBatch(cur, n int, took time.Duration) int {
	switch {
	case took > recordTxTarget:
		return max(recordBatchMin, min(cur, int(float64(n)*float64(recordTxTarget)/float64(took))))
	case took < recordTxTarget/4 && n >= cur:
		return min(recordBatch, 2*cur)
	}
	return cur
}

// recorder writes acknowledgements and rejections in batched transactions.
type recorder struct {
	r    *runner
	ch   chan any
	done chan struct{}
	err  error
	fail func(error)
}

func newRecorder(r *runner, fail func(error)) *recorder {
	rec := &recorder{r: r, ch: make(chan any, 2048), done: make(chan struct{}), fail: fail}
	go rec.loop()
	return rec
}

// countDelta is a change of the run's counts that waits, in the recorder's
// queue, behind the acknowledgements it counts.
type countDelta func(*store.RunCounts)

// acked is an acknowledged change with what it adds to the run's counts
// and, when it records the outcome of a create, the create's batch of
// intents.
type acked struct {
	change store.SyncedChange
	counts []countDelta
	batch  int64
}

// intentsNoted is a batch of create intents the store holds, of n creates.
type intentsNoted struct {
	batch int64
	n     int
}

// change queues an acknowledged change with what it adds to the run's
// counts, as one item: both are recorded (and saved with the run) in the
// same transaction, so that a run resumed after a crash neither counts a
// contact twice nor misses one (see Tracker). Queued apart, a flush
// could fall between them and a lost lease after it lose the count of a
// contact whose acknowledgement was recorded.
func (rec *recorder) change(c store.SyncedChange, count ...countDelta) {
	rec.ch <- acked{change: c, counts: count}
}

// outcome queues the change that records the outcome of a create whose
// intent is in batch (0: none), as change does.
func (rec *recorder) outcome(c store.SyncedChange, batch int64, count ...countDelta) {
	rec.ch <- acked{change: c, counts: count, batch: batch}
}

// noted tells the recorder of a batch of n create intents, before any of
// the creates is sent: the batch is dropped in the transaction that
// records the last of their outcomes.
func (rec *recorder) noted(batch int64, n int) { rec.ch <- intentsNoted{batch: batch, n: n} }

func (rec *recorder) reject(r store.Rejection) { rec.ch <- r }

// count queues a change of the run's counts behind what is queued so far.
func (rec *recorder) count(fn countDelta) { rec.ch <- fn }

// sync returns once everything queued so far is written (or has failed).
func (rec *recorder) sync() {
	done := make(chan struct{})
	rec.ch <- done
	<-done
}

func (rec *recorder) close() error {
	close(rec.ch)
	<-rec.done
	return rec.err
}

// retry runs a write until it succeeds or the engine's RecordPatience is
// spent: a database restart, a lock held by another process or a moment
// without disk space must not lose what Mailchimp acknowledged, nor fail a
// run that can go on. Writes are idempotent (sets and bit operations), so a
// write whose commit answer was lost may be repeated.
func (rec *recorder) retry(write func() error) error {
	patience := rec.r.RecordPatience
	if patience <= 0 {
		patience = 30 * time.Second
	}
	deadline := time.Now().Add(patience)
	delay := 100 * time.Millisecond
	for {
		err := write()
		// A lost lease is final: the run is someone else's now.
		if err == nil || errors.Is(err, store.ErrLeaseLost) || time.Now().Add(delay).After(deadline) {
			return err
		}
		rec.r.log.Warn("recording acknowledgements failed; retrying", "err", err, "in", delay)
		time.Sleep(delay)
		delay = min(2*delay, 5*time.Second)
	}
}

func (rec *recorder) loop() {
	defer close(rec.done)
	// Writes go on even when the run is cancelled: what Mailchimp
	// acknowledged must be kept.
	ctx := context.Background()
	var changes []store.SyncedChange
	var rejects []store.Rejection
	var counts []countDelta
	// open counts the creates of each batch of intents whose outcome is
	// not recorded; closing those whose outcome is among changes. A batch
	// left open (an unanswered create, a crash) stays in the store for
	// the next run (LeftIntents).
	open, closing := map[int64]int{}, map[int64]int{}
	batch := recordBatchStart // grows while transactions are quick
	flush := func() {
		if len(changes)+len(rejects)+len(counts) == 0 {
			return
		}
		for b, n := range closing {
			if open[b] <= n {
				changes = append(changes, store.SyncedChange{DropIntents: b})
			}
		}
		defer rec.r.timed(phaseRecord)()
		// Rejections first: the counts saved with the changes below
		// include them.
		if rec.err == nil && len(rejects) > 0 {
			if err := rec.retry(func() error { return rec.r.Store.AddRejections(ctx, rec.r.opt.RunID, rejects) }); err != nil {
				rec.err = err
				rec.fail(err)
			}
		}
		if rec.err == nil && (len(changes) > 0 || len(counts) > 0) {
			var took time.Duration // of the last attempt: a retry's wait is not the transaction's
			if err := rec.retry(func() error {
				start := time.Now()
				defer func() { took = time.Since(start) }()
				return rec.write(ctx, changes, counts)
			}); err != nil {
				rec.err = err
				rec.fail(err)
			}
			batch = nextRecordBatch(batch, len(changes), took)
		}
		for b, n := range closing {
			if open[b] -= n; open[b] <= 0 {
				delete(open, b)
			}
		}
		clear(closing)
		changes, rejects, counts = changes[:0], rejects[:0], counts[:0]
	}
	tick := time.NewTicker(recordEvery)
	defer tick.Stop()
	for {
		select {
		case v, ok := <-rec.ch:
			if !ok {
				flush()
				return
			}
			switch x := v.(type) {
			case acked:
				changes, counts = append(changes, x.change), append(counts, x.counts...)
				if x.batch != 0 && x.change.Set != nil {
					closing[x.batch]++
				}
			case intentsNoted:
				open[x.batch] += x.n
			case store.Rejection:
				rejects = append(rejects, x)
			case countDelta:
				counts = append(counts, x)
			case chan struct{}:
				flush()
				close(x)
			}
			if len(changes)+len(rejects) >= batch {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// runCountsStore is a store that saves a run's counts in the transaction of
// the acknowledgements they count (package sqldb does).
type runCountsStore interface {
	ApplySyncedRun(ctx context.Context, exportID int64, changes []store.SyncedChange, runID int64, token string, c store.RunCounts) error
}

// write records changes and adds counts to the run's counts, in one
// transaction when the store can (a run with an id and a lease token).
func (rec *recorder) write(ctx context.Context, changes []store.SyncedChange, counts []countDelta) error {
	return rec.r.tr.commit(counts, func(c store.RunCounts) error {
		if rs, ok := rec.r.Store.(runCountsStore); ok && rec.r.opt.RunID != 0 && rec.r.opt.LeaseToken != "" {
			return rs.ApplySyncedRun(ctx, rec.r.exp.ID, changes, rec.r.opt.RunID, rec.r.opt.LeaseToken, c)
		}
		if len(changes) == 0 {
			return nil
		}
		return rec.r.Store.ApplySynced(ctx, rec.r.exp.ID, changes)
	})
}
