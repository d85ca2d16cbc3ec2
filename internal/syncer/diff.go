package syncer

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/store"
)

// change is what one contact needs, decided by classify.
type change struct {
	hash, email, customerID string
	d                       *desiredContact // nil: not (or no longer) in the export
	s                       *store.Synced   // nil: never synced
	fields                  string          // "", KindCreate, KindRestore, "bulk" or "patch"
	addTags, removeTags     uint64
	leave                   string        // "", KindArchive or KindUnsubscribe
	old                     *store.Synced // KindEmailChange: the contact whose address changes
	createStatus            string        // KindCreate: status instead of status_if_new
	// earlierIntent (KindCreate) is the fields hash of a create of the
	// contact sent by an earlier run or attempt whose answer was never
	// recorded (store.Intent): "" when there was none. intentBatch is the
	// batch of create intents noted for this run's create of the contact.
	earlierIntent string
	intentBatch   int64
}

func (c *change) empty() bool {
	return c.fields == "" && c.addTags == 0 && c.removeTags == 0 && c.leave == ""
}

// Field-update paths for contacts that exist.
const (
	fieldsBulk  = "bulk"  // batch subscribe, update_existing, status "subscribed" (already so)
	fieldsPatch = "patch" // PATCH merge_fields only
)

// diffCounts are the counts a diff establishes on its own.
type diffCounts struct {
	desiredCounts
	unchanged, skippedRejected, skippedArchived, left int64
}

// classify decides what one contact needs. d or s may be nil, not both.
func classify(d *desiredContact, s *store.Synced, onLeave string, cnt *diffCounts) change {
	c := change{d: d, s: s}
	if d != nil {
		c.hash, c.email, c.customerID = d.hash, d.email, d.customerID
	} else {
		c.hash, c.email, c.customerID = s.Hash, s.Email, s.CustomerID
	}
	switch {
	case d != nil && (s == nil || !s.InAudience):
		if s != nil && s.RejectedHash != "" && s.RejectedHash == d.fieldsHash {
			cnt.skippedRejected++
			return c
		}
		c.fields = KindCreate
		c.addTags = d.tags // after the create is acknowledged
	case d != nil:
		if s.Status == mailchimp.StatusArchived {
			if !s.ArchivedByUs {
				cnt.skippedArchived++ // someone else archived it: leave it so
				return c
			}
			c.fields = KindRestore
			c.addTags, c.removeTags = d.tags&^s.Tags, s.Tags&^d.tags
			return c
		}
		if s.FieldsHash != d.fieldsHash && s.RejectedHash != d.fieldsHash {
			if s.Status == mailchimp.StatusSubscribed {
				c.fields = fieldsBulk
			} else {
				c.fields = fieldsPatch
			}
		}
		c.addTags, c.removeTags = d.tags&^s.Tags, s.Tags&^d.tags
		if c.empty() {
			if s.RejectedHash != "" && s.RejectedHash == d.fieldsHash {
				cnt.skippedRejected++
			} else {
				cnt.unchanged++
			}
		}
	default: // s != nil, no longer desired
		if !s.InAudience || s.Status == mailchimp.StatusArchived {
			return c
		}
		c.removeTags = s.Tags
		if s.InExport {
			cnt.left++
			switch onLeave {
			case "archive":
				// Mailchimp archives only subscribed, unsubscribed and
				// transactional contacts; the others are untagged.
				if s.CreatedByUs && s.Status != mailchimp.StatusCleaned && s.Status != mailchimp.StatusPending {
					c.leave, c.removeTags = KindArchive, 0 // archived contacts keep their tags
				}
			case "unsubscribe":
				switch s.Status {
				case mailchimp.StatusSubscribed, mailchimp.StatusPending, mailchimp.StatusTransactional:
					c.leave = KindUnsubscribe
				}
			}
		}
	}
	return c
}

// diff merges the desired state with the synced state and calls visit for
// every contact that needs a change. Both streams are in hash order.
func (r *runner) diff(ctx context.Context, visit func(*change) error) error {
	cnt := &diffCounts{}
	desired := func(yield func(*desiredContact, error) bool) {}
	inc := r.inc != nil && !r.inc.full()
	if len(r.rules) > 0 {
		members := func(fn func(store.HashedMember) error) error {
			if inc {
				return r.inc.streamMembers(ctx, r, fn)
			}
			if r.early != nil && !r.early.taken {
				return r.early.stream(fn)
			}
			return r.Source.StreamMembersByHash(ctx, r.rules, r.exp.Mapping.Email, r.memberNames(), fn)
		}
		desired = desiredStream(members, r.segBits, r.exp.Mapping.Email, r.specs, &cnt.desiredCounts)
	}
	dNext, dStop := iter.Pull2(desired)
	defer dStop()
	synced := func(yield func(store.Synced, error) bool) {
		each := func(s store.Synced) error {
			if !yield(s, nil) {
				return errStop
			}
			return nil
		}
		var err error
		if inc {
			err = r.Store.(incrementalStore).StreamSyncedOfHashes(ctx, r.exp.ID, r.inc.only, each)
		} else {
			err = r.Store.StreamSynced(ctx, r.exp.ID, each)
		}
		if err != nil && !errors.Is(err, errStop) {
			yield(store.Synced{}, err)
		}
	}
	sNext, sStop := iter.Pull2(synced)
	defer sStop()

	d, err, dOK := dNext()
	if dOK && err != nil {
		return err
	}
	s, err, sOK := sNext()
	if sOK && err != nil {
		return err
	}
	lastSynced := ""
	for dOK || sOK {
		if err := ctx.Err(); err != nil {
			return err
		}
		if dOK && d.merged > 1 && r.inc != nil {
			r.inc.dups[d.hash] = true // planned again by every incremental run
		}
		var c change
		switch {
		case dOK && (!sOK || d.hash < s.Hash):
			c = classify(d, nil, r.exp.OnLeave, cnt)
			d, err, dOK = dNext()
		case sOK && (!dOK || s.Hash < d.hash):
			sc := s
			c = classify(nil, &sc, r.exp.OnLeave, cnt)
			s, err, sOK = sNext()
		default:
			sc := s
			c = classify(d, &sc, r.exp.OnLeave, cnt)
			d, err, dOK = dNext()
			if err == nil {
				s, err, sOK = sNext()
			}
		}
		if err != nil {
			return err
		}
		if sOK {
			if s.Hash < lastSynced {
				return fmt.Errorf("synced state is not in hash order")
			}
			lastSynced = s.Hash
		}
		skip := r.applyMoves(&c)
		if !skip && r.pair != nil && r.pair.hold(&c) {
			skip = true
		}
		if !skip && !c.empty() {
			if err := visit(&c); err != nil {
				return err
			}
		}
	}
	if r.pair != nil {
		mv, err := r.pair.finish(visit)
		if err != nil {
			return err
		}
		r.moves = mv
	}
	r.tr.update(func(_ *store.Progress, rc *store.RunCounts) {
		rc.Profiles, rc.SkippedInvalidEmail, rc.Duplicates, rc.Contacts = cnt.profiles, cnt.invalid, cnt.duplicates, cnt.contacts
		rc.Unchanged, rc.SkippedRejected, rc.SkippedArchived, rc.Left = cnt.unchanged, cnt.skippedRejected, cnt.skippedArchived, cnt.left
	})
	return nil
}

// planner counts the changes of a diff and keeps a sample of each kind.
type planner struct {
	r       *runner
	changes int64
	counts  store.RunCounts
	sample  store.RunSample
}

func (p *planner) visit(c *change) error {
	p.changes++
	add := func(kind, detail string, tags []string) {
		if len(p.sample[kind]) < sampleSize {
			p.sample[kind] = append(p.sample[kind], store.SampleContact{Email: c.email, CustomerID: c.customerID, Detail: detail, Tags: tags})
		}
	}
	switch c.fields {
	case KindCreate:
		p.counts.Created++
		add(KindCreate, "", nil)
	case KindEmailChange:
		p.counts.EmailChanged++
		add(KindEmailChange, "from "+c.old.Email+" (status "+c.old.Status+")", nil)
		switch {
		case c.old.Status == mailchimp.StatusArchived && !c.old.ArchivedByUs:
		case c.old.Status == mailchimp.StatusArchived:
			p.counts.Restored++
		case c.old.FieldsHash != c.d.fieldsHash:
			p.counts.Updated++
		}
	case KindRestore:
		p.counts.Restored++
		add(KindRestore, "", nil)
	case fieldsBulk, fieldsPatch:
		p.counts.Updated++
		add(KindUpdate, "status "+c.s.Status, nil)
	}
	if c.addTags != 0 {
		tags := p.r.tagList(c.addTags)
		p.counts.TagsAdded += int64(len(tags))
		add(KindTagAdd, "", tags)
	}
	if c.removeTags != 0 {
		tags := p.r.tagList(c.removeTags)
		p.counts.TagsRemoved += int64(len(tags))
		add(KindTagRemove, "", tags)
	}
	switch c.leave {
	case KindArchive:
		p.counts.Archived++
		add(KindArchive, "", nil)
	case KindUnsubscribe:
		p.counts.Unsubscribed++
		add(KindUnsubscribe, "", nil)
	}
	return nil
}
