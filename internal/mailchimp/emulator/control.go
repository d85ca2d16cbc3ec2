package emulator

import (
	"net/http"

	"github.com/segsync/segsync/internal/mailchimp"
)

// The control endpoints (outside the Mailchimp API, same auth) play what a
// recipient does: click "unsubscribe" in an email, or hard-bounce.

type controlAction uint8

const (
	ctlUnsubscribe controlAction = iota
	ctlBounce
)

func (e *Emulator) control(act controlAction) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, perr := e.authenticate(r)
		if perr != nil {
			writeProblem(w, perr)
			return
		}
		l, err := e.listFor(r, a)
		if err != nil {
			writeProblem(w, err.(*apiError))
			return
		}
		h, err := memberKey(r)
		if err != nil {
			writeProblem(w, err.(*apiError))
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		i, ok := l.lookup(h)
		if !ok {
			writeProblem(w, errNotFound())
			return
		}
		e.recipientAction(l, &l.members[i], act)
		writeResult(w, r, rawJSON(l.appendMember(nil, &l.members[i], h)))
	}
}

// recipientAction applies an unsubscribe click or a hard bounce. The caller
// holds l.mu.
func (e *Emulator) recipientAction(l *list, m *member, act controlAction) {
	now := e.now().Unix()
	target := stUnsubscribed
	if act == ctlBounce {
		target = stCleaned
	}
	if m.status == stArchived {
		m.prev = target
	} else {
		l.setStatus(m, target, now)
	}
	m.flags |= flagCompliance
	m.lastChanged = now
	l.touch()
	if act == ctlBounce {
		e.emit(l, "cleaned", sourceUser, mailchimp.WebhookEvent{Email: m.email, Reason: "hard"})
		return
	}
	ev := l.memberEvent(m)
	ev.Action, ev.Reason = "unsub", "manual"
	e.emit(l, "unsubscribe", sourceUser, ev)
}
