package conformance

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
	"github.com/segsync/segsync/internal/mailchimp/emulator/emulatortest"
)

// needNode finds node and the installed client; under CI a missing piece
// fails the test, locally it skips it.
func needNode(t *testing.T) string {
	t.Helper()
	miss := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format+" (run npm ci in conformance/node)", args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		miss("node is not installed: %v", err)
	}
	if _, err := os.Stat(filepath.Join("node", "node_modules", "@mailchimp", "mailchimp_marketing", "package.json")); err != nil {
		miss("the official Node client is not installed: %v", err)
	}
	return node
}

// TestOfficialNodeClient runs conformance/node/conformance.js against an
// in-process emulator and then checks the emulator's state from Go.
func TestOfficialNodeClient(t *testing.T) {
	node := needNode(t)
	srv := emulatortest.Start(t, emulator.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "conformance.js")
	cmd.Dir = "node"
	cmd.Env = append(os.Environ(), "MAILCHIMP_API_URL="+srv.URL, "MAILCHIMP_API_KEY="+srv.Key())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("node output:\n%s", stdout.String())
	if err != nil {
		t.Fatalf("the official Node client failed against the emulator: %v\n%s", err, stderr.String())
	}

	m := regexp.MustCompile(`(?m)^LIST_ID=(\w+)$`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatal("the script did not print LIST_ID (it did not reach its last step)")
	}
	listID := m[1]
	tests := []struct {
		email      string
		status     string
		compliance bool
		tags       string
	}{
		{"ann@acme.io", "unsubscribed", true, "Early"},
		{"cy@acme.io", "cleaned", true, ""},
		{"dee@acme.io", "archived", false, ""},
	}
	for _, tt := range tests {
		c, err := srv.Contact(listID, tt.email)
		if err != nil {
			t.Errorf("%s: %v", tt.email, err)
			continue
		}
		if c.Status != tt.status || c.Compliance != tt.compliance || strings.Join(c.Tags, ",") != tt.tags {
			t.Errorf("%s = %+v, want status %s compliance %v tags %q", tt.email, c, tt.status, tt.compliance, tt.tags)
		}
	}
	if !srv.Forgotten(listID, "bob@acme.io") {
		t.Error("bob@acme.io was permanently deleted but is not forgotten")
	}
	if n := srv.CallCount("POST /lists/{list_id}"); n < 3 {
		t.Errorf("batch subscribe calls = %d, want at least 3", n)
	}
}
