package mailchimp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// ListSegments returns the audience's segments of one type ("static" for
// tags; "" for all types).
func (c *Client) ListSegments(ctx context.Context, listID, typ string) ([]Segment, error) {
	q := url.Values{"exclude_fields": {"segments._links,segments.options,_links"}}
	if typ != "" {
		q.Set("type", typ)
	}
	var all []Segment
	err := eachPage(ctx, c, "GET /lists/{list_id}/segments", listPath(listID)+"/segments", q, "segments", 0, MaxPageSize,
		func(p []Segment) error { all = append(all, p...); return nil })
	return all, err
}

// CreateStaticSegment creates an empty static segment, i.e. a tag.
func (c *Client) CreateStaticSegment(ctx context.Context, listID, name string) (*Segment, error) {
	if name == "" {
		return nil, errors.New("mailchimp: a segment needs a name")
	}
	body := struct {
		Name          string   `json:"name"`
		StaticSegment []string `json:"static_segment"`
	}{name, []string{}}
	var out Segment
	if err := c.do(ctx, request{op: "POST /lists/{list_id}/segments", method: http.MethodPost,
		path: listPath(listID) + "/segments", query: url.Values{"exclude_fields": {"_links,options"}},
		body: body, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateSegmentMembers adds and removes up to 500 addresses each to and from
// a static segment (tag). Addresses not in the audience are ignored by
// Mailchimp; per-address refusals are in the result.
func (c *Client) UpdateSegmentMembers(ctx context.Context, listID string, segmentID int64, add, remove []string) (*SegmentUpdate, error) {
	if len(add) > MaxBatchSize || len(remove) > MaxBatchSize {
		return nil, fmt.Errorf("mailchimp: a segment update takes at most %d additions and %d removals, got %d and %d",
			MaxBatchSize, MaxBatchSize, len(add), len(remove))
	}
	if len(add) == 0 && len(remove) == 0 {
		return &SegmentUpdate{}, nil
	}
	body := segmentBody{add, remove}
	q := url.Values{"fields": {"errors,total_added,total_removed,error_count"}}
	var out SegmentUpdate
	if err := c.do(ctx, request{op: "POST /lists/{list_id}/segments/{segment_id}", method: http.MethodPost,
		path: segmentPath(listID, segmentID), query: q, body: body, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// SegmentMembers streams a segment's members page by page to fn.
func (c *Client) SegmentMembers(ctx context.Context, listID string, segmentID int64, fn func([]Member) error) error {
	return eachPage(ctx, c, "GET /lists/{list_id}/segments/{segment_id}/members", segmentPath(listID, segmentID)+"/members",
		url.Values{"exclude_fields": {"members._links,_links"}}, "members", 0, MaxPageSize, fn)
}

func segmentPath(listID string, segmentID int64) string {
	return listPath(listID) + "/segments/" + strconv.FormatInt(segmentID, 10)
}
