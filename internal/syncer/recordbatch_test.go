package syncer

import (
	"testing"
	"time"
)

// TestNextRecordBatch: a recorder transaction slower than recordTxTarget
// shrinks the batch in proportion (never below recordBatchMin), a fast
// full one doubles it back up to recordBatch, and a fast part-filled one
// (a quiet moment) leaves it.
func TestNextRecordBatch(t *testing.T) {
	for _, tc := range []struct {
		cur, n int
		took   time.Duration
		want   int
	}{
		{recordBatch, recordBatch, 10 * time.Second, recordBatch / 10},
		{recordBatch, recordBatch, 100 * time.Second, recordBatchMin},
		{2000, 2000, 2 * time.Second, 1000},
		{2000, 300, 2 * time.Second, recordBatchMin},
		{1000, 1000, 100 * time.Millisecond, 2000},
		{15000, 15000, 100 * time.Millisecond, recordBatch},
		{1000, 10, 100 * time.Millisecond, 1000},
		{1000, 1000, 500 * time.Millisecond, 1000},
	} {
		if got := nextRecordBatch(tc.cur, tc.n, tc.took); got != tc.want {
			t.Errorf("nextRecordBatch(%d, %d, %s) = %d, want %d", tc.cur, tc.n, tc.took, got, tc.want)
		}
	}
}
