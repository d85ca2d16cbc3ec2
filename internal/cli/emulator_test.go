package cli

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects output written from the command's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestEmulatorCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	io := IO{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"emulator", "--listen", "127.0.0.1:0",
			"--api-key", "0123456789abcdef0123456789abcdef-us9", "--api-key", "fedcba9876543210fedcba9876543210-us2"}, io)
	}()
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if lines = strings.Split(strings.TrimSpace(stdout.String()), "\n"); len(lines) >= 3 {
			break
		}
	}
	if len(lines) != 3 {
		t.Fatalf("stdout = %q, stderr = %q", stdout.String(), stderr.String())
	}
	url, ok := strings.CutPrefix(lines[0], "MAILCHIMP_API_URL=")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/3.0") {
		t.Fatalf("first line = %q", lines[0])
	}
	if lines[1] != "MAILCHIMP_API_KEY=0123456789abcdef0123456789abcdef-us9" || lines[2] != "MAILCHIMP_API_KEY=fedcba9876543210fedcba9876543210-us2" {
		t.Fatalf("key lines = %q", lines[1:])
	}
	for _, tt := range []struct {
		key  string
		want int
	}{{"fedcba9876543210fedcba9876543210-us2", 200}, {"nope-us1", 401}} {
		req, _ := http.NewRequest("GET", url+"/ping", nil)
		req.SetBasicAuth("any", tt.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("ping with %s: %d, want %d", tt.key, resp.StatusCode, tt.want)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d; stderr %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the emulator did not stop when cancelled")
	}
}

func TestEmulatorCommandRefusesBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"emulator", "--fail-rate", "1.5"}, 1},
		{[]string{"emulator", "--max-conns", "0"}, 1},
		{[]string{"emulator", "--api-key", "nodatacenter"}, 2},
		{[]string{"emulator", "extra"}, 2},
	}
	for _, tt := range tests {
		var stdout, stderr lockedBuffer
		io := IO{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
		if code := Run(context.Background(), tt.args, io); code != tt.code {
			t.Errorf("%v: exit %d, want %d (%s)", tt.args, code, tt.code, stderr.String())
		}
		if stdout.String() != "" {
			t.Errorf("%v: printed %q on stdout", tt.args, stdout.String())
		}
	}
}
