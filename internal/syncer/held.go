package syncer

import (
	"sync"
	"time"

	"github.com/segsync/segsync/internal/store"
)

// heldRow is the acknowledged row of a contact just created, held back from
// the recorder until the tag additions that follow its create are answered
// too, so that the contact is recorded in one write (row and tags) instead
// of one for the create and one per tag. A row is never held longer than
// the holder's limit: a tag whose batch fills slowly is then recorded on
// its own, as before. A crash while a row is held loses its acknowledgement
// as a crash before any recording would: the create's intent stays, and the
// next run recognises the contact as its own (adopt).
type heldRow struct {
	mu     sync.Mutex
	change store.SyncedChange // Set: the row; AddTags: the tags answered meanwhile
	batch  int64              // the create's batch of intents
	counts []countDelta
	open   int  // tag additions not answered yet
	held   bool // not handed to the recorder yet
	since  time.Time
}

// holder hands held rows to the recorder once their tags are answered, or
// once they were held for limit.
type holder struct {
	rec   *recorder
	limit time.Duration
	mu    sync.Mutex
	rows  []*heldRow // in the order held, so the oldest come first
	stop  chan struct{}
	done  chan struct{}
}

func newHolder(rec *recorder, limit time.Duration) *holder {
	h := &holder{rec: rec, limit: limit, stop: make(chan struct{}), done: make(chan struct{})}
	go h.loop()
	return h
}

// hold holds the change of a created contact (whose intent is in batch)
// until open tag additions are answered.
func (h *holder) hold(c store.SyncedChange, batch int64, open int, counts ...countDelta) *heldRow {
	p := &heldRow{change: c, batch: batch, counts: counts, open: open, held: true, since: time.Now()}
	h.mu.Lock()
	h.rows = append(h.rows, p)
	h.mu.Unlock()
	return p
}

// tagAnswered notes the answer to one of the row's tag additions: bit was
// added (0: refused or failed) with count. It reports whether the row took
// the addition; if not (the row was released), the caller records it.
func (h *holder) tagAnswered(p *heldRow, bit uint64, count countDelta) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.held {
		return false
	}
	if bit != 0 {
		p.change.AddTags |= bit
		p.counts = append(p.counts, count)
	}
	if p.open--; p.open <= 0 {
		h.releaseLocked(p)
	}
	return true
}

func (h *holder) releaseLocked(p *heldRow) {
	p.held = false
	h.rec.outcome(p.change, p.batch, p.counts...)
}

// loop releases the rows held for longer than the limit.
func (h *holder) loop() {
	defer close(h.done)
	tick := time.NewTicker(h.limit / 4)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			h.release(time.Time{})
			return
		case now := <-tick.C:
			h.release(now.Add(-h.limit))
		}
	}
}

// release hands every row held since before cutoff (zero: all) to the
// recorder and forgets the rows released.
func (h *holder) release(cutoff time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	keep := h.rows[:0]
	for _, p := range h.rows {
		p.mu.Lock()
		if p.held && (cutoff.IsZero() || p.since.Before(cutoff)) {
			h.releaseLocked(p)
		}
		if p.held {
			keep = append(keep, p)
		}
		p.mu.Unlock()
	}
	clear(h.rows[len(keep):])
	h.rows = keep
}

// close releases every row still held; the recorder must still be open.
func (h *holder) close() {
	close(h.stop)
	<-h.done
}
