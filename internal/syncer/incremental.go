package syncer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
)

// Incremental planning (docs/engine.md, "Incremental runs"): a run plans
// only the contacts that profiles changed since the export's last complete
// run touch, unless it must plan fully.

// incrementalStore is a store that keeps what runs planned from and finds
// what changed since (package sqldb).
type incrementalStore interface {
	PlanState(ctx context.Context, exportID int64) (store.PlanState, bool, error)
	ProfileMark(ctx context.Context) (store.ProfileMark, error)
	SavePlanState(ctx context.Context, exportID int64, st store.PlanState) error
	ChangedHashes(ctx context.Context, exportID int64, emailAttr string, since int64) ([]string, error)
	StreamSyncedOfHashes(ctx context.Context, exportID int64, hashes []string, fn func(store.Synced) error) error
}

// hashSource streams the members of some addresses only (package sqldb).
type hashSource interface {
	StreamMembersOfHashes(ctx context.Context, rules []*segment.Rule, emailAttr string, names, hashes []string, fn func(store.HashedMember) error) error
}

// deferrer is a store that defers some work of a run's reads until the
// run is over (package sqldb: the first fill of an address table).
type deferrer interface{ StartDeferred() }

// incremental is one run's plan scope.
type incremental struct {
	st   store.PlanState // what the last complete run planned from
	mark store.ProfileMark
	fp   string
	// why the run plans every profile; "" when it plans only.
	why  string
	only []string // the hashes to plan, ascending
	// onlyMu guards only while the status refresh adds to it.
	onlyMu sync.Mutex
	// dups are the hashes of contacts merged from several profiles that
	// this run's diffs saw.
	dups map[string]bool
	// members are those the first pass over the scope read, for the
	// passes after it (nil: none kept).
	members *memberCache
}

// memberCache holds the segment members of an incremental run's scope as
// its first pass read them, for the passes after it, up to
// maxCachedMembers bytes of attributes; beyond that those passes read them
// again by address (the address table finds them, package sqldb).
// Members of addresses added to the scope since (statuses the refresh
// found changed) are read from the store and merged in.
type memberCache struct {
	hashes  []string // the scope they were read for, ascending
	members []store.HashedMember
	size    int  // bytes of members
	over    bool // past maxCachedMembers: members dropped
}

// maxCachedMembers bounds the bytes of attributes a memberCache holds.
var maxCachedMembers = 32 << 20

func (c *memberCache) add(m store.HashedMember) {
	if c.over {
		return
	}
	c.size += len(m.Attrs) + len(m.Hash) + len(m.CustomerID)
	if c.size > maxCachedMembers {
		c.over, c.members = true, nil
		return
	}
	m.Attrs = slices.Clone(m.Attrs)
	c.members = append(c.members, m)
}

// streamMembers streams the members of the run's scope in hash order.
func (in *incremental) streamMembers(ctx context.Context, r *runner, fn func(store.HashedMember) error) error {
	names := r.memberNames()
	read := func(hashes []string, fn func(store.HashedMember) error) error {
		return r.Source.(hashSource).StreamMembersOfHashes(ctx, r.rules, r.exp.Mapping.Email, names, hashes, fn)
	}
	c := in.members
	if c == nil {
		keep := &memberCache{hashes: slices.Clone(in.only)}
		err := read(in.only, func(m store.HashedMember) error {
			keep.add(m)
			return fn(m)
		})
		if err == nil { // a pass stopped early read only part
			in.members = keep
		}
		return err
	}
	if c.over {
		return read(in.only, fn)
	}
	var added []string
	for _, h := range in.only {
		if _, ok := slices.BinarySearch(c.hashes, h); !ok {
			added = append(added, h)
		}
	}
	// Both are in hash order and share no address: a merge.
	i := 0
	err := read(added, func(m store.HashedMember) error {
		for ; i < len(c.members) && c.members[i].Hash < m.Hash; i++ {
			if err := fn(c.members[i]); err != nil {
				return err
			}
		}
		return fn(m)
	})
	if err != nil {
		return err
	}
	for ; i < len(c.members); i++ {
		if err := fn(c.members[i]); err != nil {
			return err
		}
	}
	return nil
}

func (in *incremental) full() bool { return in.why != "" }

// FullEvery is how often an export is planned fully when nothing else asks
// for it, to prove that incremental runs converge (default a week).
func (e *Engine) fullEvery() time.Duration {
	if e.FullEvery <= 0 {
		return 7 * 24 * time.Hour
	}
	return e.FullEvery
}

// reservedPrefix starts the attributes Mailchimp's statuses are written
// back to, without moving a profile's updated_at.
const reservedPrefix = "mailchimp."

// choosePlan decides whether the run plans fully or only what changed.
// firstRun forces a full plan. Stores without incremental support, and dry
// runs, plan fully and keep nothing.
func (r *runner) choosePlan(ctx context.Context, firstRun bool) error {
	s, ok := r.Store.(incrementalStore)
	if _, src := r.Source.(hashSource); !ok || !src || r.opt.DryRun {
		return nil
	}
	mark, err := s.ProfileMark(ctx)
	if err != nil {
		return err
	}
	st, found, err := s.PlanState(ctx, r.exp.ID)
	if err != nil {
		return err
	}
	in := &incremental{st: st, mark: mark, fp: r.fingerprint(), dups: map[string]bool{}}
	switch {
	case firstRun:
		in.why = "first run"
	case !found || st.FullAt.IsZero():
		in.why = "no complete plan yet"
	case st.Fingerprint != in.fp:
		in.why = "the segments, their rules, the mapping or the audience changed"
	case !st.FullRequestedAt.Before(st.FullAt):
		in.why = "full re-sync requested"
	case st.Deletions != mark.Deletions:
		in.why = "profiles were deleted"
	case mark.Now.Sub(st.FullAt) >= r.fullEvery():
		in.why = "periodic full plan"
	case r.readsReserved():
		in.why = "a segment or the mapping reads the Mailchimp status attributes"
	}
	if !in.full() {
		changed, err := s.ChangedHashes(ctx, r.exp.ID, r.exp.Mapping.Email, st.Through)
		if err != nil {
			return err
		}
		in.only = unionSorted(changed, st.Duplicates)
		r.log.Info("planning incrementally", "contacts", len(in.only), "changed", len(changed), "merged", len(st.Duplicates))
	} else {
		r.log.Info("planning every profile", "why", in.why)
	}
	r.inc = in
	r.tr.update(func(_ *store.Progress, c *store.RunCounts) {
		c.Incremental = 0
		if !in.full() {
			c.Incremental = 1
		}
	})
	return nil
}

// planOnly adds hashes to an incremental run's scope (contacts whose status
// Mailchimp reported changed).
func (r *runner) planOnly(hashes []string) {
	if r.inc == nil || r.inc.full() || len(hashes) == 0 {
		return
	}
	r.inc.onlyMu.Lock() // the status listings run at once
	defer r.inc.onlyMu.Unlock()
	slices.Sort(hashes)
	r.inc.only = unionSorted(r.inc.only, slices.Compact(hashes))
}

// savePlan records what this complete run planned from: the next run
// plans what changed after it. A run with rejections keeps the old state,
// so the next one plans its contacts again.
func (r *runner) savePlan(ctx context.Context) error {
	in := r.inc
	if in == nil {
		return nil
	}
	if _, c := r.tr.Snapshot(); c.Rejected > 0 {
		return nil
	}
	next := store.PlanState{Fingerprint: in.fp, Through: in.mark.Through, Deletions: in.mark.Deletions, FullAt: in.st.FullAt}
	var dups []string
	if in.full() {
		next.FullAt = in.mark.Now
		// The request this plan saw is answered even when the database
		// clock (milliseconds on SQLite) gave both the same time.
		if r := in.st.FullRequestedAt; !r.Before(next.FullAt) {
			next.FullAt = r.Add(time.Microsecond)
		}
	} else {
		// Merged contacts outside this run's scope stay merged.
		for _, h := range in.st.Duplicates {
			if _, planned := slices.BinarySearch(in.only, h); !planned {
				dups = append(dups, h)
			}
		}
	}
	for h := range in.dups {
		dups = append(dups, h)
	}
	slices.Sort(dups)
	next.Duplicates = slices.Compact(dups)
	return r.Store.(incrementalStore).SavePlanState(context.WithoutCancel(ctx), r.exp.ID, next)
}

// fingerprint names what the desired state is computed from.
func (r *runner) fingerprint() string {
	type seg struct {
		ID   int64         `json:"id"`
		Tag  string        `json:"tag"`
		Bit  uint64        `json:"bit"`
		Rule *segment.Rule `json:"rule"`
	}
	var conn int64
	if r.exp.ConnectionID != nil {
		conn = *r.exp.ConnectionID
	}
	v := struct {
		Conn     int64         `json:"conn"`
		Audience string        `json:"audience"`
		Segments []seg         `json:"segments"`
		Mapping  store.Mapping `json:"mapping"`
		Fields   []string      `json:"fields"`
	}{Conn: conn, Audience: r.exp.AudienceID, Mapping: r.exp.Mapping}
	for i, id := range r.exp.SegmentIDs {
		v.Segments = append(v.Segments, seg{ID: id, Tag: r.tagNames[r.segBits[i]], Bit: r.segBits[i], Rule: r.rules[i]})
	}
	for _, sp := range r.specs {
		v.Fields = append(v.Fields, sp.attr+"\x00"+sp.tag+"\x00"+sp.typ)
	}
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// readsReserved says whether a rule or the mapping reads an attribute that
// changes without moving the profile's updated_at.
func (r *runner) readsReserved() bool {
	for _, sp := range r.specs {
		if strings.HasPrefix(sp.attr, reservedPrefix) {
			return true
		}
	}
	if strings.HasPrefix(r.exp.Mapping.Email, reservedPrefix) {
		return true
	}
	for _, rule := range r.rules {
		if ruleReads(rule, reservedPrefix) {
			return true
		}
	}
	return false
}

func ruleReads(r *segment.Rule, prefix string) bool {
	if r == nil {
		return false
	}
	if strings.HasPrefix(r.Attribute, prefix) {
		return true
	}
	for _, sub := range r.Rules {
		if ruleReads(sub, prefix) {
			return true
		}
	}
	return false
}

// unionSorted merges two ascending lists without duplicates.
func unionSorted(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var v string
		switch {
		case j >= len(b) || (i < len(a) && a[i] < b[j]):
			v, i = a[i], i+1
		case i >= len(a) || b[j] < a[i]:
			v, j = b[j], j+1
		default:
			v, i, j = a[i], i+1, j+1
		}
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	return out
}
