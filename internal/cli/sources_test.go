package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/httpapi"
	"github.com/segsync/segsync/internal/source"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// TestSourcesCommands drives the sources commands against the real API with
// an http source served by the test: add with a secret header, Test, edit
// only what the flags name (the secret is kept), queue a pull, delete.
func TestSourcesCommands(t *testing.T) {
	t.Parallel()
	file := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-Secret-9" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/csv")
		fmt.Fprint(w, "customer_id,points\nc1,120\nc2,5\n")
	}))
	defer file.Close()
	db := dbtest.SQLite(t)
	vault, err := connection.NewVault(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(httpapi.New(httpapi.Deps{Store: db, Loopback: true, Sources: source.NewService(db, vault, nil, nil)}).Handler())
	defer ts.Close()

	tests := []struct {
		args       []string
		wantCode   int
		wantOut    []string
		wantErrOut string
	}{
		{[]string{"sources", "add", "--name", "Loyalty", "--kind", "http", "--url", file.URL + "/l.csv", "--key", "customer_id",
			"--header", "Authorization: Bearer tok-Secret-9", "--rename", "points=loyalty_points", "--priority", "20"}, 0, []string{`source 2 "Loyalty" created (http, full, schedule refresh)`}, ""},
		{[]string{"sources", "add", "--name", "NoKey", "--kind", "http", "--url", file.URL}, 1, nil, "key"},
		{[]string{"sources", "list"}, 0, []string{"LAST PULL", "Loyalty", "http"}, ""},
		{[]string{"sources", "get", "2"}, 0, []string{`"headers": [`, `"Authorization"`, `"loyalty_points"`}, ""},
		{[]string{"sources", "test", "2"}, 0, []string{`"name": "customer_id"`, `"points"`, `"c2"`}, ""},
		{[]string{"sources", "edit", "2", "--priority", "5", "--schedule", "off"}, 0, []string{`source 2 "Loyalty" saved (http, full, schedule off, priority 5)`}, ""},
		// The header's value was kept by the edit: the test still passes the URL's check.
		{[]string{"sources", "test", "2"}, 0, []string{`"c1"`}, ""},
		{[]string{"sources", "get", "2"}, 0, []string{`"priority": 5`, `"loyalty_points"`}, ""},
		{[]string{"sources", "edit", "2", "--mode", "sideways"}, 1, nil, "mode"},
		{[]string{"sources", "edit"}, 2, nil, "missing ID"},
		{[]string{"sources", "pull", "2"}, 0, []string{"pull 1 queued"}, ""},
		{[]string{"sources", "pulls", "2"}, 0, []string{"queued"}, ""},
		{[]string{"sources", "delete", "2"}, 0, []string{"source 2 deleted"}, ""},
		{[]string{"sources", "get", "2"}, 1, nil, "404"},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(t, ts.URL, "", tt.args...)
		if code != tt.wantCode {
			t.Errorf("%v: exit %d, want %d; stdout %s stderr %s", tt.args, code, tt.wantCode, out, errOut)
			continue
		}
		for _, w := range tt.wantOut {
			if !strings.Contains(out, w) {
				t.Errorf("%v: stdout lacks %q:\n%s", tt.args, w, out)
			}
		}
		if !strings.Contains(errOut, tt.wantErrOut) {
			t.Errorf("%v: stderr lacks %q:\n%s", tt.args, tt.wantErrOut, errOut)
		}
		if strings.Contains(out+errOut, "tok-Secret-9") {
			t.Errorf("%v: the secret header value is shown", tt.args)
		}
	}
}

// TestSourcesPullAndRefreshWait runs segsync serve (its worker pulls) and
// waits on a pull and on a system refresh from the command line; the
// refresh's summary names the pull that failed.
func TestSourcesPullAndRefreshWait(t *testing.T) {
	file := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gone.csv" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/csv")
		fmt.Fprint(w, "customer_id,points\nc1,120\nc2,5\nc3,x7\n")
	}))
	defer file.Close()
	dir := t.TempDir()
	if code, _, errs := runStoreCLI(t, "", "user", "create", "--email", "ann@example.org", "--role", "admin", "--data", dir); code != 0 {
		t.Fatalf("user create: %s", errs)
	}
	code, out, errs := runStoreCLI(t, "", "token", "create", "--email", "ann@example.org", "--name", "cli", "--data", dir)
	if code != 0 {
		t.Fatalf("token create: %s", errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(lines[len(lines)-1]), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	streams := IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--data", dir}, streams)
	}()
	defer func() { cancel(); <-done }()
	addrRE := regexp.MustCompile(`msg=listening addr=(http://127\.0\.0\.1:\d+)`)
	var base string
	for base == "" {
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d before listening: %s", code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		}
	}
	cli := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		env := map[string]string{"SEGSYNC_SERVER": base, "SEGSYNC_TOKEN_FILE": tokenFile}
		code := Run(ctx, args, IO{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }})
		return code, stdout.String(), stderr.String()
	}
	for _, args := range [][]string{
		{"sources", "add", "--name", "Loyalty", "--kind", "http", "--url", file.URL + "/l.csv", "--key", "customer_id"},
		{"sources", "add", "--name", "Broken", "--kind", "http", "--url", file.URL + "/gone.csv", "--key", "customer_id", "--format", "csv"},
	} {
		if code, out, errOut := cli(args...); code != 0 {
			t.Fatalf("%v: exit %d: %s %s", args, code, out, errOut)
		}
	}
	code, out, errOut := cli("sources", "pull", "2", "--wait")
	if code != 0 || !strings.Contains(out, "pull 1 of source 2: succeeded — received 3, new 3") {
		t.Fatalf("pull --wait: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli("refresh", "--wait")
	if code != 0 || !strings.Contains(out, "refresh 1 ") || !strings.Contains(out, "failed pulls:") || !strings.Contains(out, "Broken") ||
		!strings.Contains(out, "of source 2: succeeded") {
		t.Fatalf("refresh --wait: exit %d\n%s%s", code, out, errOut)
	}
	t.Log(out)
}
