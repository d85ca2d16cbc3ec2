package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// api is a minimal client of segsync's REST API.
type api struct {
	base  string
	token string
	http  *http.Client
}

// call sends a request with body (an io.Reader is streamed, anything else
// encoded as JSON) and decodes the JSON answer into out (when not nil).
func (a *api) call(ctx context.Context, method, path, contentType string, body any, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd, contentType = bytes.NewReader(buf), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return nil
}

// importResult is the answer of a profile import.
type importResult struct {
	Received  int64 `json:"received"`
	Imported  int64 `json:"imported"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
	Rejected  int64 `json:"rejected"`
}

func (a *api) importCSV(ctx context.Context, body io.Reader) (importResult, error) {
	var res importResult
	err := a.call(ctx, http.MethodPost, "/api/v1/profiles/import?key=customer_id&mode=upsert", "text/csv", body, &res)
	return res, err
}

type idAnswer struct {
	ID          int64 `json:"id"`
	MemberCount int64 `json:"member_count"`
}

func (a *api) createSegment(ctx context.Context, name string, rule any) (idAnswer, error) {
	var out idAnswer
	err := a.call(ctx, http.MethodPost, "/api/v1/segments", "", map[string]any{"name": name, "rule": rule}, &out)
	return out, err
}

// run is the part of a run's JSON the benchmark reads.
type exportRun struct {
	ID         int64      `json:"id"`
	Status     string     `json:"status"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Progress   struct {
		Done  int64 `json:"done"`
		Total int64 `json:"total"`
	} `json:"progress"`
	Counts  map[string]int64 `json:"counts"`
	Timings map[string]int64 `json:"timings"` // phase timings in ms (absent before segsync kept them)
	Error   string           `json:"error"`
}

func (r exportRun) finished() bool {
	switch r.Status {
	case "succeeded", "partially_succeeded", "failed", "cancelled":
		return true
	}
	return false
}

// runExport starts a run of export id and polls it until it ends.
func (a *api) runExport(ctx context.Context, id int64, poll time.Duration) (exportRun, error) {
	var r exportRun
	if err := a.call(ctx, http.MethodPost, fmt.Sprintf("/api/v1/exports/%d/runs", id), "", map[string]any{"dry_run": false}, &r); err != nil {
		return r, err
	}
	for {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(poll):
		}
		if err := a.call(ctx, http.MethodGet, fmt.Sprintf("/api/v1/runs/%d", r.ID), "", nil, &r); err != nil {
			return r, err
		}
		if r.finished() {
			return r, nil
		}
	}
}
