package persistence

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	hermes "github.com/hermesd/hermesd"
)

// TestBoundsBackfilledOnOpen: a file written before the bounds existed
// gets its conversation order and idempotency totals on open.
func TestBoundsBackfilledOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api_server.db")
	copyFixture(t, path)
	s := openAt(t, path, Options{MaxConversations: 2, MaxIdempotencyEntries: 1})
	apply(t, s, PutConversation(&Conversation{ID: "conv_new"}), PutIdempotency("idem-2", &IdemEntry{Fingerprint: "g", Status: 200}))
	if n := countKeys(t, s, bucketConvs); n != 2 {
		t.Errorf("%d conversations after adding one to the fixture's two with a bound of 2", n)
	}
	if n := countKeys(t, s, bucketIdem); n != 1 {
		t.Errorf("%d idempotency entries with a bound of 1", n)
	}
}

// TestFileGrowthPlateaus churns conversations carrying 100 KB of items and
// idempotency entries of 20 KB far past their bounds: the file stops
// growing once the bounds are reached (issue 10.9 saw 221 MB for 3,300
// conversations and 102 MB for 5,000 keys).
func TestFileGrowthPlateaus(t *testing.T) {
	if testing.Short() {
		t.Skip("writes ~150 MB")
	}
	s := newStore(t, Options{MaxConversations: 100, MaxIdempotencyEntries: 100, MaxPendingBytes: 200 << 10})
	items := []hermes.Message{{Role: hermes.RoleUser, Content: strings.Repeat("i", 100<<10)}}
	body := []byte(strings.Repeat("b", 20<<10))
	size := func() int64 { st, _ := s.Stats(); return st.FileBytes }
	var at []int64
	for round := range 10 {
		for i := range 100 {
			n := round*100 + i
			apply(t, s,
				PutConversation(&Conversation{ID: fmt.Sprintf("conv_%d", n), Pending: items}),
				PutIdempotency(fmt.Sprintf("key-%d", n), &IdemEntry{Fingerprint: "f", Status: 200, Body: body}),
				PutIdempotency(fmt.Sprintf("key-%d-b", n), &IdemEntry{Fingerprint: "f", Status: 200, Body: body}),
			)
		}
		at = append(at, size())
	}
	t.Logf("file size after each 100 conversations (100 KB items) and 200 idempotency entries (20 KB): %v MiB", mib(at))
	if countKeys(t, s, bucketConvs) != 100 || countKeys(t, s, bucketIdem) != 100 {
		t.Fatalf("bounds not kept: %d conversations, %d entries", countKeys(t, s, bucketConvs), countKeys(t, s, bucketIdem))
	}
	if at[9] > at[2]*3/2 {
		t.Errorf("file grew from %d to %d bytes between rounds 3 and 10: no plateau", at[2], at[9])
	}
}

func mib(xs []int64) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%.1f", float64(x)/(1<<20))
	}
	return out
}
