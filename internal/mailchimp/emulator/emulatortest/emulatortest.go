// Package emulatortest starts the Mailchimp emulator for a test: kept apart
// from package emulator so that the production binary does not link the
// testing package.
package emulatortest

import (
	"testing"

	"github.com/segsync/segsync/internal/mailchimp/emulator"
)

// Start starts an emulator for a test and closes it when the test ends.
func Start(t testing.TB, opts emulator.Options) *emulator.Server {
	t.Helper()
	s, err := emulator.Start(opts)
	if err != nil {
		t.Fatalf("starting the Mailchimp emulator: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
