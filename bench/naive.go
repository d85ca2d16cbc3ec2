package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segsync/segsync/internal/mailchimp"
)

// naiveResult is what the naive approach did within its limits.
type naiveResult struct {
	Contacts  int            // contacts sent (PUT + tags)
	Total     int            // contacts it would have to send
	Wall      time.Duration  // for Contacts
	Calls     map[string]int // by endpoint, from the emulator
	Failed    int            // contacts whose calls failed after retries
	Projected time.Duration  // Wall × Total / Contacts
}

// runNaive exports the first run's contacts the way a script with the
// official client does: for each contact one PUT (status_if_new) and one
// call to its tags, workers at a time. It stops after limit contacts
// (0: no limit) or when timeout has passed, whichever comes first.
func runNaive(ctx context.Context, mc *mailchimp.Client, listID string, n, workers, limit int, timeout time.Duration) (naiveResult, error) {
	var todo []int
	for i := range n {
		if gen(i, 0).tags() != 0 {
			todo = append(todo, i)
		}
	}
	res := naiveResult{Total: len(todo)}
	if limit > 0 && limit < len(todo) {
		todo = todo[:limit]
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var next, done, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k := int(next.Add(1)) - 1
				if k >= len(todo) {
					return
				}
				if err := naiveOne(ctx, mc, listID, gen(todo[k], 0)); err != nil {
					if ctx.Err() != nil {
						return
					}
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Wall = time.Since(start)
	res.Contacts, res.Failed = int(done.Load()), int(failed.Load())
	if res.Contacts > 0 {
		res.Projected = time.Duration(float64(res.Wall) * float64(res.Total) / float64(res.Contacts))
	}
	if res.Contacts == 0 {
		return res, errors.Join(errors.New("the naive export sent nothing"), firstErr)
	}
	if res.Failed > res.Contacts/100 {
		return res, fmt.Errorf("the naive export failed for %d of %d contacts: %w", res.Failed, res.Contacts, firstErr)
	}
	return res, nil
}

func naiveOne(ctx context.Context, mc *mailchimp.Client, listID string, p profile) error {
	e := email(p.i)
	_, err := mc.PutMember(ctx, listID, mailchimp.MemberInput{EmailAddress: e, StatusIfNew: mailchimp.StatusSubscribed,
		MergeFields: map[string]any{"FNAME": firstNames[p.i%len(firstNames)], "LNAME": p.lastName}})
	if err != nil {
		return fmt.Errorf("PUT %s: %w", e, err)
	}
	var tags []mailchimp.TagUpdate
	if p.engaged() {
		tags = append(tags, mailchimp.TagUpdate{Name: "engaged", Active: true})
	}
	if p.recent() {
		tags = append(tags, mailchimp.TagUpdate{Name: "recent", Active: true})
	}
	if err := mc.UpdateMemberTags(ctx, listID, e, tags); err != nil {
		return fmt.Errorf("tags of %s: %w", e, err)
	}
	return nil
}
