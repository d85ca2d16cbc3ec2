package syncer

import (
	"context"
	"testing"
	"time"
)

// TestFeederGate: wait returns at once while no job waits for a slot,
// blocks while one does, returns once the last leaves, and gives up when
// its context ends.
func TestFeederGate(t *testing.T) {
	var g feederGate
	ctx := context.Background()
	if !g.wait(ctx) {
		t.Fatal("wait with nobody waiting")
	}
	g.enter()
	g.enter()
	done := make(chan bool)
	go func() { done <- g.wait(ctx) }()
	g.leave()
	select {
	case <-done:
		t.Fatal("wait returned while a job still waits for a slot")
	case <-time.After(20 * time.Millisecond):
	}
	g.leave()
	if !<-done {
		t.Fatal("wait gave up")
	}
	g.enter()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if g.wait(cctx) {
		t.Fatal("wait returned true for an ended context")
	}
	g.leave()
	if !g.wait(ctx) {
		t.Fatal("wait after the last left")
	}
}
