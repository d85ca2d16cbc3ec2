// Package stage keeps the rows of one pull between reading them from the
// source and applying them to the store: a scratch SQLite file of the
// worker's own, keyed by customer id, outside the store. Staging writes
// nothing to the store (a pull in which nothing changed leaves it
// untouched, and on PostgreSQL no row crosses the network twice), and
// needs no fsync and no journal on disk: a stage that a crash interrupts
// is thrown away, and the pull starts again. It hands the apply its rows
// in key order.
package stage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	_ "modernc.org/sqlite" // the "sqlite" driver

	"github.com/segsync/segsync/internal/store"
)

// chunk is how many rows one INSERT stages.
const chunk = 500

// prefix starts every stage file's name; the process id follows, so that
// RemoveStale knows whose a file is.
const prefix = "segsync-stage-"

// Stage is the rows of one pull, each key once. It is not safe for
// concurrent use, except that Page may be called while nothing is added.
type Stage struct {
	db   *sql.DB
	path string
	n    int64
	full *sql.Stmt // insertQuery(chunk), prepared once
}

// Open creates an empty stage in dir (the system's temporary directory
// when dir is empty).
func Open(ctx context.Context, dir string) (*Stage, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating a stage: %w", err)
	}
	f, err := os.CreateTemp(dir, prefix+strconv.Itoa(os.Getpid())+"-*.db")
	if err != nil {
		return nil, fmt.Errorf("creating a stage: %w", err)
	}
	path := f.Name()
	f.Close()
	q := url.Values{}
	for _, p := range []string{"journal_mode(MEMORY)", "synchronous(OFF)", "locking_mode(EXCLUSIVE)", "cache_size(-16384)", "temp_store(MEMORY)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("opening the stage: %w", err)
	}
	db.SetMaxOpenConns(1) // one connection: the exclusive lock is its own
	s := &Stage{db: db, path: path}
	if _, err := db.ExecContext(ctx, `CREATE TABLE stage (customer_id TEXT PRIMARY KEY, attrs TEXT NOT NULL) WITHOUT ROWID`); err != nil {
		s.Close()
		return nil, fmt.Errorf("creating the stage: %w", err)
	}
	if s.full, err = db.PrepareContext(ctx, insertQuery(chunk)); err != nil {
		s.Close()
		return nil, fmt.Errorf("creating the stage: %w", err)
	}
	return s, nil
}

// Close removes the stage; it may be called again.
func (s *Stage) Close() error {
	if s.full != nil {
		s.full.Close()
	}
	err := s.db.Close()
	if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// Len is how many rows are staged.
func (s *Stage) Len() int64 { return s.n }

// Add stages rows; a row whose key is staged already (by this call or an
// earlier one) is left out, and its index returned in dups.
func (s *Stage) Add(ctx context.Context, rows []store.StagedRow) (dups []int, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("staging rows: %w", err)
	}
	defer tx.Rollback()
	var added int64 // counted once committed
	seen := make(map[string]bool, len(rows))
	kept := make([]int, 0, chunk)
	args := make([]any, 0, 2*chunk)
	flush := func() error {
		n := len(kept)
		if n == 0 {
			return nil
		}
		defer func() { args, kept = args[:0], kept[:0] }()
		if _, err := tx.ExecContext(ctx, `SAVEPOINT chunk`); err != nil {
			return err
		}
		var res sql.Result
		var err error
		if n == chunk {
			res, err = tx.StmtContext(ctx, s.full).ExecContext(ctx, args...)
		} else {
			res, err = tx.ExecContext(ctx, insertQuery(n), args...)
		}
		if err != nil {
			return err
		}
		if got, err := res.RowsAffected(); err != nil || got == int64(n) {
			added += got
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `RELEASE chunk`)
			return err
		}
		// Some keys were staged by an earlier call (rare): undo the chunk,
		// ask which, and stage the others.
		if _, err := tx.ExecContext(ctx, `ROLLBACK TO chunk`); err != nil {
			return err
		}
		staged := map[string]bool{}
		ks, err := tx.QueryContext(ctx, `SELECT customer_id FROM stage WHERE customer_id IN (`+strings.TrimSuffix(strings.Repeat("?,", n), ",")+`)`, keys(args)...)
		if err != nil {
			return err
		}
		for ks.Next() {
			var k string
			if err := ks.Scan(&k); err != nil {
				ks.Close()
				return err
			}
			staged[k] = true
		}
		if err := errors.Join(ks.Err(), ks.Close()); err != nil {
			return err
		}
		var rest []any
		for _, i := range kept {
			if staged[rows[i].CustomerID] {
				dups = append(dups, i)
			} else {
				rest = append(rest, rows[i].CustomerID, rows[i].Attrs)
			}
		}
		if len(rest) > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO stage (customer_id, attrs) VALUES `+values(len(rest)/2), rest...); err != nil {
				return err
			}
			added += int64(len(rest) / 2)
		}
		_, err = tx.ExecContext(ctx, `RELEASE chunk`)
		return err
	}
	for i, r := range rows {
		if seen[r.CustomerID] {
			dups = append(dups, i)
			continue
		}
		seen[r.CustomerID] = true
		args = append(args, r.CustomerID, r.Attrs)
		kept = append(kept, i)
		if len(kept) == chunk {
			if err := flush(); err != nil {
				return nil, fmt.Errorf("staging rows: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return nil, fmt.Errorf("staging rows: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("staging rows: %w", err)
	}
	s.n += added
	return dups, nil
}

// Page returns up to n staged rows whose keys follow after, in the keys'
// byte order.
func (s *Stage) Page(ctx context.Context, after string, n int) ([]store.StagedRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT customer_id, attrs FROM stage WHERE customer_id > ? ORDER BY customer_id LIMIT ?`, after, n)
	if err != nil {
		return nil, fmt.Errorf("reading the stage: %w", err)
	}
	defer rows.Close()
	out := make([]store.StagedRow, 0, n)
	for rows.Next() {
		var r store.StagedRow
		if err := rows.Scan(&r.CustomerID, &r.Attrs); err != nil {
			return nil, fmt.Errorf("reading the stage: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the stage: %w", err)
	}
	return out, nil
}

// RemoveStale removes the stages in dir that processes which no longer
// run left behind (a crash, a kill).
func RemoveStale(dir string) {
	if dir == "" {
		dir = os.TempDir()
	}
	paths, _ := filepath.Glob(filepath.Join(dir, prefix+"*.db"))
	for _, p := range paths {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(filepath.Base(p), prefix), "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.Remove(p)
		}
	}
}

// keys picks the customer ids out of INSERT arguments (id, attrs, …).
func keys(args []any) []any {
	out := make([]any, 0, len(args)/2)
	for i := 0; i < len(args); i += 2 {
		out = append(out, args[i])
	}
	return out
}

// insertQuery stages n rows, leaving out keys staged already.
func insertQuery(n int) string {
	return `INSERT INTO stage (customer_id, attrs) VALUES ` + values(n) + ` ON CONFLICT (customer_id) DO NOTHING`
}

// values is n rows of two placeholders.
func values(n int) string {
	return strings.TrimSuffix(strings.Repeat("(?,?),", n), ",")
}
