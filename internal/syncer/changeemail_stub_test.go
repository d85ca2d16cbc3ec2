package syncer_test

// TEMPORARY until branch consent-emu (the emulator's address change and
// mailchimp.Client.ChangeEmail) is merged: a stand-in that changes an
// address in the emulator through its inspection API, as Mailchimp would
// (status, tags and fields move to the new address; the old one is gone).

import (
	"context"
	"net/http"

	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
)

type stubChanger struct {
	*mailchimp.Client
	srv  *emulator.Server
	list string
}

func (s stubChanger) ChangeEmail(ctx context.Context, listID, oldEmail, newEmail string) (mailchimp.Member, error) {
	old, err := s.srv.Contact(listID, oldEmail)
	if err != nil {
		return mailchimp.Member{}, &mailchimp.Error{Status: http.StatusNotFound, Title: "Resource Not Found"}
	}
	if _, err := s.srv.Contact(listID, newEmail); err == nil {
		return mailchimp.Member{}, &mailchimp.Error{Status: http.StatusBadRequest, Title: "Member Exists"}
	}
	st := old.Status
	if st == "unsubscribed" && old.Compliance {
		st = "unsubscribed-self"
	}
	seed := emulator.SeedContact{Email: newEmail, Status: st, Tags: old.Tags, MergeFields: old.MergeFields}
	if st == "archived" {
		seed.ArchivedFrom = old.PrevStatus
	}
	if err := s.srv.Seed(listID, seed, emulator.SeedContact{Email: oldEmail, Status: "deleted"}); err != nil {
		return mailchimp.Member{}, err
	}
	return mailchimp.Member{ID: mailchimp.SubscriberHash(newEmail), EmailAddress: newEmail, Status: old.Status}, nil
}
