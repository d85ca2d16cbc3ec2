package cli

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/segsync/segsync/internal/store/dbtest"
)

func TestWorkerRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"sqlite", []string{"--data", t.TempDir()}, 1, "worker needs PostgreSQL"},
		{"workers out of range", []string{"--database", "postgres://x/y", "--workers", "0"}, 1, "workers: 0 is outside 1-32"},
		{"arguments", []string{"extra"}, 2, "worker takes no arguments"},
		{"bad flag", []string{"--nope"}, 2, "flag provided but not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr syncBuffer
			streams := IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }}
			if code := Run(context.Background(), append([]string{"worker"}, tc.args...), streams); code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr %q lacks %q", stderr.String(), tc.want)
			}
		})
	}
}

// TestWorkerStartsAndStops runs the worker on PostgreSQL until its context
// ends; it must take a shared limiter and stop cleanly.
func TestWorkerStartsAndStops(t *testing.T) {
	url := dbtest.PostgresURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	env := map[string]string{"SEGSYNC_SECRET_KEY": strings.Repeat("ab", 32)}
	streams := IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Getenv: func(k string) string { return env[k] }}
	done := make(chan int, 1)
	go func() { done <- Run(ctx, []string{"worker", "--database", url, "--max-conns", "4"}, streams) }()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(stderr.String(), "run workers started") {
		select {
		case code := <-done:
			t.Fatalf("worker exited with %d: %s", code, stderr.String())
		case <-deadline:
			t.Fatalf("worker did not start: %s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("worker exited with %d: %s", code, stderr.String())
	}
	for _, want := range []string{"shared through the database", "max_conns=4", "msg=stopped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q: %s", want, stderr.String())
		}
	}
}
