package sqldb

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/store"
)

// memberSortRunBytes is how much member data the hash sorter collects in
// memory before it writes a sorted run to its temporary file. One batch is
// written while the next fills, so twice this is in memory at most.
const memberSortRunBytes = 16 << 20

// mergeBufferBytes is what the read buffers of a merge of sorted runs
// take together, at most (at 8 KiB each, up to 1,024 runs).
const mergeBufferBytes = 8 << 20

// memberRec is one member between the database and the callback.
type memberRec struct {
	hash, customerID string
	attrs            []byte
	updated          int64
	segments         uint64
}

func (a *memberRec) cmp(b *memberRec) int {
	if c := strings.Compare(a.hash, b.hash); c != 0 {
		return c
	}
	return strings.Compare(a.customerID, b.customerID)
}

// hashSorter is an external merge sort of members by (hash, customer_id)
// with bounded memory: records collect in memory up to runBytes, then are
// sorted and appended as one run to an unlinked-on-close temporary file
// (in the background, while the next batch collects);
// the runs and the last in-memory batch are merged at the end. SQLite's
// own sorter is slower on wide rows and its temp store is in memory; this
// keeps the process flat however many profiles match.
type hashSorter struct {
	runBytes int
	batch    []memberRec
	order    []int32 // batch indexes in sorted order (cheaper to move than records)
	size     int
	file     *os.File
	w        *bufio.Writer
	runs     [][2]int64 // [start, end) offsets in file
	written  int64
	// writing reports the end of the run being written (nil: none). A full
	// batch is sorted and written by a goroutine of its own while the next
	// one fills, so the readers of members never wait for it; the records
	// and order of a written batch come back (spareBatch, spareOrder) to be
	// filled again.
	writing    chan written
	spareBatch []memberRec
	spareOrder []int32
}

// written is a run's write: its error, and the batch's buffers to reuse.
type written struct {
	err   error
	batch []memberRec
	order []int32
}

func newHashSorter(runBytes int) *hashSorter { return &hashSorter{runBytes: runBytes} }

// add takes ownership of r's attrs.
func (s *hashSorter) add(r memberRec) error {
	s.batch = append(s.batch, r)
	s.size += len(r.hash) + len(r.customerID) + len(r.attrs) + 96
	if s.size >= s.runBytes {
		return s.spill()
	}
	return nil
}

// sortRecs returns the indexes of batch in sorted order, in order's array.
func sortRecs(batch []memberRec, order []int32) []int32 {
	order = order[:0]
	for i := range batch {
		order = append(order, int32(i))
	}
	slices.SortFunc(order, func(a, b int32) int { return batch[a].cmp(&batch[b]) })
	return order
}

// spill hands the batch to a goroutine that writes it as a run, once the
// run before it is written, and starts the next batch.
func (s *hashSorter) spill() error {
	if err := s.wait(); err != nil {
		return err
	}
	if s.file == nil {
		f, err := os.CreateTemp("", "segsync-members-*")
		if err != nil {
			return fmt.Errorf("sorting members: %w", err)
		}
		s.file = f
		s.w = bufio.NewWriterSize(countingWriter{f, &s.written}, 256<<10)
	}
	batch, order := s.batch, s.order
	s.batch, s.order, s.size = s.spareBatch, s.spareOrder, 0
	s.spareBatch, s.spareOrder = nil, nil
	done := make(chan written, 1)
	s.writing = done
	go func() { done <- s.writeRun(batch, order) }()
	return nil
}

// wait waits for the run being written, if any.
func (s *hashSorter) wait() error {
	if s.writing == nil {
		return nil
	}
	w := <-s.writing
	s.writing = nil
	clear(w.batch)
	s.spareBatch, s.spareOrder = w.batch[:0], w.order[:0]
	return w.err
}

// writeRun sorts batch and appends it to the file as one run.
func (s *hashSorter) writeRun(batch []memberRec, order []int32) written {
	order = sortRecs(batch, order)
	done := written{batch: batch, order: order}
	start := s.written + int64(s.w.Buffered())
	var buf [binary.MaxVarintLen64]byte
	uvarint := func(v uint64) { s.w.Write(buf[:binary.PutUvarint(buf[:], v)]) }
	for _, i := range order {
		r := &batch[i]
		uvarint(uint64(len(r.hash)))
		s.w.WriteString(r.hash)
		uvarint(uint64(len(r.customerID)))
		s.w.WriteString(r.customerID)
		uvarint(uint64(len(r.attrs)))
		s.w.Write(r.attrs)
		s.w.Write(buf[:binary.PutVarint(buf[:], r.updated)])
		uvarint(r.segments)
	}
	if err := s.w.Flush(); err != nil {
		done.err = fmt.Errorf("sorting members: writing a run: %w", err)
		return done
	}
	s.runs = append(s.runs, [2]int64{start, s.written})
	return done
}

// each calls fn for every record in order, then releases the sorter. It
// stops early when ctx is done.
func (s *hashSorter) each(ctx context.Context, fn func(*memberRec) error) error {
	defer s.close()
	if err := s.wait(); err != nil {
		return err
	}
	n := 0
	inner := fn
	fn = func(r *memberRec) error {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return fmt.Errorf("streaming members: %w", ctx.Err())
		}
		return inner(r)
	}
	s.order = sortRecs(s.batch, s.order)
	if len(s.runs) == 0 {
		for _, i := range s.order {
			if err := fn(&s.batch[i]); err != nil {
				return err
			}
		}
		return nil
	}
	h := &mergeHeap{}
	if len(s.batch) > 0 {
		h.items = append(h.items, &memRun{recs: s.batch, order: s.order})
	}
	// The runs' read buffers share mergeBufferBytes, 8–64 KiB each, so
	// that memory does not grow with the number of runs.
	size := min(64<<10, max(8<<10, mergeBufferBytes/len(s.runs)))
	for _, r := range s.runs {
		h.items = append(h.items, &fileRun{r: bufio.NewReaderSize(io.NewSectionReader(s.file, r[0], r[1]-r[0]), size)})
	}
	live := h.items[:0]
	for _, it := range h.items {
		ok, err := it.next()
		if err != nil {
			return err
		}
		if ok {
			live = append(live, it)
		}
	}
	h.items = live
	heap.Init(h)
	for h.Len() > 0 {
		top := h.items[0]
		if err := fn(top.cur()); err != nil {
			return err
		}
		ok, err := top.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return nil
}

// members is each, as the store's members.
func (s *hashSorter) members(ctx context.Context, fn func(store.HashedMember) error) error {
	return s.each(ctx, func(r *memberRec) error {
		return fn(store.HashedMember{Hash: r.hash, CustomerID: r.customerID, Attrs: r.attrs,
			UpdatedAt: time.UnixMicro(r.updated).UTC(), Segments: r.segments})
	})
}

func (s *hashSorter) close() {
	_ = s.wait() // the error is the caller's already, or moot
	if s.file != nil {
		name := s.file.Name()
		s.file.Close()
		os.Remove(name)
		s.file = nil
	}
	s.batch, s.order, s.spareBatch, s.spareOrder = nil, nil, nil, nil
}

type countingWriter struct {
	w io.Writer
	n *int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

type run interface {
	next() (bool, error)
	cur() *memberRec
}

type memRun struct {
	recs  []memberRec
	order []int32
	i     int // 1 + position in order of the current record
}

func (m *memRun) next() (bool, error) { m.i++; return m.i <= len(m.order), nil }
func (m *memRun) cur() *memberRec     { return &m.recs[m.order[m.i-1]] }

type fileRun struct {
	r   *bufio.Reader
	rec memberRec
	buf []byte // reused for attrs: a record is only valid until the next
}

func (f *fileRun) next() (bool, error) {
	hash, err := readBytes(f.r, nil)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	cid, err2 := readBytes(f.r, nil)
	attrs, err3 := readBytes(f.r, f.buf[:0])
	upd, err4 := binary.ReadVarint(f.r)
	segs, err5 := binary.ReadUvarint(f.r)
	if err := errors.Join(err, err2, err3, err4, err5); err != nil {
		return false, fmt.Errorf("sorting members: reading a run: %w", err)
	}
	f.buf = attrs
	f.rec = memberRec{hash: string(hash), customerID: string(cid), attrs: attrs, updated: upd, segments: segs}
	return true, nil
}

func (f *fileRun) cur() *memberRec { return &f.rec }

// readBytes reads a length-prefixed field into buf (grown as needed).
func readBytes(r *bufio.Reader, buf []byte) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	buf = slices.Grow(buf[:0], int(n))[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	return buf, nil
}

type mergeHeap struct{ items []run }

func (h *mergeHeap) Len() int           { return len(h.items) }
func (h *mergeHeap) Less(i, j int) bool { return h.items[i].cur().cmp(h.items[j].cur()) < 0 }
func (h *mergeHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *mergeHeap) Push(x any)         { h.items = append(h.items, x.(run)) }
func (h *mergeHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
