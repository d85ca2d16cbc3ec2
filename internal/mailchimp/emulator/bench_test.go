package emulator

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// batchBody builds a batch-subscribe body of n new members starting at from.
func batchBody(from, n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"update_existing":true,"members":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"email_address":"person%d@customer-mail.io","status":"subscribed","merge_fields":{"FNAME":"First%d","LNAME":"Last%d"}}`, from+i, i, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// subscribe sends one batch through the handler, without a network.
func subscribe(tb testing.TB, e *Emulator, listID string, body []byte) {
	req := httptest.NewRequest("POST", "/3.0/lists/"+listID, bytes.NewReader(body))
	req.SetBasicAuth("x", e.Keys()[0])
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("batch subscribe: %d %s", rec.Code, rec.Body.String())
	}
}

// BenchmarkBatchSubscribe measures the emulator's CPU per batch-subscribed
// member (500 new members a call, with two merge fields), including request
// decoding and response encoding.
func BenchmarkBatchSubscribe(b *testing.B) {
	e := New(Options{})
	id, _ := e.CreateList(e.Keys()[0], "bench")
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = batchBody(i*maxBatch, maxBatch)
	}
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		if i%len(bodies) == 0 && i > 0 {
			// New audience so every member is new again.
			b.StopTimer()
			id, _ = e.CreateList(e.Keys()[0], "bench")
			b.StartTimer()
		}
		subscribe(b, e, id, bodies[i%len(bodies)])
	}
	// CPU time, not wall time: the benchmark machine is shared.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*maxBatch), "cpu-ns/member")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*maxBatch), "ns/member")
}

// cpuTime is the CPU time (user + system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMemory1M fills one audience with 1,000,000 members through batch
// subscribe and reports the heap it holds.
func BenchmarkMemory1M(b *testing.B) {
	const total = 1_000_000
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		e := New(Options{})
		id, _ := e.CreateList(e.Keys()[0], "big")
		for from := 0; from < total; from += maxBatch {
			subscribe(b, e, id, batchBody(from, maxBatch))
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		counts, _ := e.StatusCounts(id)
		if counts["subscribed"] != total {
			b.Fatalf("counts = %v", counts)
		}
		held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(held/(1<<20), "MiB/1M-members")
		b.ReportMetric(held/total, "B/member")
		runtime.KeepAlive(e)
	}
}

// BenchmarkListMembers pages through a 100,000-member audience 1000 at a
// time, as a sync engine does to learn current statuses.
func BenchmarkListMembers(b *testing.B) {
	e := New(Options{})
	id, _ := e.CreateList(e.Keys()[0], "list")
	const total = 100_000
	for from := 0; from < total; from += maxBatch {
		subscribe(b, e, id, batchBody(from, maxBatch))
	}
	for _, q := range []string{"", "&fields=members.email_address,members.status,members.last_changed,total_items"} {
		name := "all-fields"
		if q != "" {
			name = "some-fields"
		}
		b.Run(name, func(b *testing.B) {
			cpu0 := cpuTime()
			for b.Loop() {
				for off := 0; off < total; off += 1000 {
					req := httptest.NewRequest("GET", fmt.Sprintf("/3.0/lists/%s/members?count=1000&offset=%d%s", id, off, q), nil)
					req.SetBasicAuth("x", e.Keys()[0])
					rec := httptest.NewRecorder()
					e.Handler().ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("list: %d %s", rec.Code, rec.Body.String())
					}
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*total), "cpu-ns/member")
		})
	}
}
