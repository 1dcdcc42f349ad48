package persistence

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
)

func hasConversation(t *testing.T, s *Store, id string) bool {
	t.Helper()
	_, err := s.Conversation(id)
	return found(t, err)
}

// TestConversationsBoundedByCount: beyond MaxConversations the least
// recently used conversation goes, with its pending items; a turn, a
// change or a new record counts as use; the order survives a restart.
func TestConversationsBoundedByCount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "convs.db")
	opts := Options{MaxConversations: 3}
	s := openAt(t, path, opts)
	pending := []hermes.Message{{Role: hermes.RoleUser, Content: "kept for later"}}
	apply(t, s, PutConversation(&Conversation{ID: "A", Pending: pending}))
	apply(t, s, PutConversation(&Conversation{ID: "B", Pending: pending}))
	apply(t, s, PutResponse(resp("c1", "", "C"))) // a turn creates C
	apply(t, s, UpdateConversation("A", func(c *Conversation) { c.Metadata = map[string]string{"k": "v"} }))
	apply(t, s, PutConversation(&Conversation{ID: "D"}))
	if hasConversation(t, s, "B") {
		t.Fatal("B, the least recently used, must be gone")
	}
	for _, id := range []string{"A", "C", "D"} {
		if !hasConversation(t, s, id) {
			t.Fatalf("%s evicted, want kept", id)
		}
	}
	// A turn on C makes A the victim; deleting D frees a slot.
	apply(t, s, PutResponse(resp("c2", "c1", "C")))
	apply(t, s, DeleteConversation("D"))
	apply(t, s, PutConversation(&Conversation{ID: "E"}))
	if !hasConversation(t, s, "A") || !hasConversation(t, s, "C") || !hasConversation(t, s, "E") {
		t.Fatal("deleting D must have made room for E")
	}
	s.Close()

	s = openAt(t, path, opts)
	apply(t, s, PutConversation(&Conversation{ID: "F"}))
	if hasConversation(t, s, "A") || !hasConversation(t, s, "C") {
		t.Error("after a restart the victim should still be A, the least recently used")
	}
	// B's items went with it: a new B starts empty.
	apply(t, s, PutConversation(&Conversation{ID: "B"}))
	if c, _ := s.Conversation("B"); len(c.Pending) != 0 {
		t.Errorf("a new B inherited %d pending items", len(c.Pending))
	}
	if n := countKeys(t, s, bucketConvs); n != 3 {
		t.Errorf("%d conversation records, want 3", n)
	}
}

// TestIdempotencyBounded: entries beyond MaxIdempotencyEntries or
// MaxIdempotencyBytes go oldest first; replacing an entry does not count
// twice; the totals survive a restart.
func TestIdempotencyBounded(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "idem.db")
	opts := Options{Now: clk.Now, MaxIdempotencyEntries: 5, MaxIdempotencyBytes: 1 << 20}
	s := openAt(t, path, opts)
	put := func(s *Store, key string, size int) {
		t.Helper()
		clk.Add(time.Millisecond) // later entries expire later
		apply(t, s, PutIdempotency(key, &IdemEntry{Fingerprint: "f", Status: 200, Body: []byte(strings.Repeat("b", size))}))
	}
	for i := range 8 {
		put(s, fmt.Sprintf("k%d", i), 10)
	}
	put(s, "k7", 10) // a replacement, not a ninth entry
	for i := range 8 {
		_, ok, err := s.Idempotency(fmt.Sprintf("k%d", i))
		if err != nil || ok != (i >= 3) {
			t.Errorf("k%d kept = %v (%v), want %v", i, ok, err, i >= 3)
		}
	}
	if n := countKeys(t, s, bucketIdem); n != 5 {
		t.Errorf("%d entries, want 5", n)
	}
	s.Close()

	// By bytes: with room for about three 1 KB entries, the newest three stay.
	opts.MaxIdempotencyEntries, opts.MaxIdempotencyBytes = 100, 3500
	s = openAt(t, path, opts)
	for i := range 6 {
		put(s, fmt.Sprintf("big%d", i), 1000)
	}
	kept := 0
	for i := range 6 {
		if _, ok, _ := s.Idempotency(fmt.Sprintf("big%d", i)); ok {
			kept++
			if i < 3 {
				t.Errorf("big%d kept while newer ones went", i)
			}
		}
	}
	if kept == 0 || countKeys(t, s, bucketIdem) != kept {
		t.Errorf("%d big entries kept, %d entries in all", kept, countKeys(t, s, bucketIdem))
	}
}

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
