package httpapi

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/segsync/segsync/internal/store/dbtest"
)

// csvRows streams n generated profiles of ten attributes as CSV.
func csvRows(n int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 1<<16)
		fmt.Fprintln(w, "customer_id,email,first_name,last_name,age,score,vip,city,signup,plan")
		for i := range n {
			fmt.Fprintf(w, "c%08d,user%d@example.org,First%d,Last%d,%d,%d.%02d,%t,City%d,2024-%02d-%02d,plan%d\n",
				i, i, i%977, i%1013, 18+i%70, i%1000, i%100, i%3 == 0, i%50, 1+i%12, 1+i%28, i%4)
		}
		pw.CloseWithError(w.Flush())
	}()
	return pr
}

// BenchmarkImportCSVOverHTTP measures the whole path of an import: HTTP
// request body → handler → importer → SQLite, for 100,000 new profiles of
// ten attributes per iteration (report: rows/s).
func BenchmarkImportCSVOverHTTP(b *testing.B) {
	const rows = 100_000
	for b.Loop() {
		b.StopTimer()
		ts := httptest.NewServer(New(Deps{Store: dbtest.SQLite(b), Loopback: true}).Handler())
		b.StartTimer()
		resp, err := http.Post(ts.URL+"/api/v1/profiles/import", "text/csv", csvRows(rows))
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("import = %d %s", resp.StatusCode, body)
		}
		b.StopTimer()
		ts.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
