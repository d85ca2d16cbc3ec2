package emulator

import (
	"fmt"
	"net/http"
	"strconv"
)

// maxBatch is Mailchimp's limit of members per batch-subscribe call and of
// additions or removals per static-segment batch.
const maxBatch = 500

// batchSubscribe is POST /lists/{list_id}: "Batch subscribe or unsubscribe".
func (e *Emulator) batchSubscribe(r *http.Request, a *account) (any, error) {
	l, err := e.listFor(r, a)
	if err != nil {
		return nil, err
	}
	var body struct {
		Members        []memberBody `json:"members"`
		UpdateExisting bool         `json:"update_existing"`
		SyncTags       bool         `json:"sync_tags"`
	}
	if err := decodeBody(r, &body); err != nil {
		return nil, err
	}
	if body.Members == nil {
		return nil, errField("members", "This value should not be blank.")
	}
	if len(body.Members) > maxBatch {
		return nil, errField("members", fmt.Sprintf("You may only include up to %d members in a batch operation.", maxBatch))
	}
	// The whole request is refused when an entry breaks the schema: the
	// status must be present and valid (undocumented when omitted; refused).
	statuses := make([]status, len(body.Members))
	for k := range body.Members {
		b := &body.Members[k]
		prefix := fmt.Sprintf("members.%d.", k)
		if b.EmailAddress == nil || *b.EmailAddress == "" {
			return nil, errField(prefix+"email_address", "This value should not be blank.")
		}
		if b.Status == nil {
			return nil, errField(prefix+"status", "This value should not be blank.")
		}
		st, _, perr := statusField(b.Status, prefix+"status")
		if perr != nil {
			return nil, perr
		}
		statuses[k] = st
		if perr := validateBody(b, prefix); perr != nil {
			return nil, perr
		}
		for _, t := range b.Tags {
			if perr := checkTagName(t, prefix+"tags"); perr != nil {
				return nil, perr
			}
		}
	}
	if err := e.memberDelay(r.Context(), len(body.Members)); err != nil {
		return nil, err
	}
	skipMerge := boolParam(r, "skip_merge_validation")
	skipDup := boolParam(r, "skip_duplicate_check")
	ex := existingRestore
	if body.UpdateExisting {
		ex = existingUpdate
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	var created, updated []int32
	var errs []byte
	nerr := 0
	seen := make(map[[16]byte]struct{}, len(body.Members))
	for k := range body.Members {
		b := &body.Members[k]
		h := subscriberHash(*b.EmailAddress)
		if _, dup := seen[h]; dup {
			if skipDup {
				continue
			}
			errs = appendBatchError(errs, *b.EmailAddress, *b.EmailAddress+" appears more than once in this batch request.", "ERROR_GENERIC", "", "")
			nerr++
			continue
		}
		seen[h] = struct{}{}
		c := change{email: *b.EmailAddress, newStatus: statuses[k], hasNew: true, body: b, skipMerge: skipMerge, syncTags: body.SyncTags}
		if body.UpdateExisting {
			c.setStatus, c.hasSet = statuses[k], true
		}
		i, isNew, perr := e.upsert(l, h, c, ex)
		if perr != nil {
			code := "ERROR_GENERIC"
			msg := perr.detail
			if perr.title == "Member Exists" {
				code = "ERROR_CONTACT_EXISTS"
				msg = *b.EmailAddress + " is already a list member, do you want to update? please provide update_existing:true in the request body"
			}
			var field, fmsg string
			if len(perr.errors) > 0 {
				field, fmsg = perr.errors[0].Field, perr.errors[0].Message
			}
			errs = appendBatchError(errs, *b.EmailAddress, msg, code, field, fmsg)
			nerr++
			continue
		}
		if isNew {
			created = append(created, i)
		} else {
			updated = append(updated, i)
		}
	}

	out := make([]byte, 0, 256+(len(created)+len(updated))*900+len(errs))
	out = append(out, `{"new_members":[`...)
	emit := func(idx []int32) {
		for j, i := range idx {
			if j > 0 {
				out = append(out, ',')
			}
			m := &l.members[i]
			out = l.appendMember(out, m, subscriberHash(m.email))
		}
	}
	emit(created)
	out = append(out, `],"updated_members":[`...)
	emit(updated)
	out = append(out, `],"errors":[`...)
	out = append(out, errs...)
	out = append(out, `],"total_created":`...)
	out = strconv.AppendInt(out, int64(len(created)), 10)
	out = append(out, `,"total_updated":`...)
	out = strconv.AppendInt(out, int64(len(updated)), 10)
	out = append(out, `,"error_count":`...)
	out = strconv.AppendInt(out, int64(nerr), 10)
	out = append(out, `,"_links":[]}`...)
	return rawJSON(out), nil
}

func appendBatchError(b []byte, email, msg, code, field, fieldMsg string) []byte {
	if len(b) > 0 {
		b = append(b, ',')
	}
	b = append(b, `{"email_address":`...)
	b = appendString(b, email)
	b = append(b, `,"error":`...)
	b = appendString(b, msg)
	b = append(b, `,"error_code":"`...)
	b = append(b, code...)
	b = append(b, `","field":`...)
	b = appendString(b, field)
	b = append(b, `,"field_message":`...)
	b = appendString(b, fieldMsg)
	return append(b, '}')
}
