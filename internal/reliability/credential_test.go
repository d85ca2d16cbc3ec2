package reliability

import (
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// TestCredentialRevokedMidRun revokes the key after the first batches went
// through: the run stops with a clear message, the connection shows the
// refusal, nothing protected changed, and once the key works again the next
// run converges.
func TestCredentialRevokedMidRun(t *testing.T) {
	t.Parallel()
	w := newWorld(t, dbtest.SQLite(t), worldOpts{people: 900, batch: 50, concurrency: 2})
	w.gate.setInject(func(rq *request) action {
		if rq.kind == "batch" && rq.n == 3 {
			w.gate.revoke(true) // from this request on, the key is refused
		}
		return action{}
	})
	r := w.run(60 * time.Second)
	if r.Status != store.RunFailed {
		t.Fatalf("run with a revoked key ended %s (%q), want failed", r.Status, r.Error)
	}
	if !strings.Contains(r.Error, "refused the connection's credential") || !strings.Contains(r.Error, "API Key Invalid") {
		t.Errorf("run error %q does not say that Mailchimp refused the credential", r.Error)
	}
	fields, _ := w.gate.sentCounts()
	t.Logf("stopped after %d contacts were sent: %q", len(fields), r.Error)
	if inj := w.gate.injected()["revoked"]; inj > 10 {
		t.Errorf("the run kept calling Mailchimp after the refusal: %d refused calls", inj)
	}
	v, err := w.conns.Get(w.ctx, w.admin, *w.exp.ConnectionID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.LastTestError, "API Key Invalid") || v.LastTestedAt == nil {
		t.Errorf("the connection does not show the refusal: last_test_error %q", v.LastTestError)
	}
	// Nothing someone else set was touched by the partial run.
	for email, st := range w.frozen {
		c, err := w.emu.Contact(w.list, email)
		if err != nil || c.Status != st {
			t.Errorf("%s: %v %+v, want status %s", email, err, c, st)
		}
	}

	// The key works again (say the admin re-authorised it): a test clears
	// the connection's error and the next run converges.
	w.gate.revoke(false)
	w.gate.setInject(nil)
	if res, err := w.conns.Test(w.ctx, w.admin, *w.exp.ConnectionID); err != nil || !res.OK {
		t.Fatalf("connection test after the key works again: %+v %v", res, err)
	}
	w.wantRunOK(w.run(60*time.Second), "run after the key works again")
	w.verify("after the key works again")
	w.settled()
	w.assertNoSecrets()
}
