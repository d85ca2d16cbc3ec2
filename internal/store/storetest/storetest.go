// Package storetest is the conformance suite every store implementation
// passes: SQLite and PostgreSQL run the same tests (storetest_test.go).
//
// Each domain adds its tests in its own file as methods of Suite whose names
// start with "Test" (func (s Suite) TestSegmentRules(t *testing.T)); Run finds
// them by reflection, so adding a file needs no edit anywhere else. A test
// opens a fresh, migrated database with s.Open(t).
package storetest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/store/sqldb"
)

// Suite is the receiver of every conformance test.
type Suite struct {
	// Open returns a fresh, migrated, empty store, closed when t ends.
	Open func(t testing.TB) *sqldb.DB
}

// Run runs every Test* method of Suite as a subtest against the store open
// opens.
func Run(t *testing.T, open func(t testing.TB) *sqldb.DB) {
	s := reflect.ValueOf(Suite{Open: open})
	typ := s.Type()
	ran := 0
	for i := 0; i < typ.NumMethod(); i++ {
		m := typ.Method(i)
		fn, ok := s.Method(i).Interface().(func(*testing.T))
		if !strings.HasPrefix(m.Name, "Test") || !ok {
			continue
		}
		ran++
		t.Run(strings.TrimPrefix(m.Name, "Test"), fn)
	}
	if ran == 0 {
		t.Fatal("storetest: Suite has no Test methods")
	}
}
