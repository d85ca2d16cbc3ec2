package connector

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// myReader streams a MySQL or MariaDB query's rows inside a read-only
// transaction on one connection.
type myReader struct {
	db     *sql.DB
	conn   *sql.Conn
	tx     *sql.Tx
	rows   *sql.Rows
	cols   []Column
	limit  int
	n      int64
	cursor int
	mark   []byte
	raw    []sql.RawBytes
	ptrs   []any
	row    Row
	buf    []byte
	ends   []int // where each field's value ends in buf (-1: NULL), reused
}

func openMySQL(ctx context.Context, cfg Config, opt Options) (Reader, error) {
	mc, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, errors.New("the DSN is not a MySQL data source name (user:password@tcp(host:3306)/database)")
	}
	mc.ParseTime = false // dates stay text, parsed by NormalizeDate
	mc.Loc = time.UTC
	mc.InterpolateParams = true // text protocol: one parser for all types
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("the DSN: %s", myMessage(err))
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	r := &myReader{db: db, limit: opt.Limit, cursor: -1}
	fail := func(what string, err error) (Reader, error) {
		r.Close()
		return nil, fmt.Errorf("%s: %s", what, myMessage(err))
	}
	if r.conn, err = db.Conn(ctx); err != nil {
		return fail("connecting to "+mc.Addr, err)
	}
	var version string
	if err := r.conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return fail("connecting to "+mc.Addr, err)
	}
	timeout := "SET SESSION max_execution_time = " + fmt.Sprint(cfg.StatementTimeout.Milliseconds())
	if strings.Contains(strings.ToLower(version), "mariadb") {
		timeout = fmt.Sprintf("SET SESSION max_statement_time = %.3f", cfg.StatementTimeout.Seconds())
	}
	for _, q := range []string{timeout, "SET SESSION time_zone = '+00:00'"} {
		if _, err := r.conn.ExecContext(ctx, q); err != nil {
			return fail("preparing the session", err)
		}
	}
	if r.tx, err = r.conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}); err != nil {
		return fail("starting a read-only transaction", err)
	}
	q := strings.TrimSuffix(strings.TrimSpace(cfg.Query), ";")
	var args []any
	if opt.Cursor != "" {
		col := "`" + strings.ReplaceAll(opt.Cursor, "`", "``") + "`"
		q = "SELECT * FROM (" + q + ") AS segsync_q"
		if m, ok := decodeMark(opt.After); ok {
			v := m.Value
			if m.Type == TypeDate && len(v) > 10 { // 2024-01-02T10:00:00Z → 2024-01-02 10:00:00
				v = strings.TrimSuffix(strings.Replace(v, "T", " ", 1), "Z")
			}
			q += " WHERE " + col + " > ?"
			args = append(args, v)
		}
		q += " ORDER BY " + col
	}
	if opt.Limit > 0 {
		q = "SELECT * FROM (" + q + fmt.Sprintf(") AS segsync_l LIMIT %d", opt.Limit)
	}
	if r.rows, err = r.tx.QueryContext(ctx, q, args...); err != nil {
		return fail("running the query", err)
	}
	cts, err := r.rows.ColumnTypes()
	if err != nil {
		return fail("reading the result", err)
	}
	for i, ct := range cts {
		r.cols = append(r.cols, Column{Name: ct.Name(), Type: myType(ct)})
		if ct.Name() == opt.Cursor {
			r.cursor = i
		}
	}
	if opt.Cursor != "" && r.cursor < 0 {
		return fail("reading the result", fmt.Errorf("the cursor column %q is not in the query's result", opt.Cursor))
	}
	r.raw = make([]sql.RawBytes, len(cts))
	r.ptrs = make([]any, len(cts))
	for i := range r.raw {
		r.ptrs[i] = &r.raw[i]
	}
	return r, nil
}

// myType maps a MySQL type to a column type. MySQL has no boolean type:
// BOOL is TINYINT(1), which arrives as the number 0 or 1; BIT(1) is a
// boolean.
func myType(ct *sql.ColumnType) string {
	switch ct.DatabaseTypeName() {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "DECIMAL", "FLOAT", "DOUBLE", "YEAR",
		"UNSIGNED TINYINT", "UNSIGNED SMALLINT", "UNSIGNED MEDIUMINT", "UNSIGNED INT", "UNSIGNED BIGINT":
		return TypeNumber
	case "BIT":
		return TypeBoolean
	case "DATE", "DATETIME", "TIMESTAMP":
		return TypeDate
	}
	return TypeString
}

func (r *myReader) Columns() []Column { return r.cols }

func (r *myReader) Next(ctx context.Context) (Row, bool, error) {
	if r.limit > 0 && r.n >= int64(r.limit) || !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return Row{}, false, fmt.Errorf("reading the result: %s", myMessage(err))
		}
		return Row{}, false, nil
	}
	if err := r.rows.Scan(r.ptrs...); err != nil {
		return Row{}, false, fmt.Errorf("reading the result: %s", myMessage(err))
	}
	r.n++
	r.row = Row{Num: r.n, Fields: r.row.Fields[:0]}
	r.buf = r.buf[:0]
	ends := r.ends[:0]
	for i, v := range r.raw {
		if v == nil {
			ends = append(ends, -1)
			continue
		}
		start := len(r.buf)
		r.buf = appendValue(r.buf, r.cols[i].Type, v)
		ends = append(ends, len(r.buf))
		if i == r.cursor {
			val := r.buf[start:]
			if r.mark == nil || greater(r.cols[i].Type, val, r.mark) {
				r.mark = append(r.mark[:0], val...)
			}
		}
	}
	r.ends = ends
	start := 0
	for i, e := range ends {
		if e < 0 {
			continue
		}
		r.row.Fields = append(r.row.Fields, Field{Name: r.cols[i].Name, Value: r.buf[start:e]})
		start = e
	}
	return r.row, true, nil
}

func (r *myReader) Mark() string {
	if r.cursor < 0 || r.mark == nil {
		return ""
	}
	return encodeMark(r.cols[r.cursor].Type, r.mark)
}

func (r *myReader) Close() error {
	if r.rows != nil {
		r.rows.Close()
	}
	if r.tx != nil {
		_ = r.tx.Rollback()
	}
	if r.conn != nil {
		r.conn.Close()
	}
	return r.db.Close()
}

// myMessage is the message of a MySQL error without connection details.
func myMessage(err error) string {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1792: // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
			return "the query tries to write, and segsync only reads (" + me.Message + ")"
		case 1969, 3024: // MariaDB, MySQL: statement timeout
			return "the query ran longer than the statement timeout and was cancelled"
		case 1045:
			return "authentication failed: " + me.Message
		}
		return fmt.Sprintf("%s (error %d)", me.Message, me.Number)
	}
	var ne *net.OpError
	if errors.As(err, &ne) {
		return ne.Error()
	}
	return err.Error()
}
