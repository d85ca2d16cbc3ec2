package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/httpapi"
	"github.com/segsync/segsync/internal/store"
	"github.com/segsync/segsync/internal/store/dbtest"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// apiServer serves the REST API over a fresh SQLite store.
func apiServer(t *testing.T) (*httptest.Server, *sqldb.DB) {
	t.Helper()
	db := dbtest.SQLite(t)
	ts := httptest.NewServer(httpapi.New(httpapi.Deps{Store: db, Loopback: true}).Handler())
	t.Cleanup(ts.Close)
	return ts, db
}

// runCLI runs one command line against the server at url and returns its
// exit code, stdout and stderr. SEGSYNC_SERVER points at the server, as a
// user's environment would.
func runCLI(t *testing.T, url, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := map[string]string{"SEGSYNC_SERVER": url}
	code := Run(context.Background(), args, IO{
		Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] },
	})
	return code, stdout.String(), stderr.String()
}

func seed(t *testing.T, db *sqldb.DB, profiles map[string]string) {
	t.Helper()
	var patches []store.ProfilePatch
	for id, attrs := range profiles {
		patches = append(patches, store.ProfilePatch{CustomerID: id, Attrs: attrs})
	}
	if _, err := db.UpsertProfiles(context.Background(), patches); err != nil {
		t.Fatalf("seeding: %v", err)
	}
}

func TestProfilesCommands(t *testing.T) {
	t.Parallel()
	ts, db := apiServer(t)
	seed(t, db, map[string]string{
		"c1": `{"age":31,"email":"ann@example.org"}`,
		"c2": `{"email":"bob@example.org"}`,
		"c3": `{"email":"cy@example.org"}`,
	})
	tests := []struct {
		args       []string
		wantCode   int
		wantOut    []string // substrings of stdout
		wantErrOut string   // substring of stderr
	}{
		{[]string{"profiles", "list"}, 0, []string{"CUSTOMER_ID", "c1", "c3", "ann@example.org"}, ""},
		{[]string{"profiles", "list", "--limit", "1"}, 0, []string{"c1", "(more: --cursor "}, ""},
		{[]string{"profiles", "list", "--limit", "1", "--all"}, 0, []string{"c1", "c2", "c3"}, ""},
		{[]string{"profiles", "list", "--json"}, 0, []string{`"customer_id": "c2"`}, ""},
		{[]string{"profiles", "get", "c1"}, 0, []string{`"age": 31`}, ""},
		{[]string{"profiles", "attributes"}, 0, []string{"email", "string", "3"}, ""},
		{[]string{"profiles", "delete", "c2"}, 0, []string{"deleted profile c2"}, ""},
		{[]string{"profiles", "get", "c2"}, 1, nil, "404"},
		{[]string{"profiles", "get"}, 2, nil, "missing CUSTOMER_ID"},
		{[]string{"profiles", "list", "--limit", "5000"}, 1, nil, "limit: must be"},
		{[]string{"profiles", "frobnicate"}, 2, nil, "unknown subcommand"},
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
	}
}

func TestClientSendsToken(t *testing.T) {
	t.Parallel()
	var got string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"type":"about:blank","title":"Forbidden","status":403,"detail":"viewers change nothing"}`))
	}))
	defer ts.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	env := map[string]string{"SEGSYNC_SERVER": ts.URL, "SEGSYNC_TOKEN_FILE": tokenFile}
	code := Run(context.Background(), []string{"segments", "delete", "3"}, IO{
		Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] },
	})
	if code != 1 || got != "Bearer s3cret" {
		t.Fatalf("exit %d, Authorization %q", code, got)
	}
	if !strings.Contains(stderr.String(), "403 Forbidden: viewers change nothing") {
		t.Fatalf("stderr %q does not explain the problem", stderr.String())
	}
}

func TestSegmentsCommands(t *testing.T) {
	t.Parallel()
	ts, db := apiServer(t)
	seed(t, db, map[string]string{
		"c1": `{"age":20,"email":"a@example.org"}`,
		"c2": `{"age":40,"email":"b@example.org"}`,
		"c3": `{"age":60,"email":"c@example.org"}`,
	})
	ruleFile := filepath.Join(t.TempDir(), "rule.json")
	if err := os.WriteFile(ruleFile, []byte(`{"attribute":"age","op":"gt","value":30}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args       []string
		stdin      string
		wantCode   int
		wantOut    []string
		wantErrOut string
	}{
		{[]string{"segments", "create", "--name", "older", "--rule", "@" + ruleFile}, "", 0, []string{`created segment 1 "older" with 2 members`}, ""},
		{[]string{"segments", "create", "--name", "all", "--rule", `{"all":[]}`, "--description", "everyone"}, "", 0, []string{"with 3 members"}, ""},
		{[]string{"segments", "create", "--name", "young", "--rule", "@-"}, `{"attribute":"age","op":"lt","value":30}`, 0, []string{"with 1 member\n"}, ""},
		{[]string{"segments", "create", "--name", "bad", "--rule", `{"all":[{"attribute":"age","op":"like","value":1}]}`}, "", 1, nil, "rule.all[0].op"},
		{[]string{"segments", "create", "--name", "x"}, "", 2, nil, "--name and --rule are required"},
		{[]string{"segments", "list"}, "", 0, []string{"older", "all", "young", "MEMBERS"}, ""},
		{[]string{"segments", "list", "--json"}, "", 0, []string{`"segments": [`, `"created_at": "`, `"member_count": 2`}, ""},
		{[]string{"segments", "get", "1"}, "", 0, []string{`"member_count": 2`}, ""},
		{[]string{"segments", "members", "1"}, "", 0, []string{"c2", "c3"}, ""},
		{[]string{"segments", "update", "1", "--rule", `{"attribute":"age","op":"gt","value":50}`}, "", 0, []string{"updated segment 1 \"older\": 1 member\n"}, ""},
		{[]string{"segments", "preview", "--rule", `{"attribute":"email","op":"contains","value":"B@"}`}, "", 0, []string{"1 profile match", "c2"}, ""},
		{[]string{"segments", "delete", "2"}, "", 0, []string{"deleted segment 2"}, ""},
		{[]string{"segments", "get", "2"}, "", 1, nil, "404"},
		{[]string{"segments", "get", "two"}, "", 1, nil, "not a positive whole number"},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(t, ts.URL, tt.stdin, tt.args...)
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
	}
}

func TestProfilesImportCommand(t *testing.T) {
	t.Parallel()
	ts, _ := apiServer(t)
	dir := t.TempDir()
	csvFile := filepath.Join(dir, "people.csv")
	csv := "customer_id,email,age\nc1,a@example.org,20\nc2,b@example.org\n,c@example.org,40\nc3,d@example.org,60\n"
	if err := os.WriteFile(csvFile, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	ndFile := filepath.Join(dir, "people.data")
	if err := os.WriteFile(ndFile, []byte(`{"customer_id":"c9","email":"z@example.org"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gzFile := filepath.Join(dir, "more.csv.gz")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("customer_id,email\nz1,z@example.org\n"))
	zw.Close()
	if err := os.WriteFile(gzFile, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args       []string
		stdin      string
		wantCode   int
		wantOut    []string
		wantErrOut string
	}{
		{[]string{"profiles", "import", csvFile}, "", 0, []string{"received 4, imported 2, updated 0, unchanged 0, rejected 2", "line 3: ", "line 4: "}, ""},
		{[]string{"profiles", "import", csvFile, "--errors", "1"}, "", 0, []string{"unchanged 2, rejected 2", "line 3: ", "… and 1 more"}, ""},
		{[]string{"profiles", "import", "--format", "ndjson", ndFile, "--mode", "replace"}, "", 0, []string{"imported 1", "deleted 2"}, ""},
		{[]string{"profiles", "import", ndFile}, "", 1, nil, "--format csv"},
		{[]string{"profiles", "import", csvFile, "--mode", "merge"}, "", 1, nil, "upsert or replace"},
		{[]string{"profiles", "import", filepath.Join(dir, "missing.csv")}, "", 1, nil, "no such file"},
		{[]string{"profiles", "import", csvFile, "--key", "email"}, "", 0, []string{"received 4"}, ""},
		{[]string{"profiles", "import", gzFile}, "", 0, []string{"received 1, imported 1"}, ""},
		{[]string{"profiles", "import", "-", "--format", "ndjson", "--key", "id"}, `{"id":"s1"}` + "\n", 0, []string{"received 1, imported 1"}, ""},
		{[]string{"profiles", "import", "-"}, "", 1, nil, "--format csv"},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(t, ts.URL, tt.stdin, tt.args...)
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
	}
}
