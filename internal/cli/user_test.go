package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/store/sqlite"
)

func runStoreCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func TestUserAndTokenCreate(t *testing.T) {
	dir := t.TempDir()
	steps := []struct {
		stdin    string
		args     []string
		wantCode int
	}{
		{"a strong password\n", []string{"user", "create", "--email", "Ann@Example.org", "--role", "admin", "--password-stdin", "--data", dir}, 0},
		{"", []string{"user", "create", "--email", "ann@example.org", "--role", "viewer", "--data", dir}, 1}, // exists
		{"", []string{"user", "create", "--email", "bob@example.org", "--role", "owner", "--data", dir}, 1},  // bad role
		{"short\n", []string{"user", "create", "--email", "c@example.org", "--role", "viewer", "--password-stdin", "--data", dir}, 1},
		{"", []string{"user", "create", "--role", "viewer", "--data", dir}, 2},                                    // no email
		{"", []string{"user", "create", "--email", "bot@example.org", "--role", "contributor", "--data", dir}, 0}, // token-only user
		{"", []string{"token", "create", "--email", "nobody@example.org", "--data", dir}, 1},
	}
	for _, s := range steps {
		if code, out, errs := runStoreCLI(t, s.stdin, s.args...); code != s.wantCode {
			t.Fatalf("%v: exit %d, want %d\nstdout %s\nstderr %s", s.args, code, s.wantCode, out, errs)
		}
	}
	code, out, errs := runStoreCLI(t, "", "token", "create", "--email", "ann@example.org", "--name", "ci", "--data", dir)
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, auth.TokenPrefix) || strings.ContainsAny(token, " \t") {
		t.Fatalf("last line of stdout %q is not a token alone", token)
	}
	if strings.Contains(errs, token) {
		t.Fatal("the token also went to stderr")
	}

	db, err := sqlite.Open(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := auth.NewService(db, nil, nil, auth.Options{})
	p, err := svc.AuthenticateToken(context.Background(), token)
	if err != nil || p.Email != "ann@example.org" || p.Role != auth.Admin {
		t.Fatalf("the printed token authenticates as %+v, %v", p, err)
	}
	if _, err := svc.Login(context.Background(), "ann@example.org", "a strong password", "127.0.0.1", ""); err != nil {
		t.Fatalf("password from stdin: %v", err)
	}
	// A forgotten password is reset from the shell; a disabled user's token stops working.
	if code, out, errs := runStoreCLI(t, "another strong one\n", "user", "update", "--email", "ann@example.org", "--password-stdin", "--data", dir); code != 0 {
		t.Fatalf("user update: %d %s %s", code, out, errs)
	}
	if _, err := svc.Login(context.Background(), "ann@example.org", "another strong one", "127.0.0.1", ""); err != nil {
		t.Fatalf("after the password reset: %v", err)
	}
	if code, _, errs := runStoreCLI(t, "", "user", "update", "--email", "ann@example.org", "--disabled", "true", "--data", dir); code != 0 {
		t.Fatalf("disable: %s", errs)
	}
	if _, err := svc.AuthenticateToken(context.Background(), token); err == nil {
		t.Fatal("a disabled user's token still works")
	}
	if code, _, _ := runStoreCLI(t, "", "user", "update", "--email", "ann@example.org", "--data", dir); code != 1 {
		t.Fatalf("update without changes: exit %d", code)
	}
	code, out, _ = runStoreCLI(t, "", "user", "list", "--data", dir)
	if code != 0 || !strings.Contains(out, "bot@example.org") || !strings.Contains(out, "contributor") {
		t.Fatalf("user list: %d %s", code, out)
	}
}
