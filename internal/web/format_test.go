package web

import (
	"testing"

	"github.com/segsync/segsync/internal/store"
)

func TestFormatMS(t *testing.T) {
	for ms, want := range map[int64]string{0: "0 ms", 850: "850 ms", 4249: "4.2 s", 185_000: "3 min 5 s", 7_800_000: "2 h 10 min"} {
		if got := formatMS(ms); got != want {
			t.Errorf("formatMS(%d) = %q, want %q", ms, got, want)
		}
	}
}

func TestRunTimings(t *testing.T) {
	if rows := runTimings(store.RunTimings{}); rows != nil {
		t.Errorf("a run without timings lists %v", rows)
	}
	rows := runTimings(store.RunTimings{PlanMS: 1200, SendMS: 61_000, IdleMS: 30})
	got := map[string]string{}
	for _, r := range rows {
		got[r.Key] = r.Took
	}
	want := map[string]string{"plan_ms": "1.2 s", "status_refresh_ms": "0 ms", "send_ms": "1 min 1 s", "record_ms": "0 ms", "idle_ms": "30 ms"}
	if len(got) != len(want) {
		t.Fatalf("rows %v", rows)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}
