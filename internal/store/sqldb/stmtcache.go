package sqldb

import (
	"context"
	"database/sql"
)

// A few hot statements of large writes are prepared on the writer pool once
// per process and reused by every transaction (database/sql re-prepares a
// statement only on a connection that does not have it yet).

// prepareCached prepares query on the writer pool unless it is cached. It
// must be called outside a transaction: on SQLite the writer pool has one
// connection, which a transaction holds.
func (db *DB) prepareCached(ctx context.Context, query string) error {
	if _, ok := db.stmts.Load(query); ok {
		return nil
	}
	s, err := db.W.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	if _, loaded := db.stmts.LoadOrStore(query, s); loaded {
		s.Close()
	}
	return nil
}

// txStmt returns query as a statement of tx: the cached one when
// prepareCached prepared it, else a new one. The caller closes it (which
// leaves the cached statement open).
func (db *DB) txStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if s, ok := db.stmts.Load(query); ok {
		return tx.StmtContext(ctx, s.(*sql.Stmt)), nil
	}
	return tx.PrepareContext(ctx, query)
}

// txExec runs query in tx, through the statement prepared once per process
// when there is one.
func (db *DB) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	st, err := db.txStmt(ctx, tx, query)
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = st.ExecContext(ctx, args...)
	return err
}
