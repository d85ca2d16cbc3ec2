package syncer

import (
	"bytes"
	"testing"
)

// TestTagDue plays sequences of one tag's additions ('a') and removals
// ('d') through tagDue as queueTags does, and counts the calls: a call
// carries up to n of each, and at the end what is left goes out in as few
// calls as it fits. Removals spread over a run, with the additions of
// created contacts arriving late and in bursts of a batch, take the fewest
// calls the batch limit allows; a first run (additions only) sends each
// batch as soon as it is full; a side never waits beyond tagWait batches.
func TestTagDue(t *testing.T) {
	const n = 500
	// burstyChange is the 1M benchmark's run after 1% changed: 3,713
	// removals and 646 additions spread evenly, and the 641 additions of
	// the created contacts in two bursts at the end (batches of creates
	// answered).
	burstyChange := func() []byte {
		var seq []byte
		adds := 0
		for i := range 3713 {
			seq = append(seq, 'd')
			if i*646/3713 >= adds {
				seq = append(seq, 'a')
				adds++
			}
			if i == 3000 {
				seq = append(seq, repeat('a', 500)...)
			}
		}
		return append(seq, repeat('a', 141)...)
	}
	for _, tc := range []struct {
		name    string
		seq     []byte
		calls   int
		maxWait int // the most queued on a side
	}{
		{"removals with bursts of additions", burstyChange(), 8, tagWait * n},
		{"first run", repeat('a', 100_000), 200, n},
		{"removals only", repeat('d', 2_600), 6, n},
		{"one early removal, then additions", append([]byte{'d'}, repeat('a', 5_000)...), 10, tagWait * n},
		{"additions first, removals after", append(repeat('a', 1_200), repeat('d', 1_200)...), 5, tagWait * n},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var add, del, calls, most int
			var seen [2]int
			send := func() {
				add, del = max(add-n, 0), max(del-n, 0)
				calls++
			}
			for _, e := range tc.seq {
				if e == 'a' {
					add, seen[0] = add+1, seen[0]+1
				} else {
					del, seen[1] = del+1, seen[1]+1
				}
				most = max(most, add, del)
				if tagDue(n, add, del, seen) {
					send()
				}
			}
			for add+del > 0 {
				send()
			}
			if calls != tc.calls || most > tc.maxWait {
				t.Errorf("%d calls, at most %d queued on a side; want %d calls, at most %d", calls, most, tc.calls, tc.maxWait)
			}
		})
	}
}

func repeat(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }
