package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
