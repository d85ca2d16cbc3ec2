package mailchimp

import (
	"context"
	"errors"
	"testing"
)

// TestAnswered: WithAnswered's function runs once the successful answer is
// read and before the caller gets it, not for answers that are retried,
// and not for a call that fails.
func TestAnswered(t *testing.T) {
	t.Parallel()
	c, s, _, _ := newScripted(t, bare(503, nil, ""), ok(`{"health_status":"Everything's Chimpy!"}`), bare(400, nil, `{"title":"Bad","status":400}`))
	n := 0
	ctx := WithAnswered(context.Background(), func() {
		if s.calls() != 2 {
			t.Errorf("answered after %d calls", s.calls())
		}
		n++
	})
	if err := c.Ping(ctx); err != nil || n != 1 {
		t.Fatalf("Ping: %v; answered ran %d times", err, n)
	}
	var apiErr *Error
	if err := c.Ping(ctx); !errors.As(err, &apiErr) || n != 1 {
		t.Fatalf("failed Ping: %v; answered ran %d times in all", err, n)
	}
}
