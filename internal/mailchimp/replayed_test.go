package mailchimp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestBatchReplayed: a batch subscribe repeated after an attempt that may
// have been applied says so; one repeated after a refusal that applied
// nothing (429) does not.
func TestBatchReplayed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		first int // status of the first attempt
		want  bool
	}{
		{"after a 503", http.StatusServiceUnavailable, true},
		{"after a 500", http.StatusInternalServerError, true},
		{"after a 429", http.StatusTooManyRequests, false},
		{"first time right", http.StatusOK, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 && tt.first != http.StatusOK {
					w.WriteHeader(tt.first)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"new_members":[],"updated_members":[],"errors":[{"email_address":"a@shop.io","error_code":"ERROR_CONTACT_EXISTS","error":"exists"}],"error_count":1}`))
			}))
			defer ts.Close()
			c, err := New(Config{APIKey: "0123456789abcdef-us1", BaseURL: ts.URL, RetryBaseDelay: time.Millisecond, RetryMaxDelay: time.Millisecond, MaxRetryAfter: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.BatchSubscribe(context.Background(), "l1", []BatchMember{{EmailAddress: "a@shop.io", Status: StatusSubscribed}}, false)
			if err != nil {
				t.Fatal(err)
			}
			if res.Replayed != tt.want || len(res.Errors) != 1 {
				t.Fatalf("Replayed = %v (errors %v), want %v", res.Replayed, res.Errors, tt.want)
			}
		})
	}
}

// TestArchiveReplayed: a DELETE that hears 405 after a lost answer archived
// the member itself; a 405 at the first attempt is the caller's problem.
func TestArchiveReplayed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		first   int
		wantErr bool
	}{
		{"405 after a 503", http.StatusServiceUnavailable, false},
		{"405 at once", http.StatusMethodNotAllowed, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 && tt.first != http.StatusMethodNotAllowed {
					w.WriteHeader(tt.first)
					return
				}
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusMethodNotAllowed)
				_, _ = w.Write([]byte(`{"title":"Method Not Allowed","status":405,"detail":"Can not archive a contact that is bounced, pending or archived"}`))
			}))
			defer ts.Close()
			c, err := New(Config{APIKey: "0123456789abcdef-us1", BaseURL: ts.URL, RetryBaseDelay: time.Millisecond, RetryMaxDelay: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.ArchiveMember(context.Background(), "l1", "a@shop.io"); (err != nil) != tt.wantErr {
				t.Fatalf("ArchiveMember: %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// TestDeletePermanentReplayed: a permanent delete that hears 404 after a lost
// answer erased the member itself; a 404 at the first attempt is an error.
func TestDeletePermanentReplayed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		first   int
		wantErr bool
	}{
		{"404 after a 503", http.StatusServiceUnavailable, false},
		{"404 at once", http.StatusNotFound, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 && tt.first != http.StatusNotFound {
					w.WriteHeader(tt.first)
					return
				}
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"title":"Resource Not Found","status":404,"detail":"The requested resource could not be found."}`))
			}))
			defer ts.Close()
			c, err := New(Config{APIKey: "0123456789abcdef-us1", BaseURL: ts.URL, RetryBaseDelay: time.Millisecond, RetryMaxDelay: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.DeletePermanent(context.Background(), "l1", "a@shop.io"); (err != nil) != tt.wantErr {
				t.Fatalf("DeletePermanent: %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
