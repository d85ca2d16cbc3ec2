package syncer

import (
	"context"

	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/store"
)

// memberSorter is a Source that can read and sort a run's members ahead of
// their stream (package sqldb can): a first run sorts while it waits for
// Mailchimp's answers to its first reads, so its first create leaves one
// round trip sooner.
type memberSorter interface {
	SortMembersByHash(ctx context.Context, rules []*segment.Rule, emailAttr string, names []string) (each func(fn func(store.HashedMember) error) error, release func(), err error)
}

// earlySort is a member sort started ahead of the diff that streams it.
type earlySort struct {
	done    chan struct{}
	cancel  context.CancelFunc
	each    func(fn func(store.HashedMember) error) error
	release func()
	err     error
	taken   bool
}

// startSort starts sorting the members of the run's rules, when the source
// can; nil otherwise.
func (r *runner) startSort(ctx context.Context) *earlySort {
	src, ok := r.Source.(memberSorter)
	if !ok || len(r.rules) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &earlySort{done: make(chan struct{}), cancel: cancel}
	names := r.memberNames()
	go func() {
		defer close(s.done)
		s.each, s.release, s.err = src.SortMembersByHash(ctx, r.rules, r.exp.Mapping.Email, names)
	}()
	return s
}

// stream waits for the sort and streams its members to fn; only once.
func (s *earlySort) stream(fn func(store.HashedMember) error) error {
	<-s.done
	s.taken = true
	if s.err != nil {
		return s.err
	}
	return s.each(fn)
}

// close ends the sort (when its members were never streamed) and frees it.
func (s *earlySort) close() {
	if s == nil {
		return
	}
	if !s.taken {
		s.cancel()
	}
	<-s.done
	if s.release != nil {
		s.release()
	}
	s.cancel()
}
