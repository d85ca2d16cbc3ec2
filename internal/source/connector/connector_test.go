package connector

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/segsync/segsync/internal/store/dbtest"
)

// readAll reads every row of a source as column → raw canonical value.
func readAll(t *testing.T, cfg Config, opt Options) ([]map[string]string, Reader) {
	t.Helper()
	r, err := Open(context.Background(), cfg, opt)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	var out []map[string]string
	for {
		row, ok, err := r.Next(context.Background())
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		if !ok {
			return out, r
		}
		m := map[string]string{}
		if row.Err != "" {
			m["_err"] = row.Err
		}
		for _, f := range row.Fields {
			m[f.Name] = string(f.Value)
		}
		out = append(out, m)
	}
}

// mustFail opens and reads a source and returns the error text, checking
// that no secret is in it.
func mustFail(t *testing.T, cfg Config, secrets ...string) string {
	t.Helper()
	r, err := Open(context.Background(), cfg, Options{})
	if err == nil {
		for {
			var ok bool
			if _, ok, err = r.Next(context.Background()); err != nil || !ok {
				break
			}
		}
		r.Close()
	}
	if err == nil {
		t.Fatalf("no error for %s", cfg.Query)
	}
	for _, s := range append(secrets, cfg.DSN) {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("the error shows a secret (%q): %v", s, err)
		}
	}
	return err.Error()
}

func TestPostgres(t *testing.T) {
	url := dbtest.PostgresURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := strings.TrimPrefix(strings.Split(strings.Split(url, "search_path=")[1], "&")[0], "")
	role := "bars_reader_" + fmt.Sprint(time.Now().UnixNano()%1e9)
	for _, q := range []string{
		`CREATE TABLE customers (id text PRIMARY KEY, n int, big numeric(30,2), f float8, ok boolean, born date,
			seen timestamptz, note text, missing text, tags text[])`,
		`INSERT INTO customers VALUES ('c1', 1, 12345678901234567890.25, 1.5, true, '1990-02-03', '2024-05-06 07:08:09.5+02', 'a "quote"', NULL, '{x,y}'),
			('c2', -2, 0, 0, false, NULL, '2024-05-07 00:00:00+00', '', NULL, NULL)`,
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'Pa55word-xyz'`, role),
		fmt.Sprintf(`GRANT USAGE ON SCHEMA %s TO %s`, pgx.Identifier{schema}.Sanitize(), role),
		fmt.Sprintf(`GRANT SELECT ON customers TO %s`, role),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), fmt.Sprintf(`DROP OWNED BY %s; DROP ROLE %s`, role, role))
	})
	cfg := Config{Kind: KindPostgres, DSN: url, Query: "SELECT * FROM customers ORDER BY id"}
	rows, r := readAll(t, cfg, Options{})
	want := map[string]string{"id": `"c1"`, "n": "1", "big": "12345678901234567890.25", "f": "1.5", "ok": "true",
		"born": `"1990-02-03"`, "seen": `"2024-05-06T05:08:09Z"`, "note": `"a \"quote\""`, "tags": `"{x,y}"`}
	if len(rows) != 2 {
		t.Fatalf("rows: %v", rows)
	}
	for k, v := range want {
		if rows[0][k] != v {
			t.Errorf("c1.%s = %s, want %s", k, rows[0][k], v)
		}
	}
	if _, ok := rows[0]["missing"]; ok {
		t.Errorf("NULL is not absent")
	}
	types := map[string]string{}
	for _, c := range r.Columns() {
		types[c.Name] = c.Type
	}
	if types["n"] != TypeNumber || types["ok"] != TypeBoolean || types["seen"] != TypeDate || types["note"] != TypeString || types["big"] != TypeNumber {
		t.Errorf("types: %v", types)
	}

	// Incremental: only rows past the mark.
	rows, r = readAll(t, cfg, Options{Cursor: "seen"})
	mark := r.Mark()
	rows, _ = readAll(t, cfg, Options{Cursor: "seen", After: mark})
	if len(rows) != 0 {
		t.Errorf("rows past the last mark: %v", rows)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO customers (id, seen) VALUES ('c3', '2024-06-01 00:00:00+00')`); err != nil {
		t.Fatal(err)
	}
	if rows, _ = readAll(t, cfg, Options{Cursor: "seen", After: mark}); len(rows) != 1 || rows[0]["id"] != `"c3"` {
		t.Errorf("incremental read: %v", rows)
	}

	// The least-privilege role reads; wrong password, writes, bad SQL,
	// timeouts and unreachable hosts fail with safe messages.
	roleDSN := strings.Replace(url, "postgres@", role+":Pa55word-xyz@", 1)
	if rows, _ := readAll(t, Config{Kind: KindPostgres, DSN: roleDSN, Query: "SELECT id FROM customers"}, Options{}); len(rows) != 3 {
		t.Errorf("role read %d rows", len(rows))
	}
	// The test server trusts every password (the MariaDB test checks a
	// wrong one); a role that may not log in is refused the same way.
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s NOLOGIN", role)); err != nil {
		t.Fatal(err)
	}
	badDSN := strings.Replace(url, "postgres@", role+":wrong-Secret-1@", 1)
	if msg := mustFail(t, Config{Kind: KindPostgres, DSN: badDSN, Query: "SELECT 1"}, "wrong-Secret-1"); !strings.Contains(msg, "not permitted to log in") {
		t.Errorf("refused login: %s", msg)
	}
	if msg := mustFail(t, Config{Kind: KindPostgres, DSN: url, Query: "SELECT * FROM customers FOR UPDATE"}); !strings.Contains(msg, "only reads") {
		t.Errorf("write attempt: %s", msg)
	}
	if msg := mustFail(t, Config{Kind: KindPostgres, DSN: url, Query: "SELECT id FROM customers WHER id = 1"}); !strings.Contains(msg, "syntax error") {
		t.Errorf("syntax error: %s", msg)
	}
	if msg := mustFail(t, Config{Kind: KindPostgres, DSN: url, Query: "SELECT pg_sleep(5)", StatementTimeout: 200 * time.Millisecond}); !strings.Contains(msg, "statement timeout") {
		t.Errorf("timeout: %s", msg)
	}
	if msg := mustFail(t, Config{Kind: KindPostgres, DSN: "postgres://u:TopSecret99@127.0.0.1:1/db?connect_timeout=2", Query: "SELECT 1"}, "TopSecret99"); !strings.Contains(msg, "refused") {
		t.Errorf("unreachable: %s", msg)
	}
	if err := (Config{Kind: KindPostgres, DSN: url, Query: "DELETE FROM customers"}).Validate(); err == nil {
		t.Errorf("a DELETE passed validation")
	}
}

// mysqlDSN is the MariaDB/MySQL server of the tests (root, no password, by
// default); tests skip without one, and fail under CI=true.
func mysqlDSN(t *testing.T) string {
	dsn := os.Getenv("SEGSYNC_TEST_MYSQL_DSN")
	if dsn == "" {
		dsn = "root@tcp(127.0.0.1:3306)/"
	}
	db, err := sql.Open("mysql", dsn)
	if err == nil {
		err = db.Ping()
		db.Close()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("MariaDB/MySQL at %s is unreachable under CI: %v", dsn, err)
		}
		t.Skipf("no MariaDB/MySQL (%v); set SEGSYNC_TEST_MYSQL_DSN", err)
	}
	return dsn
}

func TestMySQL(t *testing.T) {
	base := mysqlDSN(t)
	name := fmt.Sprintf("segsync_test_%d", time.Now().UnixNano()%1e9)
	user := "bars_" + name[len(name)-6:]
	admin, err := sql.Open("mysql", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, q := range []string{
		"CREATE DATABASE " + name,
		"CREATE TABLE " + name + ".customers (id varchar(20) PRIMARY KEY, n int, d decimal(10,2), ok bit(1), flag tinyint(1), born date, seen datetime(3), note text, missing text)",
		"INSERT INTO " + name + ".customers VALUES ('c1', 7, 12.50, b'1', 1, '1990-02-03', '2024-05-06 07:08:09.500', 'héllo', NULL), ('c2', NULL, 0, b'0', 0, NULL, '2024-05-07 00:00:00', '', NULL)",
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'Pa55word-xyz'", user),
		fmt.Sprintf("GRANT SELECT ON %s.customers TO '%s'@'%%'", name, user),
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP DATABASE " + name)
		_, _ = admin.Exec(fmt.Sprintf("DROP USER '%s'@'%%'", user))
	})
	mc, _ := mysql.ParseDSN(base)
	mc.DBName = name
	dsn := mc.FormatDSN()
	cfg := Config{Kind: KindMySQL, DSN: dsn, Query: "SELECT * FROM customers ORDER BY id"}
	rows, r := readAll(t, cfg, Options{})
	if len(rows) != 2 {
		t.Fatalf("rows: %v", rows)
	}
	want := map[string]string{"id": `"c1"`, "n": "7", "d": "12.50", "ok": "true", "flag": "1", "born": `"1990-02-03"`,
		"seen": `"2024-05-06T07:08:09Z"`, "note": `"héllo"`}
	for k, v := range want {
		if rows[0][k] != v {
			t.Errorf("c1.%s = %s, want %s", k, rows[0][k], v)
		}
	}
	if _, ok := rows[1]["n"]; ok {
		t.Errorf("NULL is not absent: %v", rows[1])
	}
	types := map[string]string{}
	for _, c := range r.Columns() {
		types[c.Name] = c.Type
	}
	if types["d"] != TypeNumber || types["ok"] != TypeBoolean || types["seen"] != TypeDate || types["note"] != TypeString {
		t.Errorf("types: %v", types)
	}
	_, r = readAll(t, cfg, Options{Cursor: "seen"})
	mark := r.Mark()
	if rows, _ := readAll(t, cfg, Options{Cursor: "seen", After: mark}); len(rows) != 0 {
		t.Errorf("past the mark: %v", rows)
	}
	if _, err := admin.Exec("INSERT INTO " + name + ".customers (id, seen) VALUES ('c3', '2024-06-01 00:00:00')"); err != nil {
		t.Fatal(err)
	}
	if rows, _ := readAll(t, cfg, Options{Cursor: "seen", After: mark}); len(rows) != 1 || rows[0]["id"] != `"c3"` {
		t.Errorf("incremental: %v", rows)
	}

	mc.User, mc.Passwd = user, "wrong-Secret-1"
	if msg := mustFail(t, Config{Kind: KindMySQL, DSN: mc.FormatDSN(), Query: "SELECT 1"}, "wrong-Secret-1"); !strings.Contains(msg, "authentication failed") || !strings.Contains(msg, user) {
		t.Errorf("wrong password: %s", msg)
	}
	if msg := mustFail(t, Config{Kind: KindMySQL, DSN: dsn, Query: "SELECT * FROM customers FOR UPDATE"}); msg == "" {
		t.Errorf("write attempt passed")
	}
	if msg := mustFail(t, Config{Kind: KindMySQL, DSN: dsn, Query: "SELECT id FROM customers WHER id = 1"}); !strings.Contains(msg, "syntax") {
		t.Errorf("syntax error: %s", msg)
	}
	if msg := mustFail(t, Config{Kind: KindMySQL, DSN: dsn, Query: "SELECT SLEEP(5) AS s FROM customers", StatementTimeout: 300 * time.Millisecond}); !strings.Contains(msg, "timeout") && !strings.Contains(msg, "interrupted") {
		t.Logf("timeout: %s", msg) // MySQL answers a killed SLEEP with 1 instead of an error
	}
	if msg := mustFail(t, Config{Kind: KindMySQL, DSN: "u:TopSecret99@tcp(127.0.0.1:1)/db?timeout=2s", Query: "SELECT 1"}, "TopSecret99"); !strings.Contains(msg, "refused") {
		t.Errorf("unreachable: %s", msg)
	}
}

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-Secret-42" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/p.csv":
			w.Header().Set("Content-Type", "text/csv")
			fmt.Fprint(w, "id,n,born\nc1,5,2024-01-02\nc2,\"x\n")
		case "/p.ndjson":
			w.Header().Set("Content-Type", "application/x-ndjson")
			fmt.Fprint(w, `{"id":"c1","n":5,"seen":"2024-01-02"}`+"\n"+`{"id":"c2","n":6,"seen":"2024-03-02"}`+"\n")
		default:
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html><body>Login</body></html>")
		}
	}))
	defer srv.Close()
	h := map[string]string{"Authorization": "Bearer tok-Secret-42"}
	rows, _ := readAll(t, Config{Kind: KindHTTP, URL: srv.URL + "/p.csv", Headers: h}, Options{Key: "id"})
	if len(rows) != 2 || rows[0]["n"] != "5" || rows[0]["born"] != `"2024-01-02"` || rows[1]["_err"] == "" {
		t.Errorf("csv rows: %v", rows)
	}
	_, r := readAll(t, Config{Kind: KindHTTP, URL: srv.URL + "/p.ndjson", Headers: h}, Options{Key: "id", Cursor: "seen"})
	if rows, _ := readAll(t, Config{Kind: KindHTTP, URL: srv.URL + "/p.ndjson", Headers: h}, Options{Key: "id", Cursor: "seen", After: r.Mark()}); len(rows) != 0 {
		t.Errorf("ndjson past the mark: %v", rows)
	}
	if msg := mustFail(t, Config{Kind: KindHTTP, URL: srv.URL + "/p.csv?token=abc", Headers: map[string]string{"Authorization": "Bearer nope-Secret"}}, "nope-Secret", "abc"); !strings.Contains(msg, "401") {
		t.Errorf("401: %s", msg)
	}
	if msg := mustFail(t, Config{Kind: KindHTTP, URL: srv.URL + "/page", Headers: h}, "tok-Secret-42"); !strings.Contains(msg, "neither CSV nor NDJSON") {
		t.Errorf("html: %s", msg)
	}
	if msg := mustFail(t, Config{Kind: KindHTTP, URL: srv.URL + "/page", Format: "csv", Headers: h}, "tok-Secret-42"); !strings.Contains(msg, "not a csv file") {
		t.Errorf("html as csv: %s", msg)
	}
}
