package connector

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pgReader streams a PostgreSQL query's rows in text format inside a
// read-only transaction.
type pgReader struct {
	conn   *pgx.Conn
	tx     pgx.Tx
	rows   pgx.Rows
	cols   []Column
	limit  int
	n      int64
	cursor int // column index of the cursor, -1 without
	mark   []byte
	row    Row
	buf    []byte
}

func openPostgres(ctx context.Context, cfg Config, opt Options) (Reader, error) {
	pc, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("the DSN is not a PostgreSQL connection string: %s", pgMessage(err))
	}
	pc.RuntimeParams["application_name"] = "segsync"
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s:%d: %s", pc.Host, pc.Port, pgMessage(err))
	}
	r := &pgReader{conn: conn, limit: opt.Limit, cursor: -1}
	fail := func(what string, err error) (Reader, error) {
		r.Close()
		return nil, fmt.Errorf("%s: %s", what, pgMessage(err))
	}
	if r.tx, err = conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly}); err != nil {
		return fail("starting a read-only transaction", err)
	}
	if _, err := r.tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", cfg.StatementTimeout.Milliseconds())); err != nil {
		return fail("setting the statement timeout", err)
	}
	if _, err := r.tx.Exec(ctx, "SET LOCAL TimeZone = 'UTC'"); err != nil {
		return fail("setting the time zone", err)
	}
	q := strings.TrimSuffix(strings.TrimSpace(cfg.Query), ";")
	var args []any
	if opt.Cursor != "" {
		col := pgx.Identifier{opt.Cursor}.Sanitize()
		q = "SELECT * FROM (" + q + ") AS segsync_q"
		if m, ok := decodeMark(opt.After); ok {
			q += " WHERE " + col + " > $1"
			args = append(args, m.Value)
		}
		q += " ORDER BY " + col
	}
	if opt.Limit > 0 {
		q = "SELECT * FROM (" + q + fmt.Sprintf(") AS segsync_l LIMIT %d", opt.Limit)
	}
	// Text format for every column: one parser for all types.
	r.rows, err = r.tx.Query(ctx, q, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		return fail("running the query", err)
	}
	for i, fd := range r.rows.FieldDescriptions() {
		r.cols = append(r.cols, Column{Name: fd.Name, Type: pgType(fd.DataTypeOID)})
		if fd.Name == opt.Cursor {
			r.cursor = i
		}
	}
	if opt.Cursor != "" && r.cursor < 0 {
		r.rows.Close()
		return fail("reading the result", fmt.Errorf("the cursor column %q is not in the query's result", opt.Cursor))
	}
	return r, nil
}

// pgType maps a PostgreSQL type to a column type.
func pgType(oid uint32) string {
	switch oid {
	case 20, 21, 23, 26, 700, 701, 1700, 790: // int8 int2 int4 oid float4 float8 numeric money
		if oid == 790 {
			return TypeString
		}
		return TypeNumber
	case 16:
		return TypeBoolean
	case 1082, 1114, 1184: // date timestamp timestamptz
		return TypeDate
	}
	return TypeString
}

func (r *pgReader) Columns() []Column { return r.cols }

func (r *pgReader) Next(ctx context.Context) (Row, bool, error) {
	if r.limit > 0 && r.n >= int64(r.limit) || !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return Row{}, false, fmt.Errorf("reading the result: %s", pgMessage(err))
		}
		return Row{}, false, nil
	}
	r.n++
	raw := r.rows.RawValues()
	r.row = Row{Num: r.n, Fields: r.row.Fields[:0]}
	r.buf = r.buf[:0]
	type span struct {
		name       string
		start, end int
	}
	var spans [64]span
	sp := spans[:0]
	for i, v := range raw {
		if v == nil {
			continue
		}
		start := len(r.buf)
		r.buf = appendValue(r.buf, r.cols[i].Type, v)
		sp = append(sp, span{r.cols[i].Name, start, len(r.buf)})
		if i == r.cursor {
			val := r.buf[start:]
			if r.mark == nil || greater(r.cols[i].Type, val, r.mark) {
				r.mark = append(r.mark[:0], val...)
			}
		}
	}
	for _, s := range sp {
		r.row.Fields = append(r.row.Fields, Field{Name: s.name, Value: r.buf[s.start:s.end]})
	}
	return r.row, true, nil
}

func (r *pgReader) Mark() string {
	if r.cursor < 0 || r.mark == nil {
		return ""
	}
	return encodeMark(r.cols[r.cursor].Type, r.mark)
}

func (r *pgReader) Close() error {
	ctx := context.Background()
	if r.rows != nil {
		r.rows.Close()
	}
	if r.tx != nil {
		_ = r.tx.Rollback(ctx)
	}
	return r.conn.Close(ctx)
}

// pgMessage is the message of a PostgreSQL error without connection
// details: the server's message and code, or the network failure.
func pgMessage(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Code == "25006" {
			return "the query tries to write, and segsync only reads (" + pe.Message + ")"
		}
		if pe.Code == "57014" {
			return "the query ran longer than the statement timeout and was cancelled"
		}
		return pe.Message + " (SQLSTATE " + pe.Code + ")"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		if u := errors.Unwrap(ce); u != nil {
			return pgMessage(u)
		}
	}
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		return "the connection string cannot be parsed"
	}
	msg := err.Error()
	// Network errors: "dial tcp 127.0.0.1:1: connect: connection refused".
	if i := strings.LastIndex(msg, "dial "); i >= 0 {
		return msg[i:]
	}
	return msg
}
