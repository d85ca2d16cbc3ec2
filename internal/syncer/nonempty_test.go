package syncer

import (
	"maps"
	"testing"
)

func TestNonEmpty(t *testing.T) {
	full := map[string]any{"FNAME": "Anna", "SCORE": 3.0}
	if got := nonEmpty(full); len(got) != 2 || !maps.Equal(got, full) {
		t.Errorf("nonEmpty(%v) = %v", full, got)
	}
	some := map[string]any{"FNAME": "Anna", "LNAME": "", "SCORE": 0.0}
	got := nonEmpty(some)
	if want := (map[string]any{"FNAME": "Anna", "SCORE": 0.0}); !maps.Equal(got, want) {
		t.Errorf("nonEmpty(%v) = %v, want %v", some, got, want)
	}
	if len(some) != 3 {
		t.Errorf("nonEmpty changed its argument: %v", some)
	}
	if got := nonEmpty(map[string]any{"LNAME": ""}); len(got) != 0 {
		t.Errorf("nonEmpty of only empty values = %v", got)
	}
}
