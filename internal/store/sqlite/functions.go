package sqlite

import (
	"database/sql/driver"
	"fmt"
	"sync"

	msqlite "modernc.org/sqlite"

	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/segment"
	"github.com/segsync/segsync/internal/textfold"
)

var registerOnce sync.Once
var registerErr error

// registerFunctions adds segsync's SQL functions to the "sqlite" driver,
// once per process, before the first connection opens. Segment rules and
// member streams call them; PostgreSQL has the same functions from its
// migration 0002, and both follow the Go definitions in package segment.
//
//   - segsync_date(v): the calendar day of a date string, or NULL
//   - segsync_instant(v): the UTC instant of a date string, or NULL
//   - segsync_hash(v): the subscriber hash of an e-mail string, or NULL
//   - segsync_fold(v): text in its comparable form (package textfold), or
//     NULL for a number or boolean; PostgreSQL's is migration 0010
func registerFunctions() error {
	registerOnce.Do(func() {
		fns := map[string]func(string) (string, bool){
			"segsync_date": func(s string) (string, bool) {
				day, _, ok := segment.DateKeys(s)
				return day, ok
			},
			"segsync_instant": func(s string) (string, bool) {
				_, instant, ok := segment.DateKeys(s)
				return instant, ok
			},
			"segsync_fold": func(s string) (string, bool) { return textfold.Fold(s), true },
			"segsync_hash": func(s string) (string, bool) {
				if emailaddr.Normalize(s) == "" {
					return "", false
				}
				return emailaddr.Hash(s), true
			},
		}
		for name, fn := range fns {
			if err := msqlite.RegisterDeterministicScalarFunction(name, 1, textFunction(fn)); err != nil {
				registerErr = fmt.Errorf("registering SQL function %s: %w", name, err)
				return
			}
		}
	})
	return registerErr
}

// textFunction adapts fn to a scalar SQL function of one text argument that
// returns NULL for any other argument type and when fn says !ok.
func textFunction(fn func(string) (string, bool)) func(*msqlite.FunctionContext, []driver.Value) (driver.Value, error) {
	return func(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		var s string
		switch v := args[0].(type) {
		case string:
			s = v
		default:
			return nil, nil
		}
		out, ok := fn(s)
		if !ok {
			return nil, nil
		}
		return out, nil
	}
}
