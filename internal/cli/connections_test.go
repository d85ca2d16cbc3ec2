package cli

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/config"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/httpapi"
	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/store/dbtest"
)

// TestConnectionsCommands drives the connections commands against a server
// wired as serve wires it (first admin from the config, key file in the data
// directory) and the emulator.
func TestConnectionsCommands(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key := emulator.GenerateKey("us6")
	emu := emulator.New(emulator.Options{APIKeys: []string{key}})
	emuTS := httptest.NewServer(emu.Handler())
	defer emuTS.Close()
	if _, err := emu.CreateList(key, "Customers"); err != nil {
		t.Fatal(err)
	}

	db := dbtest.SQLite(t)
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.AdminEmail, cfg.AdminPassword = "root@example.org", "first admin password"
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sec, err := newSecurity(ctx, cfg, db, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, connection.KeyFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("vault key file: %v", err)
	}
	ts := httptest.NewServer(httpapi.New(httpapi.Deps{Store: db, Log: log, Auth: sec.Auth, Connections: sec.Connections, Audit: sec.Audit}).Handler())
	defer ts.Close()
	admin, err := sec.Auth.UserByEmail(ctx, auth.SystemPrincipal, "root@example.org")
	if err != nil {
		t.Fatalf("the first admin was not created: %v", err)
	}
	token, _, err := sec.Auth.CreateToken(ctx, auth.SystemPrincipal, admin.ID, "cli")
	if err != nil {
		t.Fatal(err)
	}

	var all bytes.Buffer
	run := func(stdin string, args ...string) (int, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		env := map[string]string{"SEGSYNC_SERVER": ts.URL, "SEGSYNC_TOKEN": token}
		code := Run(ctx, args, IO{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }})
		all.WriteString(stdout.String() + stderr.String())
		return code, stdout.String() + stderr.String()
	}
	base := emuTS.URL + "/3.0"
	if code, out := run(key+"\n", "connections", "create", "--name", "Main", "--api-key-stdin", "--api-base-url", base); code != 1 || !strings.Contains(out, "privacy_consent") {
		t.Fatalf("create without consent: %d %s", code, out)
	}
	code, out := run(key+"\n", "connections", "create", "--name", "Main", "--privacy-consent", "--api-key-stdin", "--api-base-url", base)
	if code != 0 || !strings.HasPrefix(out, "1\n") {
		t.Fatalf("create: %d %s", code, out)
	}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"connections", "list"}, "Emulated Account 1"},
		{[]string{"connections", "get", "1"}, `"export_user": "root@example.org"`},
		{[]string{"connections", "update", "1", "--name", "Renamed", "--allow-contributors", "true"}, `"allow_contributors": true`},
		{[]string{"connections", "test", "1"}, "ok: Mailchimp account"},
		{[]string{"connections", "audiences", "1"}, "Customers"},
		{[]string{"connections", "delete", "1"}, "deleted connection 1"},
	}
	for _, s := range steps {
		if code, out := run("", s.args...); code != 0 || !strings.Contains(out, s.want) {
			t.Errorf("%v: exit %d, output %s; want %q", s.args, code, out, s.want)
		}
	}
	hexPart, _, _ := strings.Cut(key, "-")
	if strings.Contains(all.String(), hexPart) || strings.Contains(logs.String(), hexPart) {
		t.Fatal("the API key appears in the commands' output or the server log")
	}
}
