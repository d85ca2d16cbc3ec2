package mailchimp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/emailaddr"
)

// MaxPageSize is the largest count Mailchimp accepts on a collection.
const MaxPageSize = 1000

// MaxBatchSize is the most members a batch subscribe, and the most
// additions or removals a static-segment update, may carry.
const MaxBatchSize = 500

const pingHealth = "Everything's Chimpy!"

// Ping checks that the API answers and accepts the credential.
func (c *Client) Ping(ctx context.Context) error {
	var out struct {
		HealthStatus string `json:"health_status"`
	}
	if err := c.do(ctx, request{op: "GET /ping", method: http.MethodGet, path: "/ping", out: &out}); err != nil {
		return err
	}
	if out.HealthStatus != pingHealth {
		return fmt.Errorf("mailchimp GET /ping: unexpected health status %q", out.HealthStatus)
	}
	return nil
}

// Root returns the account behind the credential.
func (c *Client) Root(ctx context.Context) (*Root, error) {
	var out Root
	q := url.Values{"exclude_fields": {"_links"}}
	if err := c.do(ctx, request{op: "GET /", method: http.MethodGet, path: "/", query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Lists returns every audience of the account.
func (c *Client) Lists(ctx context.Context) ([]List, error) {
	var all []List
	err := eachPage(ctx, c, "GET /lists", "/lists", url.Values{"exclude_fields": {"lists._links,_links"}}, "lists", 0, MaxPageSize,
		func(p []List) error { all = append(all, p...); return nil })
	return all, err
}

// GetList returns one audience.
func (c *Client) GetList(ctx context.Context, listID string) (*List, error) {
	var out List
	q := url.Values{"exclude_fields": {"_links"}}
	if err := c.do(ctx, request{op: "GET /lists/{list_id}", method: http.MethodGet, path: listPath(listID), query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateList creates an audience.
func (c *Client) CreateList(ctx context.Context, in ListInput) (*List, error) {
	var out List
	if err := c.do(ctx, request{op: "POST /lists", method: http.MethodPost, path: "/lists", body: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// MergeFields returns every merge field of an audience (EMAIL is not one).
func (c *Client) MergeFields(ctx context.Context, listID string) ([]MergeField, error) {
	var all []MergeField
	err := eachPage(ctx, c, "GET /lists/{list_id}/merge-fields", listPath(listID)+"/merge-fields",
		url.Values{"exclude_fields": {"merge_fields._links,_links"}}, "merge_fields", 0, MaxPageSize,
		func(p []MergeField) error { all = append(all, p...); return nil })
	return all, err
}

// CreateMergeField adds a merge field; in.Name and in.Type are required.
func (c *Client) CreateMergeField(ctx context.Context, listID string, in MergeField) (*MergeField, error) {
	if in.Name == "" || in.Type == "" {
		return nil, errors.New("mailchimp: a merge field needs a name and a type")
	}
	in.MergeID, in.ListID = 0, ""
	var out MergeField
	if err := c.do(ctx, request{op: "POST /lists/{list_id}/merge-fields", method: http.MethodPost,
		path: listPath(listID) + "/merge-fields", body: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// BatchSubscribe adds or updates up to 500 members in one call (POST
// /lists/{list_id}). With updateExisting false, existing contacts are left
// untouched and reported as ERROR_CONTACT_EXISTS; with true, their status is
// set to the one sent. Per-member refusals are in the result, not the error.
func (c *Client) BatchSubscribe(ctx context.Context, listID string, members []BatchMember, updateExisting bool) (*BatchResult, error) {
	if len(members) == 0 {
		return &BatchResult{}, nil
	}
	if len(members) > MaxBatchSize {
		return nil, fmt.Errorf("mailchimp: batch subscribe takes at most %d members, got %d", MaxBatchSize, len(members))
	}
	for i, m := range members {
		if m.EmailAddress == "" || m.Status == "" {
			return nil, fmt.Errorf("mailchimp: batch member %d needs an email address and a status", i)
		}
	}
	body := batchBody{members, updateExisting}
	q := url.Values{"fields": {strings.Join([]string{
		"new_members.id", "new_members.email_address", "new_members.status", "new_members.last_changed",
		"updated_members.id", "updated_members.email_address", "updated_members.status", "updated_members.last_changed",
		"errors", "total_created", "total_updated", "error_count",
	}, ",")}}
	var out BatchResult
	if err := c.do(ctx, request{op: "POST /lists/{list_id}", method: http.MethodPost, path: listPath(listID),
		query: q, body: body, out: &out, replayed: &out.Replayed}); err != nil {
		return nil, err
	}
	return &out, nil
}

// eachPage walks a collection with count/offset paging, handing fn each
// non-empty page of the items under key. It stops at total_items, at a short
// page, or when fn fails.
func eachPage[T any](ctx context.Context, c *Client, op, path string, q url.Values, key string, offset, count int, fn func([]T) error) error {
	if count <= 0 || count > MaxPageSize {
		count = MaxPageSize
	}
	q = cloneValues(q)
	if f := q.Get("fields"); f != "" {
		q.Set("fields", f+",total_items")
	}
	q.Set("count", strconv.Itoa(count))
	for {
		q.Set("offset", strconv.Itoa(offset))
		var raw map[string]json.RawMessage
		if err := c.do(ctx, request{op: op, method: http.MethodGet, path: path, query: q, out: &raw}); err != nil {
			return err
		}
		var items []T
		if b, ok := raw[key]; ok {
			if err := decodeAnswer(b, &items); err != nil {
				return fmt.Errorf("mailchimp %s: decoding %s: %w", op, key, err)
			}
		}
		total := -1
		if b, ok := raw["total_items"]; ok {
			if err := decodeAnswer(b, &total); err != nil {
				return fmt.Errorf("mailchimp %s: decoding total_items: %w", op, err)
			}
		}
		if len(items) == 0 {
			return nil
		}
		if err := fn(items); err != nil {
			return err
		}
		offset += len(items)
		if len(items) < count || (total >= 0 && offset >= total) {
			return nil
		}
	}
}

func cloneValues(q url.Values) url.Values {
	out := make(url.Values, len(q)+2)
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

func listPath(listID string) string { return "/lists/" + url.PathEscape(listID) }

func memberPath(listID, email string) string {
	return listPath(listID) + "/members/" + emailaddr.Hash(email)
}

// mailchimpTime formats a time as Mailchimp's ISO 8601 filters expect.
func mailchimpTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05-07:00") }
