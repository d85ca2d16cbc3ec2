package stage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/segsync/segsync/internal/store"
)

func TestStage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	var rows []store.StagedRow
	for i := range 1200 { // more than two chunks
		rows = append(rows, store.StagedRow{CustomerID: fmt.Sprintf("k%04d", 1199-i), Attrs: fmt.Sprintf(`{"i":%d}`, i)})
	}
	rows = append(rows, store.StagedRow{CustomerID: "k0005", Attrs: `{"again":1}`}) // within the call
	dups, err := s.Add(ctx, rows)
	if err != nil || !slices.Equal(dups, []int{1200}) || s.Len() != 1200 {
		t.Fatalf("first add: dups %v, len %d, %v", dups, s.Len(), err)
	}
	// Keys staged by the first call, in a full chunk and in a short one;
	// keys that sort in byte order, not in a locale's.
	second := []store.StagedRow{{CustomerID: "k0007", Attrs: `{}`}, {CustomerID: "Zoë", Attrs: `{"z":1}`}, {CustomerID: "k1199", Attrs: `{}`}, {CustomerID: "émile", Attrs: `{"e":1}`}, {CustomerID: "a", Attrs: `{}`}}
	for i := range 600 {
		second = append(second, store.StagedRow{CustomerID: fmt.Sprintf("m%04d", i), Attrs: `{}`})
	}
	second = append(second, store.StagedRow{CustomerID: "k0001", Attrs: `{}`})
	dups, err = s.Add(ctx, second)
	if err != nil || !slices.Equal(dups, []int{0, 2, 605}) || s.Len() != 1200+603 {
		t.Fatalf("second add: dups %v, len %d, %v", dups, s.Len(), err)
	}
	var keys []string
	after := ""
	for {
		page, err := s.Page(ctx, after, 700)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			keys = append(keys, r.CustomerID)
			if r.CustomerID == "k0005" && r.Attrs != `{"i":1194}` {
				t.Errorf("k0005 = %s: the first row of a key stays", r.Attrs)
			}
		}
		if len(page) < 700 {
			break
		}
		after = page[len(page)-1].CustomerID
	}
	if int64(len(keys)) != s.Len() || !slices.IsSorted(keys) || keys[0] != "Zoë" || keys[1] != "a" || keys[len(keys)-1] != "émile" {
		t.Errorf("%d keys, sorted %v, first %q %q, last %q", len(keys), slices.IsSorted(keys), keys[0], keys[1], keys[len(keys)-1])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("Close left %v", left)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	dead := filepath.Join(dir, prefix+"2147483000-1.db") // no such process
	mine := filepath.Join(dir, prefix+fmt.Sprint(os.Getpid())+"-2.db")
	live := filepath.Join(dir, prefix+"1-3.db") // init runs
	other := filepath.Join(dir, "unrelated.db")
	for _, p := range []string{dead, mine, live, other} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	RemoveStale(dir)
	for p, want := range map[string]bool{dead: false, mine: true, live: true, other: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}
