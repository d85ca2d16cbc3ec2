package sqldb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestHashSorter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		n, bytes int
	}{
		{"empty", 0, 1 << 20},
		{"in memory", 500, 1 << 20},
		{"one spilled run", 300, 40_000},
		{"many runs", 3000, 8_000},
		{"run per record", 50, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(tc.n), 7))
			var want []memberRec
			s := newHashSorter(tc.bytes)
			for i := range tc.n {
				r := memberRec{
					hash:       fmt.Sprintf("%032x", rng.IntN(tc.n/3+1)), // duplicates on purpose
					customerID: fmt.Sprintf("c%d", rng.IntN(1_000_000)),
					attrs:      []byte(fmt.Sprintf(`{"i":%d}`, i)),
					updated:    rng.Int64N(1<<62) - 1<<61,
					segments:   rng.Uint64(),
				}
				if i%7 == 0 {
					r.hash = ""
				}
				want = append(want, r)
				if err := s.add(memberRec{hash: r.hash, customerID: r.customerID, attrs: slices.Clone(r.attrs), updated: r.updated, segments: r.segments}); err != nil {
					t.Fatal(err)
				}
			}
			slices.SortStableFunc(want, func(a, b memberRec) int { return a.cmp(&b) })
			tmp := s.file
			var got []memberRec
			if err := s.each(context.Background(), func(r *memberRec) error {
				got = append(got, memberRec{r.hash, r.customerID, slices.Clone(r.attrs), r.updated, r.segments})
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d records, want %d", len(got), len(want))
			}
			for i := range want {
				g, w := got[i], want[i]
				// Records with equal keys may come in any order; compare keys only there.
				if g.cmp(&w) != 0 {
					t.Fatalf("record %d: %+v, want %+v", i, g, w)
				}
			}
			slices.SortFunc(got, func(a, b memberRec) int { return slices.Compare(a.attrs, b.attrs) })
			slices.SortFunc(want, func(a, b memberRec) int { return slices.Compare(a.attrs, b.attrs) })
			for i := range want {
				if g, w := got[i], want[i]; g.hash != w.hash || g.customerID != w.customerID || g.updated != w.updated || g.segments != w.segments {
					t.Fatalf("record %s: %+v, want %+v", w.attrs, g, w)
				}
			}
			if tmp != nil {
				if _, err := os.Stat(tmp.Name()); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("temporary file %s left behind: %v", filepath.Base(tmp.Name()), err)
				}
			}
		})
	}
}

func TestHashSorterStops(t *testing.T) {
	t.Parallel()
	s := newHashSorter(100)
	for i := range 100 {
		if err := s.add(memberRec{hash: fmt.Sprint(i), attrs: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := s.each(context.Background(), func(*memberRec) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("each = %v after %d records, want stop after 1", err, n)
	}
}

func TestHashSorterCancel(t *testing.T) {
	t.Parallel()
	s := newHashSorter(1 << 20)
	for i := range 10000 {
		if err := s.add(memberRec{hash: fmt.Sprint(i), attrs: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	if err := s.each(ctx, func(*memberRec) error { n++; return nil }); !errors.Is(err, context.Canceled) || n >= 10000 {
		t.Fatalf("each on a cancelled context = %v after %d records", err, n)
	}
}

// TestHashSorterWriteError: a run that could not be written in the
// background fails the sort where it is next waited for, and the sorter
// still releases its file.
func TestHashSorterWriteError(t *testing.T) {
	t.Parallel()
	s := newHashSorter(1) // every record is a run
	add := func(i int) error { return s.add(memberRec{hash: fmt.Sprint(i), attrs: []byte("{}")}) }
	if err := add(1); err != nil {
		t.Fatal(err)
	}
	if err := s.wait(); err != nil {
		t.Fatal(err)
	}
	s.file.Close() // the next run's write fails
	if err := add(2); err != nil {
		t.Fatalf("the run is written in the background, yet add failed: %v", err)
	}
	err := s.each(context.Background(), func(*memberRec) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "writing a run") {
		t.Fatalf("each after a failed write = %v", err)
	}
	if s.file != nil {
		t.Fatal("the sorter kept its file")
	}
}
