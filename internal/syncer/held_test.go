package syncer

import (
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store"
)

// TestHolder: a created contact's row is recorded once with the tags
// answered for it; a row whose tags are slow is recorded when the limit is
// reached, and the tag answered later is then the caller's to record.
func TestHolder(t *testing.T) {
	rec := &recorder{ch: make(chan any, 16)}
	h := newHolder(rec, 200*time.Millisecond)
	row := store.Synced{Hash: "a"}
	count := func(rc *store.RunCounts) { rc.TagsAdded++ }

	fast := h.hold(store.SyncedChange{Hash: "a", Set: &row}, 0, 2)
	slow := h.hold(store.SyncedChange{Hash: "b", Set: &row}, 0, 2)
	if !h.tagAnswered(fast, 1, count) || !h.tagAnswered(fast, 0, nil) { // tag 2 refused
		t.Fatal("a held row refused a tag answer")
	}
	got := (<-rec.ch).(acked)
	if got.change.Hash != "a" || got.change.AddTags != 1 || len(got.counts) != 1 {
		t.Fatalf("recorded %+v, want a with tag bit 1 and its count", got)
	}
	if !h.tagAnswered(slow, 4, count) {
		t.Fatal("a held row refused a tag answer")
	}
	select {
	case v := <-rec.ch:
		t.Fatalf("recorded %+v before the row's tags were answered or the limit passed", v)
	case <-time.After(50 * time.Millisecond):
	}
	got = (<-rec.ch).(acked) // the limit passes
	if got.change.Hash != "b" || got.change.AddTags != 4 {
		t.Fatalf("recorded %+v, want b with tag bit 4", got)
	}
	if h.tagAnswered(slow, 8, count) {
		t.Fatal("a released row took a tag answer")
	}
	last := h.hold(store.SyncedChange{Hash: "c", Set: &row}, 0, 1)
	h.close()
	if got = (<-rec.ch).(acked); got.change.Hash != "c" {
		t.Fatalf("close recorded %+v, want c", got)
	}
	if h.tagAnswered(last, 1, count) {
		t.Fatal("a row released by close took a tag answer")
	}
}
