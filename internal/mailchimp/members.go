package mailchimp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MemberQuery narrows a member listing. Zero fields are not sent.
type MemberQuery struct {
	Status            string    // subscribed, unsubscribed, cleaned, pending, transactional, archived
	SinceLastChanged  time.Time // only members changed after this time
	BeforeLastChanged time.Time
	Fields            []string // e.g. "members.email_address", "members.status"
	ExcludeFields     []string
	SortField         string // timestamp_opt, timestamp_signup or last_changed
	SortDir           string // ASC or DESC
	Count             int    // page size, at most 1000 (the default)
	Offset            int    // where to start
}

func (q MemberQuery) values() url.Values {
	v := url.Values{}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if !q.SinceLastChanged.IsZero() {
		v.Set("since_last_changed", mailchimpTime(q.SinceLastChanged))
	}
	if !q.BeforeLastChanged.IsZero() {
		v.Set("before_last_changed", mailchimpTime(q.BeforeLastChanged))
	}
	if len(q.Fields) > 0 {
		v.Set("fields", strings.Join(q.Fields, ","))
	}
	if len(q.ExcludeFields) > 0 {
		v.Set("exclude_fields", strings.Join(q.ExcludeFields, ","))
	} else if len(q.Fields) == 0 {
		v.Set("exclude_fields", "members._links,_links")
	}
	if q.SortField != "" {
		v.Set("sort_field", q.SortField)
	}
	if q.SortDir != "" {
		v.Set("sort_dir", q.SortDir)
	}
	return v
}

// ListMembers streams an audience's members page by page (up to 1000 per
// call) to fn, which may stop the walk by returning an error (returned
// as is). Memory stays bounded by one page.
func (c *Client) ListMembers(ctx context.Context, listID string, q MemberQuery, fn func([]Member) error) error {
	return eachPage(ctx, c, "GET /lists/{list_id}/members", listPath(listID)+"/members", q.values(), "members", q.Offset, q.Count, fn)
}

// MembersPage fetches one page of a member listing.
func (c *Client) MembersPage(ctx context.Context, listID string, q MemberQuery) (*MemberPage, error) {
	v := q.values()
	if f := v.Get("fields"); f != "" {
		v.Set("fields", f+",total_items")
	}
	count := q.Count
	if count <= 0 || count > MaxPageSize {
		count = MaxPageSize
	}
	v.Set("count", fmt.Sprint(count))
	v.Set("offset", fmt.Sprint(q.Offset))
	var out MemberPage
	if err := c.do(ctx, request{op: "GET /lists/{list_id}/members", method: http.MethodGet,
		path: listPath(listID) + "/members", query: v, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetMember returns the member with this address (any status, archived
// included); IsNotFound tells when there is none.
func (c *Client) GetMember(ctx context.Context, listID, email string) (*Member, error) {
	var out Member
	q := url.Values{"exclude_fields": {"_links"}}
	if err := c.do(ctx, request{op: "GET /lists/{list_id}/members/{hash}", method: http.MethodGet,
		path: memberPath(listID, email), query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutMember adds or updates a member (upsert). in.StatusIfNew is required
// and used only when the address is new; leave in.Status empty to never
// change an existing member's status. An archived member is restored.
func (c *Client) PutMember(ctx context.Context, listID string, in MemberInput) (*Member, error) {
	if in.EmailAddress == "" || in.StatusIfNew == "" {
		return nil, errors.New("mailchimp: PUT member needs an email address and status_if_new")
	}
	in.Tags = nil // not part of the PUT body; use UpdateMemberTags
	var out Member
	if err := c.do(ctx, request{op: "PUT /lists/{list_id}/members/{hash}", method: http.MethodPut,
		path: memberPath(listID, in.EmailAddress), body: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// PatchMember changes what in sets on an existing member. Setting only
// MergeFields never changes the member's status.
func (c *Client) PatchMember(ctx context.Context, listID, email string, in MemberInput) (*Member, error) {
	in.StatusIfNew, in.Tags = "", nil
	var out Member
	if err := c.do(ctx, request{op: "PATCH /lists/{list_id}/members/{hash}", method: http.MethodPatch,
		path: memberPath(listID, email), body: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddMember creates a member (POST); in.Status is required and in.Tags are
// applied. An address already in the audience gives IsMemberExists.
func (c *Client) AddMember(ctx context.Context, listID string, in MemberInput) (*Member, error) {
	if in.EmailAddress == "" || in.Status == "" {
		return nil, errors.New("mailchimp: POST member needs an email address and a status")
	}
	in.StatusIfNew = ""
	var out Member
	if err := c.do(ctx, request{op: "POST /lists/{list_id}/members", method: http.MethodPost,
		path: listPath(listID) + "/members", body: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// UnsubscribeMember sets an existing member's status to unsubscribed. It
// cannot be undone through the API for a subscriber's own consent.
func (c *Client) UnsubscribeMember(ctx context.Context, listID, email string) (*Member, error) {
	return c.PatchMember(ctx, listID, email, MemberInput{Status: StatusUnsubscribed})
}

// ArchiveMember archives a member (DELETE; reversible by a PUT). A DELETE
// repeated after an attempt whose answer was lost hears 405 ("can not
// archive a contact that is … archived") when that attempt archived the
// member: that counts as done.
func (c *Client) ArchiveMember(ctx context.Context, listID, email string) error {
	var replayed bool
	err := c.do(ctx, request{op: "DELETE /lists/{list_id}/members/{hash}", method: http.MethodDelete,
		path: memberPath(listID, email), replayed: &replayed})
	if err != nil && replayed && statusIs(err, http.StatusMethodNotAllowed) {
		return nil
	}
	return err
}

// DeletePermanent erases a member and its data; the address can never be
// imported again. A retry after a lost answer that finds the member gone
// (404) means the first attempt did the work.
func (c *Client) DeletePermanent(ctx context.Context, listID, email string) error {
	var replayed bool
	err := c.do(ctx, request{op: "POST /lists/{list_id}/members/{hash}/actions/delete-permanent",
		method: http.MethodPost, path: memberPath(listID, email) + "/actions/delete-permanent", replayed: &replayed})
	if err != nil && replayed && statusIs(err, http.StatusNotFound) {
		return nil
	}
	return err
}

// UpdateMemberTags adds (Active) and removes tags of one member; tags that
// do not exist yet are created.
func (c *Client) UpdateMemberTags(ctx context.Context, listID, email string, tags []TagUpdate) error {
	if len(tags) == 0 {
		return nil
	}
	type tag struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	body := struct {
		Tags []tag `json:"tags"`
	}{make([]tag, len(tags))}
	for i, t := range tags {
		body.Tags[i] = tag{Name: t.Name, Status: "inactive"}
		if t.Active {
			body.Tags[i].Status = "active"
		}
	}
	return c.do(ctx, request{op: "POST /lists/{list_id}/members/{hash}/tags", method: http.MethodPost,
		path: memberPath(listID, email) + "/tags", body: body})
}

// MemberTags returns the tags of one member.
func (c *Client) MemberTags(ctx context.Context, listID, email string) ([]Tag, error) {
	var all []Tag
	err := eachPage(ctx, c, "GET /lists/{list_id}/members/{hash}/tags", memberPath(listID, email)+"/tags",
		url.Values{"exclude_fields": {"_links"}}, "tags", 0, MaxPageSize,
		func(p []Tag) error { all = append(all, p...); return nil })
	return all, err
}
