package syncer

import (
	"context"

	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/store"
)

// Address changes. A profile whose address changed shows up in the diff as
// two unrelated contacts: its new address, wanted and not synced (a
// create), and its old address, synced and wanted by no profile any more (a
// leaver), each at its own place in hash order. Sending them as such would
// create a new contact (subscribed, by status_if_new) and leave the old one
// (perhaps unsubscribed) behind: a consent leak. Instead the two are paired
// by customer_id and the old contact's address is changed in place (one
// call): status, tags and history stay with the person.
//
// Pairing happens in the plan pass: creates and leavers are held back, by
// customer_id, until the pass ends; then each create whose customer_id also
// left becomes an email change, and the rest are counted as usual. The
// pairs (one per changed address) are kept for the send pass, which turns
// the new address's create into the change and skips the old address.
// Memory is bounded: at most MaxHeld creates and MaxHeld leavers are held;
// beyond that, the store is asked for the customers whose synced address
// differs from their profile's (memory ∝ address changes) and the plan pass
// is repeated holding only those.

// KindEmailChange is a contact whose address is changed in place.
const KindEmailChange = "email_change"

// defaultMaxHeld bounds the creates and the leavers a plan pass holds back
// for pairing (≈ 250 bytes each).
const defaultMaxHeld = 100_000

// emailChanger is the Mailchimp call that changes a contact's address
// (*mailchimp.Client implements it).
type emailChanger interface {
	ChangeEmail(ctx context.Context, listID, oldEmail, newEmail string) (mailchimp.Member, error)
}

// addressChangeFinder is a store that can list the customers whose synced
// address differs from their profile's current one (package sqldb can).
type addressChangeFinder interface {
	SyncedAddressChanges(ctx context.Context, exportID int64, emailAttr string) (map[string]bool, error)
}

// syncedReader reads one synced row (package sqldb can): the old contact
// as it is now, after the status refresh that follows the plan pass.
type syncedReader interface {
	SyncedByHash(ctx context.Context, exportID int64, hash string) (store.Synced, bool, error)
}

// moves are the address changes a plan pass found.
type moves struct {
	byNew map[string]*store.Synced // new hash -> old synced row
	byOld map[string]bool          // old hashes
}

// moveChange turns the create of a new address into the change of the old
// contact's address. Tags follow the acknowledgement, as for a create.
func moveChange(c change, old *store.Synced) change {
	c.fields, c.old = KindEmailChange, old
	c.addTags, c.removeTags = c.d.tags&^old.Tags, old.Tags&^c.d.tags
	if old.Status == mailchimp.StatusArchived && !old.ArchivedByUs {
		c.addTags, c.removeTags = 0, 0 // archived by someone else: left alone
	}
	return c
}

// applyMoves, in the send pass, turns the creates of changed addresses
// into changes and drops their old addresses.
func (r *runner) applyMoves(c *change) (skip bool) {
	if r.moves == nil {
		return false
	}
	if old, ok := r.moves.byNew[c.hash]; ok && c.fields == KindCreate && c.d != nil {
		*c = moveChange(*c, old)
		return false
	}
	return c.d == nil && r.moves.byOld[c.hash]
}

// pairer holds back the plan pass's creates and leavers until it ends.
type pairer struct {
	max      int
	only     map[string]bool // customer ids to hold (nil: any, up to max)
	creates  map[string]change
	leavers  map[string]change
	overflow bool
}

func newPairer(max int, only map[string]bool) *pairer {
	if max <= 0 {
		max = defaultMaxHeld
	}
	return &pairer{max: max, only: only, creates: map[string]change{}, leavers: map[string]change{}}
}

// hold keeps c back if it may be half of an address change.
func (p *pairer) hold(c *change) bool {
	var m map[string]change
	var id string
	switch {
	case c.fields == KindCreate && c.d != nil && (c.s == nil || c.s.Status != statusCreating):
		m, id = p.creates, c.d.customerID
	case c.d == nil && c.s != nil && c.s.InAudience && c.s.CustomerID != "" && c.s.Status != statusCreating:
		m, id = p.leavers, c.s.CustomerID
	default:
		return false
	}
	if p.only != nil && !p.only[id] {
		return false
	}
	if _, dup := m[id]; dup {
		return false
	}
	if p.only == nil && len(m) >= p.max {
		p.overflow = true
		return false
	}
	m[id] = *c
	return true
}

// finish visits what was held, pairs as email changes, and returns the pairs.
func (p *pairer) finish(visit func(*change) error) (*moves, error) {
	mv := &moves{byNew: map[string]*store.Synced{}, byOld: map[string]bool{}}
	for id, c := range p.creates {
		if l, ok := p.leavers[id]; ok {
			delete(p.leavers, id)
			old := *l.s
			c = moveChange(c, &old)
			mv.byNew[c.hash], mv.byOld[old.Hash] = &old, true
		}
		if err := visit(&c); err != nil {
			return nil, err
		}
	}
	for _, c := range p.leavers {
		if !c.empty() {
			if err := visit(&c); err != nil {
				return nil, err
			}
		}
	}
	return mv, nil
}

// emailChange changes the old contact's address to the new one. On a
// collision (the new address already is a contact) or a refusal, it falls
// back to what would have happened without pairing: the old contact is
// handled as a leaver and the new address as a create (or, when it exists,
// adopted as any existing contact, its status untouched).
func (s *sender) emailChange(ctx context.Context, o op) {
	c := o.c
	if rd, ok := s.r.Store.(syncedReader); ok {
		// The plan pass saw the old contact before the status refresh.
		fresh, found, err := rd.SyncedByHash(ctx, s.r.exp.ID, c.old.Hash)
		switch {
		case err != nil:
			s.memberCallFailed(o, "reading the old contact", err)
			return
		case !found || !fresh.InAudience:
			c.old = &fresh
			s.unpair(ctx, o, false, true) // gone meanwhile: a plain create
			return
		}
		c.old = &fresh
	}
	old := c.old
	ec, ok := s.r.mc.(emailChanger)
	if !ok {
		s.unpair(ctx, o, false, false)
		return
	}
	m, err := ec.ChangeEmail(ctx, s.r.list, old.Email, c.email)
	releaseSlot(ctx)
	s.r.countWrite()
	if err != nil {
		switch {
		case mailchimp.IsAuth(err) || s.ctx.Err() != nil:
			s.callFailed([]op{o}, "changing a contact's address", err)
		case mailchimp.IsEmailExists(err):
			s.r.log.Warn("address change refused: the new address already is a contact; the old one is left as on_leave says",
				"customer_id", c.customerID)
			s.rec.count(func(rc *store.RunCounts) { rc.EmailChangeCollisions++ })
			s.unpair(ctx, o, true, false)
		case mailchimp.IsNotFound(err):
			// The old contact is gone (deleted in Mailchimp): forget it and
			// create the new address.
			s.rec.change(store.SyncedChange{Hash: old.Hash, Delete: true})
			s.unpair(ctx, o, false, true)
		default:
			if kind, _ := mailchimp.Classify(err); kind == mailchimp.Permanent {
				s.r.log.Warn("address change refused; the old contact is left as on_leave says", "customer_id", c.customerID, "err", err)
				s.unpair(ctx, o, false, false)
				return
			}
			s.memberCallFailed(o, "changing a contact's address", err)
		}
		return
	}
	row := *old
	row.Hash, row.Email, row.CustomerID, row.InExport = c.hash, c.email, c.customerID, true
	if m.Status != "" {
		row.Status = m.Status
	}
	restored := false
	if old.Status == mailchimp.StatusArchived && row.Status != mailchimp.StatusArchived {
		// Changing an archived contact's address restores it (to its
		// status before archiving: consent kept). Archived by someone
		// else: archive it again, as it was. Archived by this export: it
		// is wanted again, so restored it stays.
		if old.ArchivedByUs {
			row.ArchivedByUs, restored = false, true
		} else if err := s.r.mc.ArchiveMember(ctx, s.r.list, c.email); err != nil {
			s.r.log.Warn("archiving a contact again after its address change", "customer_id", c.customerID, "err", err)
		} else {
			row.Status = mailchimp.StatusArchived
		}
		s.r.countWrite()
	}
	// The old row goes, the new one carries its history: tags exactly as
	// acknowledged on the old row (also over a stale row of the new hash).
	s.rec.change(store.SyncedChange{Hash: old.Hash, Delete: true})
	s.rec.change(store.SyncedChange{Hash: c.hash, Set: &row, AddTags: old.Tags, RemoveTags: ^old.Tags},
		func(rc *store.RunCounts) {
			rc.EmailChanged++
			if restored {
				rc.Restored++
			}
		})
	s.r.Metrics.contact(KindEmailChange)
	c.s = &row
	switch {
	case row.Status == mailchimp.StatusArchived && !row.ArchivedByUs:
		// Archived by someone else: nothing more, as for any such contact.
	case row.Status == mailchimp.StatusArchived:
		o.tk.add()
		s.spawn(false, func(ctx context.Context) { s.restore(ctx, o) }) // tags follow it
	default:
		if row.FieldsHash != c.d.fieldsHash {
			o.tk.add()
			s.spawn(false, func(ctx context.Context) { s.patch(ctx, o) })
		}
		s.queueTags(o, c.addTags, c.removeTags)
	}
	o.tk.done()
}

// unpair handles an address change that could not be made: the old contact
// as a leaver (on_leave; not when oldGone), the new address as a create —
// or, when exists is set, as an existing contact adopted without touching
// its status. A create for a person who had unsubscribed under the old
// address carries the opt-out: it is created unsubscribed.
func (s *sender) unpair(ctx context.Context, o op, exists, oldGone bool) {
	c, old := o.c, o.c.old
	lc := classify(nil, old, s.r.exp.OnLeave, &diffCounts{})
	if !oldGone && !lc.empty() {
		lo := op{c: &lc, tk: o.tk}
		switch lc.leave {
		case KindArchive:
			o.tk.add()
			s.spawn(false, func(ctx context.Context) { s.archive(ctx, lo) })
		case KindUnsubscribe:
			o.tk.add()
			s.spawn(false, func(ctx context.Context) { s.unsubscribe(ctx, lo) })
		}
		s.queueTags(lo, 0, lc.removeTags)
	}
	c.fields, c.old, c.addTags, c.removeTags = KindCreate, nil, c.d.tags, 0
	if old.Status == mailchimp.StatusUnsubscribed {
		c.createStatus = mailchimp.StatusUnsubscribed
	}
	if exists {
		s.spawn(false, func(ctx context.Context) { s.adopt(ctx, o, false) })
		return
	}
	ops := []op{o}
	s.spawnAfter(false, func(ctx context.Context) bool { return s.createIntents(ctx, ops) },
		func(ctx context.Context) { s.create(ctx, ops) })
}
