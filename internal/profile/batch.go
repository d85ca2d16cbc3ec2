package profile

import (
	"context"
	"sync/atomic"

	"github.com/segsync/segsync/internal/store"
)

// batch is a set of rows packed in one byte arena, so filling it allocates
// nothing once it has grown, and turning it into patches allocates one
// string.
type batch struct {
	arena   []byte
	ends    []int // per row: end of the key, end of the attributes
	patches []store.ProfilePatch
}

func (b *batch) rows() int { return len(b.ends) / 2 }

func (b *batch) add(key, attrs []byte) {
	b.arena = append(b.arena, key...)
	b.ends = append(b.ends, len(b.arena))
	b.arena = append(b.arena, attrs...)
	b.ends = append(b.ends, len(b.arena))
}

func (b *batch) toPatches() []store.ProfilePatch {
	s := string(b.arena)
	b.patches = b.patches[:0]
	start := 0
	for i := 0; i < len(b.ends); i += 2 {
		k, a := b.ends[i], b.ends[i+1]
		b.patches = append(b.patches, store.ProfilePatch{CustomerID: s[start:k], Attrs: s[k:a]})
		start = a
	}
	return b.patches
}

func (b *batch) reset() {
	b.arena, b.ends = b.arena[:0], b.ends[:0]
	clear(b.patches)
	b.patches = b.patches[:0]
}

type writeCounts struct{ inserted, updated, unchanged int64 }

// batchWriter writes full batches in its own goroutine while the caller
// fills the next one (two batches in flight at most).
type batchWriter struct {
	ctx    context.Context
	st     store.ProfileStore
	size   int
	cur    *batch
	todo   chan *batch
	free   chan *batch
	done   chan struct{}
	failed atomic.Bool
	err    error // set by run before done closes
	counts writeCounts
}

func newBatchWriter(ctx context.Context, st store.ProfileStore, size int) *batchWriter {
	w := &batchWriter{ctx: ctx, st: st, size: size,
		todo: make(chan *batch, 1), free: make(chan *batch, 2), done: make(chan struct{})}
	w.free <- &batch{}
	w.free <- &batch{}
	go w.run()
	return w
}

func (w *batchWriter) run() {
	defer close(w.done)
	for b := range w.todo {
		if w.err == nil {
			c, err := w.st.UpsertProfiles(w.ctx, b.toPatches())
			if err != nil {
				w.err = err
				w.failed.Store(true)
			}
			w.counts.inserted += int64(c.Inserted)
			w.counts.updated += int64(c.Updated)
			w.counts.unchanged += int64(c.Unchanged)
		}
		b.reset()
		w.free <- b
	}
}

// add queues a row; false means writing has failed and the caller should
// stop.
func (w *batchWriter) add(key, attrs []byte) bool {
	if w.failed.Load() {
		return false
	}
	if w.cur == nil {
		w.cur = <-w.free
	}
	w.cur.add(key, attrs)
	if w.cur.rows() >= w.size {
		w.todo <- w.cur
		w.cur = nil
	}
	return true
}

// close writes the last batch, waits for the writer and returns its totals.
func (w *batchWriter) close() (writeCounts, error) {
	if w.cur != nil && w.cur.rows() > 0 && !w.failed.Load() {
		w.todo <- w.cur
	}
	w.cur = nil
	close(w.todo)
	<-w.done
	return w.counts, w.err
}
