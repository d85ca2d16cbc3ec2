package mailchimp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
)

// BenchmarkCallOverhead is the client's cost per call (limiter, request,
// decoding) against a server that answers at once.
func BenchmarkCallOverhead(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"health_status":"Everything's Chimpy!"}`)
	}))
	defer srv.Close()
	c, err := mailchimp.New(mailchimp.Config{APIKey: emuKey, BaseURL: srv.URL + "/3.0", Limiter: mailchimp.NewLocalLimiter(10)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Ping(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkBatchSubscribeEmulator sends 500-member batches through the
// client to the in-process emulator, 10 calls at a time; it reports
// members per second end to end.
func BenchmarkBatchSubscribeEmulator(b *testing.B) {
	em := emulator.New(emulator.Options{APIKeys: []string{emuKey}})
	srv := httptest.NewServer(em.Handler())
	defer srv.Close()
	c, err := mailchimp.New(mailchimp.Config{APIKey: emuKey, BaseURL: srv.URL + "/3.0", Limiter: mailchimp.NewLocalLimiter(10)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	list, err := c.CreateList(ctx, testList("Bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(5) // with GOMAXPROCS 2: 10 callers, the account's limit
	var next int64
	var mu = make(chan struct{}, 1)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		batch := make([]mailchimp.BatchMember, mailchimp.MaxBatchSize)
		for pb.Next() {
			mu <- struct{}{}
			base := next
			next += int64(len(batch))
			<-mu
			for i := range batch {
				batch[i] = mailchimp.BatchMember{EmailAddress: fmt.Sprintf("p%d@shop.org", base+int64(i)),
					Status: mailchimp.StatusSubscribed, MergeFields: map[string]any{"FNAME": "P"}}
			}
			res, err := c.BatchSubscribe(ctx, list.ID, batch, false)
			if err != nil || res.TotalCreated != len(batch) {
				b.Errorf("batch: %v %+v", err, res)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*mailchimp.MaxBatchSize)/b.Elapsed().Seconds(), "members/s")
}
