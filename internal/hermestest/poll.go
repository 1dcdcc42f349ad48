package hermestest

import (
	"testing"
	"time"
)

// Timeout bounds every wait of this package: long enough for a loaded
// 2-core machine under -race, short enough that a hang fails the test
// rather than the suite.
const Timeout = 20 * time.Second

// Eventually polls cond until it holds, failing the test with what when it
// does not within Timeout. It is for states no event announces (a record
// stored, a goroutine gone); where a channel or a response says it, wait on
// that instead.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", Timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
