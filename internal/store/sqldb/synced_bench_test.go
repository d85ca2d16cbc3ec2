package sqldb_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// BenchmarkApplySynced records 200,000 new contacts in transactions of
// 5,000 in hash order, as a first run's recorder does (SQLite).
//
//	go test -run '^$' -bench ApplySynced -benchtime 3x ./internal/store/sqldb
func BenchmarkApplySynced(b *testing.B) {
	const n, batch = 200_000, 5_000
	ctx := context.Background()
	changes := make([]store.SyncedChange, n)
	for i := range changes {
		email := fmt.Sprintf("member%d@segsync-bench.net", i)
		h := emailaddr.Hash(email)
		changes[i] = store.SyncedChange{Hash: h, Set: &store.Synced{Hash: h, Email: email, CustomerID: fmt.Sprintf("c%07d", i),
			InAudience: true, InExport: true, FieldsHash: h[:16], Tags: 3, CreatedByUs: true, Status: "subscribed"}}
	}
	// Runs send, so record, contacts in hash order.
	slices.SortFunc(changes, func(a, b store.SyncedChange) int { return strings.Compare(a.Hash, b.Hash) })
	db := dbtest.SQLite(b)
	conn := int64(1)
	exp := store.Export{Name: "b", ConnectionID: &conn, AudienceID: "aud", Mapping: store.Mapping{Email: "email"},
		StatusIfNew: "subscribed", OnLeave: "untag", Schedule: "off"}
	if err := db.CreateExport(ctx, &exp); err != nil {
		b.Fatal(err)
	}
	reset := func() {
		if _, err := db.W.ExecContext(ctx, `DELETE FROM synced`); err != nil {
			b.Fatal(err)
		}
	}
	benchCPU(b, reset, func() {
		for rest := changes; len(rest) > 0; rest = rest[min(batch, len(rest)):] {
			if err := db.ApplySynced(ctx, exp.ID, rest[:min(batch, len(rest))]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
