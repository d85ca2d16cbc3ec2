package syncer

import "testing"

// SetMaxCachedMembers bounds an incremental run's member cache for the
// rest of test t.
func SetMaxCachedMembers(t testing.TB, n int) {
	old := maxCachedMembers
	maxCachedMembers = n
	t.Cleanup(func() { maxCachedMembers = old })
}
