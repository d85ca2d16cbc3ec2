package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/profile/attrjson"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
	"golang.org/x/sync/errgroup"
)

// MaxSegmentSample is the largest sample PreviewSegment returns.
const MaxSegmentSample = 1000

func (db *DB) segmentDialect() segment.Dialect {
	if db.d == Postgres {
		return segment.Postgres
	}
	return segment.SQLite
}

// compile turns a rule into a WHERE expression for this database.
func (db *DB) compile(r *segment.Rule) (string, []any, error) {
	if r == nil {
		return "", nil, fmt.Errorf("no rule: %w", store.ErrInvalid)
	}
	where, args, err := segment.Compile(r, db.segmentDialect())
	if err != nil {
		return "", nil, fmt.Errorf("compiling rule: %v: %w", err, store.ErrInvalid)
	}
	return where, args, nil
}

const segmentCols = `id, name, description, rule, created_at, updated_at`

func scanSegment(row interface{ Scan(...any) error }) (store.Segment, error) {
	var s store.Segment
	var rule string
	var created, updated int64
	if err := row.Scan(&s.ID, &s.Name, &s.Description, &rule, &created, &updated); err != nil {
		return s, err
	}
	s.Rule = new(segment.Rule)
	if err := json.Unmarshal([]byte(rule), s.Rule); err != nil {
		return s, fmt.Errorf("segment %d has an unreadable rule: %w", s.ID, err)
	}
	s.CreatedAt = time.UnixMicro(created).UTC()
	s.UpdatedAt = time.UnixMicro(updated).UTC()
	return s, nil
}

func segmentRuleText(s *store.Segment) (string, error) {
	if s.Rule == nil {
		return "", fmt.Errorf("segment %q has no rule: %w", s.Name, store.ErrInvalid)
	}
	b, err := s.Rule.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("segment %q: %v: %w", s.Name, err, store.ErrInvalid)
	}
	return string(b), nil
}

// CreateSegment implements store.SegmentStore.
func (db *DB) CreateSegment(ctx context.Context, s *store.Segment) error {
	rule, err := segmentRuleText(s)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	err = db.W.QueryRowContext(ctx, db.Q(`INSERT INTO segments (name, description, rule, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?) RETURNING id`), s.Name, s.Description, rule, now.UnixMicro(), now.UnixMicro()).Scan(&s.ID)
	if uniqueViolation(err) {
		return fmt.Errorf("a segment named %q already exists: %w", s.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("creating segment %q: %w", s.Name, err)
	}
	s.CreatedAt, s.UpdatedAt = now, now
	return nil
}

// GetSegment implements store.SegmentStore.
func (db *DB) GetSegment(ctx context.Context, id int64) (store.Segment, error) {
	s, err := scanSegment(db.R.QueryRowContext(ctx, db.Q(`SELECT `+segmentCols+` FROM segments WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("segment %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("reading segment %d: %w", id, err)
	}
	return s, nil
}

// ListSegments implements store.SegmentStore.
func (db *DB) ListSegments(ctx context.Context) ([]store.Segment, error) {
	// ASCII-lowered names in byte order on both databases (as the unique
	// index compares them).
	order := `lower(name)`
	if db.d == Postgres {
		order = `lower(name COLLATE "C")`
	}
	rows, err := db.R.QueryContext(ctx, `SELECT `+segmentCols+` FROM segments ORDER BY `+order+`, id`)
	if err != nil {
		return nil, fmt.Errorf("listing segments: %w", err)
	}
	defer rows.Close()
	out := []store.Segment{}
	for rows.Next() {
		s, err := scanSegment(rows)
		if err != nil {
			return nil, fmt.Errorf("listing segments: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing segments: %w", err)
	}
	return out, nil
}

// UpdateSegment implements store.SegmentStore.
func (db *DB) UpdateSegment(ctx context.Context, s *store.Segment) error {
	rule, err := segmentRuleText(s)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	var created int64
	err = db.W.QueryRowContext(ctx, db.Q(`UPDATE segments SET name = ?, description = ?, rule = ?, updated_at = ?
		WHERE id = ? RETURNING created_at`), s.Name, s.Description, rule, now.UnixMicro(), s.ID).Scan(&created)
	switch {
	case uniqueViolation(err):
		return fmt.Errorf("a segment named %q already exists: %w", s.Name, store.ErrConflict)
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("segment %d: %w", s.ID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("updating segment %d: %w", s.ID, err)
	}
	s.CreatedAt, s.UpdatedAt = time.UnixMicro(created).UTC(), now
	return nil
}

// DeleteSegment implements store.SegmentStore. Exports keep their segment
// ids as a JSON array, so "in use" is looked up there, in the same
// transaction as the delete.
func (db *DB) DeleteSegment(ctx context.Context, id int64) error {
	inUse := `SELECT e.id FROM exports e, json_each(e.segment_ids) j WHERE j.value = ? ORDER BY e.id`
	if db.d == Postgres {
		inUse = `SELECT e.id FROM exports e WHERE e.segment_ids::jsonb @> to_jsonb(CAST(? AS bigint)) ORDER BY e.id`
	}
	return db.Tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, db.Q(inUse), id)
		if err != nil {
			return fmt.Errorf("deleting segment %d: finding exports that use it: %w", id, err)
		}
		var users []string
		for rows.Next() {
			var e int64
			if err := rows.Scan(&e); err != nil {
				rows.Close()
				return fmt.Errorf("deleting segment %d: %w", id, err)
			}
			users = append(users, strconv.FormatInt(e, 10))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("deleting segment %d: %w", id, err)
		}
		if len(users) > 0 {
			return fmt.Errorf("segment %d is selected by export(s) %s; remove it from them first: %w",
				id, strings.Join(users, ", "), store.ErrConflict)
		}
		res, err := tx.ExecContext(ctx, db.Q(`DELETE FROM segments WHERE id = ?`), id)
		if err != nil {
			return fmt.Errorf("deleting segment %d: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("deleting segment %d: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("segment %d: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// CountMatching implements store.SegmentStore.
func (db *DB) CountMatching(ctx context.Context, r *segment.Rule) (int64, error) {
	where, args, err := db.compile(r)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := db.R.QueryRowContext(ctx, db.Q(`SELECT COUNT(*) FROM profiles WHERE `+where), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting segment members: %w", err)
	}
	return n, nil
}

// Bounds of one CountMatchingEach statement: more rules are counted in
// further passes. maxStatementArgs keeps every statement well below
// SQLite's 32766 and PostgreSQL's 65535 parameters.
const (
	countEachRules   = 32
	maxStatementArgs = 30000
)

// CountMatchingEach implements store.SegmentStore: one statement counts
// several rules with COUNT(*) FILTER (WHERE rule), so each profile's JSON is
// read once for all of them.
func (db *DB) CountMatchingEach(ctx context.Context, rules []*segment.Rule) ([]int64, error) {
	out := make([]int64, 0, len(rules))
	var sel strings.Builder
	var args []any
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		counts := make([]int64, n)
		dest := make([]any, n)
		for i := range counts {
			dest[i] = &counts[i]
		}
		if err := db.R.QueryRowContext(ctx, db.Q(`SELECT `+sel.String()+` FROM profiles`), args...).Scan(dest...); err != nil {
			return fmt.Errorf("counting segment members: %w", err)
		}
		out = append(out, counts...)
		sel.Reset()
		args, n = args[:0], 0
		return nil
	}
	for i, r := range rules {
		where, a, err := db.compile(r)
		if err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
		if n == countEachRules || len(args)+len(a) > maxStatementArgs {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		if n > 0 {
			sel.WriteString(", ")
		}
		sel.WriteString("COUNT(*) FILTER (WHERE " + where + ")")
		args = append(args, a...)
		n++
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// SegmentMembers implements store.SegmentStore; the cursor is the one of
// ListProfiles (the last customer_id, base64url-encoded).
func (db *DB) SegmentMembers(ctx context.Context, r *segment.Rule, limit int, cursor string) (store.ProfilePage, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxProfilePage)
	where, args, err := db.compile(r)
	if err != nil {
		return store.ProfilePage{}, err
	}
	if cursor != "" {
		after, derr := base64.RawURLEncoding.DecodeString(cursor)
		if derr != nil || len(after) == 0 {
			return store.ProfilePage{}, fmt.Errorf("member cursor %q: %w", cursor, store.ErrInvalid)
		}
		where = `customer_id > ? AND ` + where
		args = append([]any{string(after)}, args...)
	}
	profiles, more, err := db.matching(ctx, where, args, limit)
	if err != nil {
		return store.ProfilePage{}, fmt.Errorf("listing segment members: %w", err)
	}
	page := store.ProfilePage{Profiles: profiles}
	if more {
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(profiles[len(profiles)-1].CustomerID))
	}
	return page, nil
}

// PreviewSegment implements store.SegmentStore.
func (db *DB) PreviewSegment(ctx context.Context, r *segment.Rule, sample int) (store.SegmentPreview, error) {
	sample = max(0, min(sample, MaxSegmentSample))
	n, err := db.CountMatching(ctx, r)
	if err != nil {
		return store.SegmentPreview{}, err
	}
	p := store.SegmentPreview{Count: n, Sample: []store.Profile{}}
	if sample == 0 || n == 0 {
		return p, nil
	}
	where, args, err := db.compile(r)
	if err != nil {
		return store.SegmentPreview{}, err
	}
	if p.Sample, _, err = db.matching(ctx, where, args, sample); err != nil {
		return store.SegmentPreview{}, fmt.Errorf("sampling segment members: %w", err)
	}
	return p, nil
}

// matching reads up to limit profiles matching where in customer_id order
// and says whether more follow.
func (db *DB) matching(ctx context.Context, where string, args []any, limit int) ([]store.Profile, bool, error) {
	rows, err := db.R.QueryContext(ctx, db.Q(`SELECT customer_id, `+db.shownAttrsCol()+`, updated_at FROM profiles
		WHERE `+where+` ORDER BY customer_id LIMIT ?`), append(args, limit+1)...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	out := []store.Profile{}
	var m attrjson.Merger
	for rows.Next() {
		if len(out) == limit {
			return out, true, nil
		}
		var id string
		var attrs []byte
		var updated int64
		if err := rows.Scan(&id, &attrs, &updated); err != nil {
			return nil, false, err
		}
		p, err := newProfile(&m, id, attrs, updated)
		if err != nil {
			return nil, false, err
		}
		out = append(out, p)
	}
	return out, false, rows.Err()
}

// StreamMembersByHash implements store.SegmentStore. The database filters
// the profiles; this process hashes the e-mail values and orders the members
// with an external merge sort (hashSorter) that keeps memory bounded however
// many profiles match. That is faster than letting either database sort
// rows this wide (SQLite's sorter is several times slower and keeps its
// temp store in memory; PostgreSQL spills past work_mem), and the hash is
// emailaddr.Hash by construction.
func (db *DB) StreamMembersByHash(ctx context.Context, rules []*segment.Rule, emailAttr string, names []string, fn func(store.HashedMember) error) error {
	each, release, err := db.SortMembersByHash(ctx, rules, emailAttr, names)
	if err != nil {
		return err
	}
	defer release()
	return each(fn)
}

// SortMembersByHash does now the part of StreamMembersByHash that comes
// before its first member and returns the rest: each streams the members
// to fn (once, under ctx), release frees the sorted runs (also when each
// was never called). A first run sorts while it waits for Mailchimp's
// answers to its first reads.
//
// When the address table of emailAttr is filled and up to date, what comes
// before the first member is only the members whose subscriber hash sorts
// below earlyHashBound, found through the table; the others are read and
// sorted while those stream (sortMembersEarly). Otherwise it is reading
// and sorting them all.
//
// The runs after one that read every member plan only what changed, and
// find those members in the address table: it is filled, or brought up to
// date, once this run is over (StartDeferred).
func (db *DB) SortMembersByHash(ctx context.Context, rules []*segment.Rule, emailAttr string, names []string) (each func(fn func(store.HashedMember) error) error, release func(), err error) {
	if !segment.ValidAttributeName(emailAttr) {
		return nil, nil, fmt.Errorf("streaming members: e-mail attribute %q: %w", emailAttr, store.ErrInvalid)
	}
	attrID, filled, fresh, err := db.addressesState(ctx, emailAttr)
	if err != nil {
		return nil, nil, err
	}
	db.fillAddressesLater(emailAttr)
	if filled && fresh { // a table behind the profiles is caught up after the run
		return db.sortMembersEarly(ctx, rules, emailAttr, names, attrID)
	}
	spans, err := db.idSpans(ctx)
	if err != nil {
		return nil, nil, err
	}
	sorter, err := db.sortedMembers(ctx, rules, emailAttr, names, spans, nil, memberSortRunBytes)
	if err != nil {
		return nil, nil, err
	}
	return func(fn func(store.HashedMember) error) error { return sorter.members(ctx, fn) }, sorter.close, nil
}

// earlyHashBound splits the members of SortMembersByHash when the address
// table can tell them apart: the eighth whose subscriber hash sorts below
// it (and those without an address) are read and sorted first, and their
// calls keep Mailchimp's connections busy while the rest are read.
const earlyHashBound = "2"

// sortMembersEarly is SortMembersByHash in two parts through the address
// table of attribute id attrID, which is up to date: the members below
// earlyHashBound, found through the table, then the others, read and
// sorted meanwhile. The others are every profile's members whose hash is
// not below the bound (hashed while read, as in any sort), so the second
// read needs no anti-join through the table (on SQLite, a temporary table
// of the first part's ids in memory). A profile whose address moved below
// the bound since the table's last refresh is left out of this stream (it
// changed after the run began; the next run sees it).
func (db *DB) sortMembersEarly(ctx context.Context, rules []*segment.Rule, emailAttr string, names []string, attrID int64) (each func(fn func(store.HashedMember) error) error, release func(), err error) {
	ranges, err := db.idRanges(ctx)
	if err != nil {
		return nil, nil, err
	}
	// Each id range's first part, found in the table's primary key.
	const addresses = `(SELECT profile_id FROM profile_addresses WHERE attr = ? AND profile_id > ? AND profile_id <= ? AND hash < ?)`
	var below, others []*profileFilter
	for _, r := range ranges {
		lo, hi := r[0], r[1]
		below = append(below, &profileFilter{cond: `id > ? AND id <= ? AND id IN ` + addresses, args: []any{lo, hi, attrID, lo, hi, earlyHashBound}})
		others = append(others, idRange(lo, hi))
	}
	// The others are read while the first part is sent, recorded and
	// flowed back, beside what that holds in memory (SQLite's included):
	// both sorts keep smaller runs in memory than a sort of them all does.
	// With the first part's at half and the others' at the whole of
	// memberSortRunBytes, a 1M export peaked at 315–335 MB.
	first, err := db.sortedMembers(ctx, rules, emailAttr, names, below, func(h string) bool { return h < earlyHashBound }, memberSortRunBytes/8)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	type sorted struct {
		sorter *hashSorter
		err    error
	}
	restc := make(chan sorted, 1)
	go func() {
		s, err := db.sortedMembers(ctx, rules, emailAttr, names, others, func(h string) bool { return h >= earlyHashBound }, memberSortRunBytes/4)
		restc <- sorted{s, err}
	}()
	var (
		once sync.Once
		rest sorted
	)
	wait := func() sorted { once.Do(func() { rest = <-restc }); return rest }
	each = func(fn func(store.HashedMember) error) error {
		if err := first.members(ctx, fn); err != nil {
			return err
		}
		r := wait()
		if r.err != nil {
			return r.err
		}
		return r.sorter.members(ctx, fn)
	}
	release = func() {
		cancel()
		if r := wait(); r.sorter != nil {
			r.sorter.close()
		}
		first.close()
	}
	return each, release, nil
}

// streamMembers is StreamMembersByHash over the profiles that pass only
// (nil: all of them, one id range per core).
func (db *DB) streamMembers(ctx context.Context, rules []*segment.Rule, emailAttr string, names []string, only *profileFilter, fn func(store.HashedMember) error) error {
	filters := []*profileFilter{only}
	if only == nil {
		var err error
		if filters, err = db.idSpans(ctx); err != nil {
			return err
		}
	}
	sorter, err := db.sortedMembers(ctx, rules, emailAttr, names, filters, nil, memberSortRunBytes)
	if err != nil {
		return err
	}
	return sorter.members(ctx, fn)
}

// sortedMembers reads the members of rules among the profiles that pass
// each filter (one read each, memberReaders at once; nil passes all),
// those whose subscriber hash keep keeps (nil: all), into a sorter that
// keeps runBytes in memory. Their attributes hold at least names (nil:
// all of them; see memberRead).
func (db *DB) sortedMembers(ctx context.Context, rules []*segment.Rule, emailAttr string, names []string, filters []*profileFilter, keep func(hash string) bool, runBytes int) (*hashSorter, error) {
	if len(rules) == 0 || len(rules) > store.MaxStreamRules {
		return nil, fmt.Errorf("streaming members: %d rules, want 1 to %d: %w", len(rules), store.MaxStreamRules, store.ErrInvalid)
	}
	sorter := newHashSorter(runBytes)
	if err := db.sortMembers(ctx, rules, emailAttr, names, filters, keep, sorter); err != nil {
		sorter.close()
		return nil, err
	}
	return sorter, nil
}

// spanProfiles is DB.SpanProfiles' default.
const spanProfiles = 20_000

// rangeProfiles is DB.RangeProfiles' default: a read is one statement,
// and SQLite holds memory for as long as a statement reads beside the
// writer (a 1M export whose members were read in two statements peaked
// at 127 MB outside Go, in ten at 79 MB).
const rangeProfiles = 100_000

// memberReaders is how many reads of members run at once: one per
// processor (at most four). Reading members is bound by the database's
// rule evaluation, and a run has nothing else to do until they are sorted.
func memberReaders() int { return min(runtime.GOMAXPROCS(0), 4) }

// idRanges splits the profiles into id ranges (lo, hi] of at most
// DB.RangeProfiles ids, and at least memberReaders of them (one when there
// are fewer than DB.SpanProfiles).
func (db *DB) idRanges(ctx context.Context) ([][2]int64, error) {
	var maxID int64
	if err := db.R.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM profiles`).Scan(&maxID); err != nil {
		return nil, fmt.Errorf("streaming members: %w", err)
	}
	size := cmp.Or(db.RangeProfiles, rangeProfiles)
	n := max(int64(memberReaders()), (maxID+size-1)/size)
	if maxID < cmp.Or(db.SpanProfiles, spanProfiles) {
		n = 1
	}
	ranges := make([][2]int64, n)
	for i := range n {
		ranges[i] = [2]int64{maxID * i / n, maxID * (i + 1) / n}
	}
	ranges[n-1][1] = math.MaxInt64 // profiles added meanwhile
	return ranges, nil
}

// idSpans is idRanges as filters.
func (db *DB) idSpans(ctx context.Context) ([]*profileFilter, error) {
	ranges, err := db.idRanges(ctx)
	if err != nil {
		return nil, err
	}
	spans := make([]*profileFilter, len(ranges))
	for i, r := range ranges {
		spans[i] = idRange(r[0], r[1])
	}
	return spans, nil
}

// idRange is the filter of the profile ids in (lo, hi].
func idRange(lo, hi int64) *profileFilter {
	return &profileFilter{cond: `id > ? AND id <= ?`, args: []any{lo, hi}}
}

// memberChunk is how many records a reader hands the sorter at a time.
const memberChunk = 1024

// sortMembers reads the members of each filter (one query each,
// memberReaders at once) and feeds them to the sorter; the read
// connections are released before the callbacks start.
func (db *DB) sortMembers(ctx context.Context, rules []*segment.Rule, emailAttr string, names []string, filters []*profileFilter, keep func(hash string) bool, sorter *hashSorter) error {
	type stmt struct {
		query string
		args  []any
	}
	match, err := db.matchers(rules)
	if err != nil {
		return err
	}
	read := memberRead{nrules: len(rules), match: match, emailAttr: emailAttr, names: names, keep: keep,
		spare: make(chan []memberRec, 2*memberReaders()+2)}
	stmts := make([]stmt, len(filters))
	for i, f := range filters {
		query, args, err := db.streamQuery(rules, emailAttr, f, match != nil)
		if err != nil {
			return err
		}
		stmts[i] = stmt{query, args}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readers := min(len(stmts), memberReaders())
	chunks := make(chan []memberRec, 2*readers)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(readers)
	go func() { // g.Go waits for a reader to end, which may wait for this loop below
		for _, st := range stmts {
			g.Go(func() error { return db.readMembers(gctx, st.query, st.args, read, chunks) })
		}
		_ = g.Wait()
		close(chunks)
	}()
	var addErr error
	for c := range chunks {
		for _, r := range c {
			if addErr == nil {
				addErr = sorter.add(r)
			}
		}
		clear(c) // the sorter holds the records
		select {
		case read.spare <- c[:0]:
		default:
		}
		if addErr != nil {
			cancel() // the readers stop; the channel is drained until closed
		}
	}
	if err := g.Wait(); err != nil && addErr == nil {
		return err
	}
	return addErr
}

// matchers returns the rules made ready for evaluation in Go on SQLite, or
// nil: on PostgreSQL (the server evaluates them, beside this process), or
// when a rule reads Mailchimp's statuses (only SQL can). SQLite runs its
// JSON functions in this process, and looked each attribute up again for
// every condition and every profile (3 s of a 1M export's CPU); in Go each
// profile's attributes are split once, and read while hashing the address.
func (db *DB) matchers(rules []*segment.Rule) ([]*segment.Matcher, error) {
	if db.d != SQLite {
		return nil, nil
	}
	match := make([]*segment.Matcher, len(rules))
	for i, r := range rules {
		m, err := segment.NewMatcher(r)
		if errors.Is(err, segment.ErrStatusRule) {
			return nil, nil
		} else if err != nil {
			return nil, fmt.Errorf("streaming members: rule %d: %w", i, err)
		}
		match[i] = m
	}
	return match, nil
}

// memberRead is how readMembers reads a stream query's rows: nrules
// rules, evaluated by the statement (match nil: it yields the address and
// a membership column per rule when there are several) or by match on each
// row's attributes; keep keeps the members of some hashes (nil: all).
// With match, a record's attributes are only those named in names (nil:
// all of them), in their order in the profile's object; without, the
// whole object (the rows are not split then). Chunks the sorter has taken
// the records of come back through spare.
type memberRead struct {
	nrules    int
	match     []*segment.Matcher
	emailAttr string
	names     []string
	keep      func(hash string) bool
	spare     chan []memberRec
}

// readMembers runs one stream query and sends its members, hashed, in
// chunks.
func (db *DB) readMembers(ctx context.Context, query string, args []any, read memberRead, out chan<- []memberRec) error {
	rows, err := db.R.QueryContext(ctx, db.Q(query), args...)
	if err != nil {
		return fmt.Errorf("streaming members: %w", err)
	}
	defer rows.Close()
	var (
		rec     memberRec
		email   any // string when the attribute is a JSON string
		attrs   sql.RawBytes
		flags   = make([]bool, read.nrules)
		dest    = []any{&email, &rec.customerID, &attrs, &rec.updated}
		members []attrjson.Member
		named   []attrjson.Member // the members of read.names
		arena   []byte            // the chunk's attribute bytes: one allocation per megabyte
		chunk   = make([]memberRec, 0, memberChunk)
	)
	switch {
	case read.match != nil:
		dest = dest[1:]
	case read.nrules > 1:
		for i := range flags {
			dest = append(dest, &flags[i])
		}
	}
	send := func() error {
		err := sendCtx(ctx, out, chunk)
		select {
		case chunk = <-read.spare:
		default:
			chunk = make([]memberRec, 0, memberChunk)
		}
		return err
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("streaming members: %w", err)
		}
		var addr string
		var isText bool
		if read.match != nil {
			if members, err = attrjson.Split(members[:0], attrs); err != nil {
				return fmt.Errorf("streaming members: the attributes of profile %q: %w", rec.customerID, err)
			}
			var b []byte
			if b, isText = attrjson.StringBytes(attrjson.Find(members, read.emailAttr)); isText {
				addr = string(b)
			}
		} else {
			addr, isText = email.(string)
		}
		rec.hash = ""
		if isText && emailaddr.Normalize(addr) != "" {
			rec.hash = emailaddr.Hash(addr)
		}
		if read.keep != nil && !read.keep(rec.hash) {
			continue
		}
		rec.segments = 0
		switch {
		case read.match != nil:
			for i, m := range read.match {
				if m.Match(members) {
					rec.segments |= 1 << i
				}
			}
			if rec.segments == 0 {
				continue
			}
		case read.nrules > 1:
			for i, f := range flags {
				if f {
					rec.segments |= 1 << i
				}
			}
		default:
			rec.segments = 1
		}
		// A projection is never longer than the object it is taken from.
		if cap(arena)-len(arena) < len(attrs) {
			arena = make([]byte, 0, max(1<<20, len(attrs)))
		}
		n := len(arena)
		if read.match != nil && read.names != nil {
			// Only the attributes the caller reads (an export's address
			// and merge fields, a few of a profile's many): the rest
			// would be spilled to the sort's runs, merged back and split
			// a second time by the caller, for every member of a full
			// export. Names compare as the caller's would (the raw key,
			// pickAttrs in package syncer), and the members keep their
			// order, so that a name given twice reads the same.
			named = named[:0]
			for _, m := range members {
				for _, name := range read.names {
					if string(m.Name) == name {
						named = append(named, m)
						break
					}
				}
			}
			arena = attrjson.AppendMembers(arena, named)
		} else {
			arena = append(arena, attrs...)
		}
		rec.attrs = arena[n:len(arena):len(arena)]
		if chunk = append(chunk, rec); len(chunk) == memberChunk {
			if err := send(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("streaming members: %w", err)
	}
	if len(chunk) > 0 {
		return send()
	}
	return nil
}

// streamQuery builds the statement of StreamMembersByHash, which yields the
// e-mail value (when a JSON string), customer_id, attrs, updated_at and, for
// several rules, one membership column per rule, unsorted. With several
// rules each is evaluated once per profile in a subquery that the planner
// may not flatten (LIMIT -1 on SQLite, OFFSET 0 on PostgreSQL), so the
// membership columns double as the filter; attrs are converted for output
// only for the members.
//
// With inGo the statement yields customer_id, attrs and updated_at of every
// profile that passes only, and the caller evaluates the rules (matchers).
// The rules must fit in one statement all the same, so that what a store
// accepts does not depend on where it evaluates them.
func (db *DB) streamQuery(rules []*segment.Rule, emailAttr string, only *profileFilter, inGo bool) (string, []any, error) {
	q, args, err := db.streamSQL(rules, emailAttr, only)
	if err != nil || !inGo {
		return q, args, err
	}
	q = `SELECT s.customer_id, s.attrs, s.updated_at FROM profiles s`
	if only == nil {
		return q, nil, nil
	}
	return q + ` WHERE ` + only.cond, only.args, nil
}

// streamSQL is streamQuery's statement that evaluates the rules.
func (db *DB) streamSQL(rules []*segment.Rule, emailAttr string, only *profileFilter) (string, []any, error) {
	// SQLite gives a JSON string as TEXT and numbers and booleans as
	// INTEGER or REAL, which sortMembers tells apart by their Go type.
	email := `json_extract(s.attrs, ?)`
	args := []any{"$." + emailAttr}
	attrs := `s.attrs`
	if db.d == Postgres {
		email = `CASE WHEN jsonb_typeof(s.attrs -> CAST(? AS text)) = 'string' THEN s.attrs ->> CAST(? AS text) END`
		args = []any{emailAttr, emailAttr}
		attrs = `s.attrs::text`
	}
	if len(rules) == 1 {
		where, wargs, err := db.compile(rules[0])
		if err != nil {
			return "", nil, err
		}
		if only != nil {
			where = only.cond + ` AND (` + where + `)`
			args = append(args, only.args...)
		}
		q := `SELECT ` + email + `, s.customer_id, ` + attrs + `, s.updated_at FROM profiles s WHERE ` + where
		return q, append(args, wargs...), nil
	}
	var cols, filter strings.Builder
	for i, r := range rules {
		where, wargs, err := db.compile(r)
		if err != nil {
			return "", nil, fmt.Errorf("rule %d: %w", i, err)
		}
		fmt.Fprintf(&cols, ", %s AS m%d", where, i)
		args = append(args, wargs...)
		if i > 0 {
			filter.WriteString(" OR ")
		}
		fmt.Fprintf(&filter, "s.m%d", i)
	}
	if len(args) > maxStatementArgs {
		return "", nil, fmt.Errorf("streaming members: the rules need %d parameters, more than one statement takes (%d): %w",
			len(args), maxStatementArgs, store.ErrInvalid)
	}
	fence := ` LIMIT -1`
	if db.d == Postgres {
		fence = ` OFFSET 0`
	}
	if only != nil {
		fence = ` WHERE ` + only.cond + fence
		args = append(args, only.args...)
	}
	q := `SELECT ` + email + `, s.customer_id, ` + attrs + `, s.updated_at` + memberCols(len(rules)) + ` FROM (SELECT customer_id, attrs, updated_at` + cols.String() +
		` FROM profiles` + fence + `) s WHERE ` + filter.String()
	return q, args, nil
}

func memberCols(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ", s.m%d", i)
	}
	return b.String()
}
