package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "1234 (segsync) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0", 3 * time.Second, false},
		{"name with spaces and parens", "99 (a b) c)) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0", 100 * time.Millisecond, false},
		{"truncated", "99 (x) R 1 2 3", 0, true},
		{"no name", "99 x R", 0, true},
		{"not a number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a 3 0 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("cpu = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseStatusMem(t *testing.T) {
	tests := []struct {
		name     string
		status   string
		hwm, rss int64
		wantErr  bool
	}{
		{"both", "Name:\tsegsync\nVmPeak:\t 999 kB\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n", 2 << 20, 1 << 20, false},
		{"missing", "Name:\tsegsync\nVmRSS:\t 1 kB\n", 0, 0, true},
		{"bad unit", "VmHWM:\t 1 MB\nVmRSS:\t 1 kB\n", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hwm, rss, err := parseStatusMem(strings.NewReader(tt.status))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if hwm != tt.hwm || rss != tt.rss {
				t.Errorf("hwm, rss = %d, %d, want %d, %d", hwm, rss, tt.hwm, tt.rss)
			}
		})
	}
}

func TestReadProcSelf(t *testing.T) {
	st, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PeakRSS <= 0 || st.RSS <= 0 || st.PeakRSS < st.RSS {
		t.Errorf("implausible memory %+v", st)
	}
}

func TestCalls(t *testing.T) {
	for _, tt := range []struct{ n, want int }{{0, 0}, {1, 1}, {500, 1}, {501, 2}, {1000, 2}, {880001, 1761}} {
		if got := calls(tt.n); got != tt.want {
			t.Errorf("calls(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

// TestPlans checks the plans against a direct count over the generated
// profiles and their CSV.
func TestPlans(t *testing.T) {
	const n = 20000
	full := planFull(n)
	var union, a, b int
	var buf bytes.Buffer
	if err := writeCSV(&buf, n, 0, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != n+1 || lines[0]+"\n" != csvHeader {
		t.Fatalf("CSV has %d lines, header %q", len(lines), lines[0])
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) != 9 {
			t.Fatalf("row %q has %d fields", l, len(f))
		}
		eng := len(f[4]) == 2 && f[4] >= "25" // scores are 0..99
		rec := f[5] >= recentFrom
		if eng {
			a++
		}
		if rec {
			b++
		}
		if eng || rec {
			union++
		}
	}
	if full.Creates != union || full.TagAdds != [2]int{a, b} {
		t.Fatalf("full plan %+v, counted union %d, segments %d and %d", full, union, a, b)
	}
	if want := calls(union) + calls(a) + calls(b) + 2; full.MinCalls != want {
		t.Errorf("full min calls %d, want %d", full.MinCalls, want)
	}
	// Both segments should be neither empty nor everything.
	if a < n/2 || a > n*9/10 || b < n/4 || b > n*3/4 {
		t.Errorf("segment sizes %d and %d of %d are not the intended shares", a, b, n)
	}

	ch := planChange(n, 1)
	nChanged := 0
	for i := range n {
		if changed(i, 1) {
			nChanged++
			if gen(i, 1).lastName == gen(i, 0).lastName {
				t.Fatalf("profile %d changed without a new last name", i)
			}
		} else if gen(i, 1) != gen(i, 0) {
			t.Fatalf("profile %d changed but is not in generation 1", i)
		}
	}
	if nChanged != n/100 {
		t.Errorf("%d profiles changed, want 1%% (%d)", nChanged, n/100)
	}
	if ch.Creates == 0 || ch.Updates == 0 || ch.TagAdds[0] == 0 || ch.TagRemoves[0] == 0 || ch.TagAdds[1] != 0 || ch.TagRemoves[1] != 0 {
		t.Errorf("change plan %+v: want creates, updates, and additions and removals of the first tag only", ch)
	}
	if ch.Creates+ch.Updates > nChanged {
		t.Errorf("change plan %+v sends more contacts than changed (%d)", ch, nChanged)
	}
}

func TestWriteSVG(t *testing.T) {
	var b strings.Builder
	err := writeSVG(&b, "t <1>", []series{
		{Name: "full", Color: "#000", Points: []point{{1e6, 40}, {1e5, 4}}},
		{Name: "naive", Color: "#f00", Dashed: true, Points: []point{{1e5, 400}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	for _, want := range []string{"<svg ", "</svg>", "t &lt;1&gt;", "<polyline", "stroke-dasharray", ">1M<", ">100k<", ">1000 s<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if err := writeSVG(&b, "empty", nil); err == nil {
		t.Error("an empty plot was drawn")
	}
}
