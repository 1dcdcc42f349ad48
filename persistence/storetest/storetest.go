// Package storetest is the contract every implementation of the response
// store keeps (the bbolt store, the PostgreSQL store): one suite of
// behaviours, run by each implementation's tests against real storage.
package storetest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// Store is what the suite drives: the runtime's store interface and Close.
type Store interface {
	Response(id string) (*hermes.StoredResponse, error)
	ResponseHead(id string) (*hermes.StoredResponse, error)
	Transcript(id string) ([]hermes.Message, error)
	Conversation(id string) (*hermes.Conversation, error)
	Idempotency(key string) (*hermes.IdempotencyEntry, bool, error)
	Apply(ops []persistence.Op) error
	Len() int
	Unfinished() ([]string, error)
	Close() error
}

// Backend is one implementation under test.
type Backend struct {
	// Storage makes new, empty storage for one test and returns how to
	// open a store on it; opening again after Close is a restart.
	Storage func(t *testing.T) (open func(t *testing.T, opts persistence.Options) Store)
	// Items counts the item records kept (the items-once layout), failing
	// the test where the backend finds its layout inconsistent;
	// IdempotencyRecords the idempotency entries, expired ones included.
	Items              func(t *testing.T, s Store) int
	IdempotencyRecords func(t *testing.T, s Store) int
}

// Run runs the whole contract against b, one parallel subtest per
// behaviour.
func Run(t *testing.T, b Backend) {
	for _, c := range []struct {
		name string
		f    func(*testing.T, Backend)
	}{
		{"RoundTrip", roundTrip},
		{"LRUEviction", lruEviction},
		{"ConversationNeverDangles", conversationNeverDangles},
		{"PutConversationRejectsForeignLatest", foreignLatest},
		{"DeleteConversation", deleteConversation},
		{"UpdateConversationSeesCommittedState", updateConversation},
		{"IdempotencyTTL", idempotencyTTL},
		{"IdempotencyPurgeIsBounded", idempotencyPurgeBounded},
		{"IdempotencyBounded", idempotencyBounded},
		{"ConversationsBoundedByCount", conversationsBounded},
		{"PendingItemsBoundedByBytes", pendingBounded},
		{"RestartKeepsEverything", restart},
		{"FailedApplyWritesNothing", failedApply},
		{"ApplyAfterClose", applyAfterClose},
		{"ItemsStoredOnce", itemsStoredOnce},
		{"BranchingSharesPrefix", branching},
		{"ParentGoneKeepsHistoryInline", parentGone},
		{"SplicePointsAtKeptTurns", splice},
		{"ImagesReadBackWhole", imagesReadBack},
		{"ReplaceUnderNewParent", replaceUnderNewParent},
		{"EvictionChurnBoundsItems", evictionChurn},
		{"Unfinished", unfinished},
		{"ConcurrentReadersDuringApply", concurrentReaders},
		{"HostileIDs", hostileIDs},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Each behaviour has storage of its own: they overlap their
			// waits on the disk or the database.
			t.Parallel()
			c.f(t, b)
		})
	}
}

// clock is an injectable time source, safe for the race detector.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (b Backend) open(t *testing.T, opts persistence.Options) Store {
	t.Helper()
	return b.Storage(t)(t, opts)
}

func apply(t *testing.T, s Store, ops ...persistence.Op) {
	t.Helper()
	if err := s.Apply(ops); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// resp builds a response continuing prev in conversation conv.
func resp(id, prev, conv string) *hermes.StoredResponse {
	return &hermes.StoredResponse{
		ID:           id,
		Previous:     prev,
		Parent:       prev,
		Conversation: conv,
		Status:       hermes.StatusCompleted,
		Created:      time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Input:        []hermes.Message{{Role: hermes.RoleUser, Content: "question for " + id}},
		Output:       []hermes.Message{{Role: hermes.RoleAssistant, Content: "answer from " + id}},
	}
}

func put(r *hermes.StoredResponse) persistence.Op { return persistence.PutResponse(r) }

func wantCode(t *testing.T, err error, code string) *hermes.Error {
	t.Helper()
	var he *hermes.Error
	if !errors.As(err, &he) {
		t.Fatalf("error = %v, want *hermes.Error with code %s", err, code)
	}
	if he.Code != code {
		t.Fatalf("error code = %s (%v), want %s", he.Code, err, code)
	}
	return he
}

// found is true for no error, false for a not-found error; any other error
// fails the test.
func found(t *testing.T, err error) bool {
	t.Helper()
	if err == nil {
		return true
	}
	wantCode(t, err, hermes.ENotFound)
	return false
}

func has(t *testing.T, s Store, id string) bool {
	t.Helper()
	_, err := s.Response(id)
	return found(t, err)
}

func hasConversation(t *testing.T, s Store, id string) bool {
	t.Helper()
	_, err := s.Conversation(id)
	return found(t, err)
}

func latestOf(t *testing.T, s Store, conv string) string {
	t.Helper()
	c, err := s.Conversation(conv)
	if err != nil {
		t.Fatalf("Conversation(%q): %v", conv, err)
	}
	if c.Latest != "" && !has(t, s, c.Latest) {
		t.Fatalf("conversation %q points at missing response %q", conv, c.Latest)
	}
	return c.Latest
}

// transcriptOf is the transcript of a chain of resp(id…) records.
func transcriptOf(ids ...string) []hermes.Message {
	var out []hermes.Message
	for _, id := range ids {
		r := resp(id, "", "")
		out = append(append(out, r.Input...), r.Output...)
	}
	return out
}

// turn is resp with a parent and a transcript, as the runtime builds it.
func turn(id string, parent *hermes.StoredResponse) *hermes.StoredResponse {
	r := resp(id, "", "")
	if parent != nil {
		r.Parent, r.Previous = parent.ID, parent.ID
		r.Transcript = append(r.Transcript, parent.Transcript...)
	}
	r.Transcript = append(append(r.Transcript, r.Input...), r.Output...)
	return r
}

func wantTranscript(t *testing.T, s Store, r *hermes.StoredResponse) {
	t.Helper()
	got, err := s.Transcript(r.ID)
	if err != nil {
		t.Fatalf("Transcript(%s): %v", r.ID, err)
	}
	if !reflect.DeepEqual(got, r.Transcript) {
		t.Fatalf("Transcript(%s) has %d items, want %d:\n%+v\nwant %+v", r.ID, len(got), len(r.Transcript), got, r.Transcript)
	}
}

func roundTrip(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{})
	r := &hermes.StoredResponse{
		ID: "resp_1", Previous: "resp_0", Conversation: "conv_a", Chain: "resp_0",
		Status:    hermes.StatusCompleted,
		Created:   time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Completed: time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC),
		Model:     "hermes-agent",
		Consumed:  []hermes.Message{{Role: hermes.RoleUser, Content: "added through the API"}},
		Input:     []hermes.Message{{Role: hermes.RoleUser, Content: "list files", Parts: []hermes.Part{{Type: "image_url", ImageURL: "data:x"}}}},
		Output: []hermes.Message{
			{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{{ID: "call_1", Name: "terminal", Arguments: `{"command":"ls"}`}}},
			{Role: hermes.RoleTool, ToolCallID: "call_1", Name: "terminal", Content: "a\nb"},
			{Role: hermes.RoleAssistant, Content: "a and b"},
		},
		Finish: hermes.FinishStop,
		Usage:  hermes.Usage{PromptTokens: 10, CompletionTokens: 5, CachedTokens: 2},
		Wire:   []byte(`{"instructions":"be brief"}`),
	}
	idem := &persistence.IdemEntry{Fingerprint: "sha256:abc", Status: 200, ContentType: "application/json",
		Body: []byte(`{"id":"resp_1"}`), Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	apply(t, s,
		put(r),
		persistence.PutConversation(&persistence.Conversation{ID: "named", Metadata: map[string]string{"k": "v"},
			Pending: []hermes.Message{{Role: hermes.RoleUser, Content: "later"}}}),
		persistence.PutIdempotency("key-1", idem),
	)
	got, err := s.Response("resp_1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("Response = %+v\nwant %+v", got, r)
	}
	c, err := s.Conversation("conv_a")
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "conv_a" || c.Latest != "resp_1" || c.Created.IsZero() {
		t.Errorf("implicit conversation = %+v, want id conv_a latest resp_1 and a creation time", c)
	}
	named, err := s.Conversation("named")
	if err != nil {
		t.Fatal(err)
	}
	if named.Metadata["k"] != "v" || len(named.Pending) != 1 || named.Pending[0].Content != "later" || named.Latest != "" {
		t.Errorf("named conversation = %+v", named)
	}
	e, ok, err := s.Idempotency("key-1")
	if err != nil || !ok {
		t.Fatalf("Idempotency = %v, %v", ok, err)
	}
	if !reflect.DeepEqual(e, idem) {
		t.Errorf("Idempotency = %+v, want %+v", e, idem)
	}
	if n := s.Len(); n != 1 {
		t.Errorf("Len = %d, want 1", n)
	}
	_, err = s.Response("nope")
	wantCode(t, err, hermes.ENotFound)
	_, err = s.Conversation("nope")
	wantCode(t, err, hermes.ENotFound)
	if _, ok, err := s.Idempotency("nope"); ok || err != nil {
		t.Errorf("Idempotency(missing) = %v, %v", ok, err)
	}
	// Replacing keeps the count and the new content wins.
	r2 := *r
	r2.Status = hermes.StatusFailed
	apply(t, s, put(&r2))
	if got, _ := s.Response("resp_1"); got.Status != hermes.StatusFailed || s.Len() != 1 {
		t.Errorf("after replace: status %s len %d", got.Status, s.Len())
	}
	// Deleting a missing response is not an error.
	apply(t, s, persistence.DeleteResponse("nope"), persistence.TouchResponse("nope"), persistence.DeleteConversation("nope"))
}

func lruEviction(t *testing.T, b Backend) {
	p := func(id, prev string) []persistence.Op { return []persistence.Op{put(resp(id, prev, ""))} }
	tests := []struct {
		name string
		ops  [][]persistence.Op // each inner slice is one Apply
		kept []string
		gone []string
	}{
		{"oldest goes", [][]persistence.Op{p("a", ""), p("b", ""), p("c", ""), p("d", "")},
			[]string{"b", "c", "d"}, []string{"a"}},
		{"touch changes the victim", [][]persistence.Op{p("a", ""), p("b", ""), p("c", ""),
			{persistence.TouchResponse("a")}, p("d", "")}, []string{"a", "c", "d"}, []string{"b"}},
		{"replacing counts as use", [][]persistence.Op{p("a", ""), p("b", ""), p("c", ""), p("a", ""), p("d", "")},
			[]string{"a", "c", "d"}, []string{"b"}},
		{"one grouped apply keeps its newest", [][]persistence.Op{{put(resp("a", "", "")), put(resp("b", "", "")),
			put(resp("c", "", "")), put(resp("d", "", "")), put(resp("e", "", ""))}}, []string{"c", "d", "e"}, []string{"a", "b"}},
		{"evicting an older link keeps the newer one whole", [][]persistence.Op{p("a", ""), p("b", "a"), p("c", "b"), p("d", "c")},
			[]string{"b", "c", "d"}, []string{"a"}},
		{"delete frees a slot", [][]persistence.Op{p("a", ""), p("b", ""), p("c", ""),
			{persistence.DeleteResponse("b")}, p("d", "")}, []string{"a", "c", "d"}, []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := b.open(t, persistence.Options{Capacity: 3})
			for _, ops := range tt.ops {
				apply(t, s, ops...)
			}
			for _, id := range tt.kept {
				if !has(t, s, id) {
					t.Errorf("%s evicted, want kept", id)
				}
			}
			for _, id := range tt.gone {
				if has(t, s, id) {
					t.Errorf("%s kept, want gone", id)
				}
			}
			if n := s.Len(); n != len(tt.kept) {
				t.Errorf("Len = %d, want %d", n, len(tt.kept))
			}
		})
	}
	// The newest response of a chain still has its whole transcript after
	// the older links are gone.
	s := b.open(t, persistence.Options{Capacity: 1})
	apply(t, s, put(resp("b", "", "")), put(resp("c", "b", "")), put(resp("d", "c", "")))
	if has(t, s, "b") || has(t, s, "c") {
		t.Fatal("b and c must be evicted")
	}
	got, err := s.Transcript("d")
	if err != nil {
		t.Fatal(err)
	}
	if want := transcriptOf("b", "c", "d"); !reflect.DeepEqual(got, want) {
		t.Fatalf("Transcript(d) = %+v\nwant %+v", got, want)
	}
}

func conversationNeverDangles(t *testing.T, b Backend) {
	p := func(id, prev, conv string) []persistence.Op { return []persistence.Op{put(resp(id, prev, conv))} }
	conv := func(c *persistence.Conversation) persistence.Op { return persistence.PutConversation(c) }
	del := func(id string) []persistence.Op { return []persistence.Op{persistence.DeleteResponse(id)} }
	tests := []struct {
		name     string
		capacity int
		ops      [][]persistence.Op
		conv     string
		want     string // Latest afterwards
	}{
		{"points at the newest", 10, [][]persistence.Op{p("x1", "", "X"), p("x2", "x1", "X")}, "X", "x2"},
		{"latest evicted falls back to previous", 3, [][]persistence.Op{p("x1", "", "X"), p("x2", "x1", "X"),
			{persistence.TouchResponse("x1")}, p("o1", "", ""), p("o2", "", "")}, "X", "x1"},
		{"all evicted starts fresh", 2, [][]persistence.Op{p("x1", "", "X"), p("x2", "x1", "X"), p("o1", "", ""), p("o2", "", "")}, "X", ""},
		{"latest deleted falls back to previous", 10, [][]persistence.Op{p("x1", "", "X"), p("x2", "x1", "X"), p("x3", "x2", "X"), del("x3")}, "X", "x2"},
		{"fallback skips a gap in the chain", 10, [][]persistence.Op{p("x1", "", "X"), p("x2", "x1", "X"), p("x3", "x2", "X"),
			del("x2"), del("x3")}, "X", "x1"},
		{"deleting an older one keeps latest", 10, [][]persistence.Op{p("x1", "", "X"), p("x2", "x1", "X"), del("x1")}, "X", "x2"},
		{"deleting the only one starts fresh", 10, [][]persistence.Op{p("x1", "", "X"), del("x1")}, "X", ""},
		{"other conversations are not candidates", 10, [][]persistence.Op{p("x1", "", "X"), p("y1", "", "Y"), p("y2", "y1", "Y"), del("x1")}, "X", ""},
		{"prefix names do not mix", 10, [][]persistence.Op{p("ab1", "", "ab"), p("abc1", "", "abc"), p("a1", "", "a"), del("ab1")}, "ab", ""},
		{"stale latest in a put is repointed", 10, [][]persistence.Op{p("x1", "", "X"), p("x2", "x1", "X"), del("x2"),
			{conv(&persistence.Conversation{ID: "X", Latest: "x2"})}}, "X", "x1"},
		{"put before its response in one apply", 10, [][]persistence.Op{p("x1", "", "X"),
			{conv(&persistence.Conversation{ID: "X", Latest: "x2"}), put(resp("x2", "x1", "X"))}}, "X", "x2"},
		{"response moved to another conversation", 10, [][]persistence.Op{p("x1", "", "X"), p("x2", "x1", "X"), p("x2", "x1", "Y")}, "X", "x1"},
		{"evicted within the same apply", 1, [][]persistence.Op{{put(resp("x1", "", "X")), put(resp("o1", "", ""))}}, "X", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := b.open(t, persistence.Options{Capacity: tt.capacity})
			for _, ops := range tt.ops {
				apply(t, s, ops...)
			}
			if got := latestOf(t, s, tt.conv); got != tt.want {
				t.Errorf("Latest = %q, want %q", got, tt.want)
			}
		})
	}
}

func foreignLatest(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{})
	apply(t, s, put(resp("y1", "", "Y")))
	err := s.Apply([]persistence.Op{persistence.PutConversation(&persistence.Conversation{ID: "X", Latest: "y1"})})
	he := wantCode(t, err, hermes.EInvalid)
	if !strings.Contains(he.Message, `put conversation "X"`) {
		t.Errorf("message %q does not name the op", he.Message)
	}
}

func deleteConversation(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{})
	created := time.Date(2024, 5, 5, 0, 0, 0, 0, time.UTC)
	apply(t, s,
		persistence.PutConversation(&persistence.Conversation{ID: "X", Created: created, Metadata: map[string]string{"topic": "go"}}),
		put(resp("x1", "", "X")),
		put(resp("x2", "x1", "X")),
	)
	c, err := s.Conversation("X")
	if err != nil || !c.Created.Equal(created) || c.Metadata["topic"] != "go" || c.Latest != "x2" {
		t.Fatalf("before delete: %+v, %v (a response must keep the metadata and creation time)", c, err)
	}
	apply(t, s, persistence.DeleteConversation("X"))
	_, err = s.Conversation("X")
	wantCode(t, err, hermes.ENotFound)
	if !has(t, s, "x1") || !has(t, s, "x2") {
		t.Fatal("responses must stay until evicted")
	}
	// A new conversation of the same name does not fall back to the old
	// conversation's responses.
	apply(t, s, put(resp("n1", "", "X")))
	if got := latestOf(t, s, "X"); got != "n1" {
		t.Fatalf("Latest = %q, want n1", got)
	}
	apply(t, s, persistence.DeleteResponse("n1"))
	if got := latestOf(t, s, "X"); got != "" {
		t.Errorf("Latest after deleting n1 = %q, want \"\"", got)
	}
	apply(t, s, persistence.DeleteResponse("x2"))
	if got := latestOf(t, s, "X"); got != "" {
		t.Errorf("Latest = %q, want \"\"", got)
	}
}

func updateConversation(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{})
	msg := func(text string) hermes.Message { return hermes.Message{Role: hermes.RoleUser, Content: text} }
	apply(t, s, persistence.PutConversation(&persistence.Conversation{ID: "conv_1", Pending: []hermes.Message{msg("a"), msg("b")}}))
	// A client adds an item while a turn that read [a b] consumes two: in
	// one batch, in that order, nothing is lost.
	apply(t, s,
		persistence.UpdateConversation("conv_1", func(c *persistence.Conversation) { c.Pending = append(c.Pending, msg("c")) }),
		persistence.UpdateConversation("conv_1", func(c *persistence.Conversation) { c.Pending = c.Pending[2:] }),
		persistence.UpdateConversation("missing", func(c *persistence.Conversation) { t.Error("called for a missing conversation") }),
	)
	c, err := s.Conversation("conv_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pending) != 1 || c.Pending[0].Content != "c" {
		t.Fatalf("pending %+v, want [c]", c.Pending)
	}
	if _, err := s.Conversation("missing"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("missing conversation was created: %v", err)
	}
}

func idempotencyTTL(t *testing.T, b Backend) {
	clk := newClock()
	s := b.open(t, persistence.Options{Now: clk.Now, IdempotencyTTL: 5 * time.Minute})
	apply(t, s,
		persistence.PutIdempotency("k", &persistence.IdemEntry{Fingerprint: "f1", Status: 200, Body: []byte("first")}),
		persistence.PutIdempotency("own", &persistence.IdemEntry{Fingerprint: "f2", Status: 201, Expires: clk.Now().Add(time.Hour)}),
	)
	e, ok, err := s.Idempotency("k")
	if err != nil || !ok || string(e.Body) != "first" || !e.Expires.Equal(clk.Now().Add(5*time.Minute)) {
		t.Fatalf("fresh entry = %+v, %v, %v", e, ok, err)
	}
	clk.Add(5*time.Minute - time.Nanosecond)
	if _, ok, _ := s.Idempotency("k"); !ok {
		t.Fatal("entry gone before its TTL")
	}
	clk.Add(time.Nanosecond)
	if _, ok, err := s.Idempotency("k"); ok || err != nil {
		t.Fatalf("expired entry reported: %v, %v", ok, err)
	}
	if _, ok, _ := s.Idempotency("own"); !ok {
		t.Fatal("an entry with its own later expiry must outlive the TTL")
	}
	// The next Apply purges it (reads alone never write).
	if n := b.IdempotencyRecords(t, s); n != 2 {
		t.Fatalf("idempotency records before purge = %d, want 2", n)
	}
	apply(t, s, persistence.TouchResponse("unrelated"))
	if n := b.IdempotencyRecords(t, s); n != 1 {
		t.Fatalf("after purge: %d records, want 1", n)
	}
	// Replacing an entry moves its expiry: the old expiry purges nothing.
	apply(t, s, persistence.PutIdempotency("r", &persistence.IdemEntry{Fingerprint: "a"}))
	clk.Add(4 * time.Minute)
	apply(t, s, persistence.PutIdempotency("r", &persistence.IdemEntry{Fingerprint: "b"}))
	clk.Add(2 * time.Minute)
	apply(t, s, persistence.TouchResponse("unrelated"))
	if e, ok, _ := s.Idempotency("r"); !ok || e.Fingerprint != "b" {
		t.Fatalf("replaced entry = %+v, %v; want fingerprint b still live", e, ok)
	}
}

func idempotencyPurgeBounded(t *testing.T, b Backend) {
	const batch = 64 // both stores purge at most this many per Apply
	clk := newClock()
	s := b.open(t, persistence.Options{Now: clk.Now})
	const total = batch*2 + 10
	ops := make([]persistence.Op, total)
	for i := range ops {
		ops[i] = persistence.PutIdempotency(fmt.Sprintf("k%03d", i), &persistence.IdemEntry{Fingerprint: "f"})
	}
	apply(t, s, ops...)
	clk.Add(time.Hour)
	for want := total - batch; want >= 0; want -= batch {
		apply(t, s, persistence.TouchResponse("x"))
		if n := b.IdempotencyRecords(t, s); n != want {
			t.Fatalf("records left = %d, want %d", n, want)
		}
	}
	apply(t, s, persistence.TouchResponse("x"))
	if n := b.IdempotencyRecords(t, s); n != 0 {
		t.Fatalf("after enough applies: %d records", n)
	}
}

func idempotencyBounded(t *testing.T, b Backend) {
	clk := newClock()
	open := b.Storage(t)
	opts := persistence.Options{Now: clk.Now, MaxIdempotencyEntries: 5, MaxIdempotencyBytes: 1 << 20}
	s := open(t, opts)
	putIdem := func(s Store, key string, size int) {
		t.Helper()
		clk.Add(time.Millisecond) // later entries expire later
		apply(t, s, persistence.PutIdempotency(key, &persistence.IdemEntry{Fingerprint: "f", Status: 200, Body: []byte(strings.Repeat("b", size))}))
	}
	for i := range 8 {
		putIdem(s, fmt.Sprintf("k%d", i), 10)
	}
	putIdem(s, "k7", 10) // a replacement, not a ninth entry
	for i := range 8 {
		_, ok, err := s.Idempotency(fmt.Sprintf("k%d", i))
		if err != nil || ok != (i >= 3) {
			t.Errorf("k%d kept = %v (%v), want %v", i, ok, err, i >= 3)
		}
	}
	if n := b.IdempotencyRecords(t, s); n != 5 {
		t.Errorf("%d entries, want 5", n)
	}
	s.Close()
	// By bytes: with room for about three 1 KB entries, the newest stay;
	// the totals survived the restart.
	opts.MaxIdempotencyEntries, opts.MaxIdempotencyBytes = 100, 3500
	s = open(t, opts)
	for i := range 6 {
		putIdem(s, fmt.Sprintf("big%d", i), 1000)
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
	if kept == 0 || b.IdempotencyRecords(t, s) != kept {
		t.Errorf("%d big entries kept, %d entries in all", kept, b.IdempotencyRecords(t, s))
	}
}

func conversationsBounded(t *testing.T, b Backend) {
	open := b.Storage(t)
	opts := persistence.Options{MaxConversations: 3}
	s := open(t, opts)
	pending := []hermes.Message{{Role: hermes.RoleUser, Content: "kept for later"}}
	pc := func(c *persistence.Conversation) persistence.Op { return persistence.PutConversation(c) }
	apply(t, s, pc(&persistence.Conversation{ID: "A", Pending: pending}))
	apply(t, s, pc(&persistence.Conversation{ID: "B", Pending: pending}))
	apply(t, s, put(resp("c1", "", "C"))) // a turn creates C
	apply(t, s, persistence.UpdateConversation("A", func(c *persistence.Conversation) { c.Metadata = map[string]string{"k": "v"} }))
	apply(t, s, pc(&persistence.Conversation{ID: "D"}))
	if hasConversation(t, s, "B") {
		t.Fatal("B, the least recently used, must be gone")
	}
	for _, id := range []string{"A", "C", "D"} {
		if !hasConversation(t, s, id) {
			t.Fatalf("%s evicted, want kept", id)
		}
	}
	// A turn on C makes A the victim; deleting D frees a slot.
	apply(t, s, put(resp("c2", "c1", "C")))
	apply(t, s, persistence.DeleteConversation("D"))
	apply(t, s, pc(&persistence.Conversation{ID: "E"}))
	if !hasConversation(t, s, "A") || !hasConversation(t, s, "C") || !hasConversation(t, s, "E") {
		t.Fatal("deleting D must have made room for E")
	}
	s.Close()
	s = open(t, opts)
	apply(t, s, pc(&persistence.Conversation{ID: "F"}))
	if hasConversation(t, s, "A") || !hasConversation(t, s, "C") {
		t.Error("after a restart the victim should still be A, the least recently used")
	}
	// B's items went with it: a new B starts empty.
	apply(t, s, pc(&persistence.Conversation{ID: "B"}))
	if c, _ := s.Conversation("B"); len(c.Pending) != 0 {
		t.Errorf("a new B inherited %d pending items", len(c.Pending))
	}
}

func pendingBounded(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{MaxPendingBytes: 4096})
	apply(t, s, persistence.PutConversation(&persistence.Conversation{ID: "A"}))
	add := func(n int) error {
		return s.Apply([]persistence.Op{persistence.UpdateConversation("A", func(c *persistence.Conversation) {
			c.Pending = append(c.Pending, hermes.Message{Role: hermes.RoleUser, Content: strings.Repeat("x", n)})
		})})
	}
	if err := add(2000); err != nil {
		t.Fatal(err)
	}
	he := wantCode(t, add(3000), hermes.EInvalid)
	if he.Param != "items" || !strings.Contains(he.Message, "API_SERVER_MAX_PENDING_BYTES") {
		t.Errorf("error %+v does not name the setting and param", he)
	}
	if c, _ := s.Conversation("A"); len(c.Pending) != 1 {
		t.Errorf("%d pending items after the refusal, want 1", len(c.Pending))
	}
	err := s.Apply([]persistence.Op{persistence.PutConversation(&persistence.Conversation{ID: "B",
		Pending: []hermes.Message{{Role: hermes.RoleUser, Content: strings.Repeat("y", 5000)}}})})
	wantCode(t, err, hermes.EInvalid)
}

func restart(t *testing.T, b Backend) {
	clk := newClock()
	open := b.Storage(t)
	opts := persistence.Options{Capacity: 3, Now: clk.Now}
	s := open(t, opts)
	apply(t, s,
		put(resp("a", "", "X")),
		put(resp("b", "a", "X")),
		put(resp("c", "", "")),
		persistence.TouchResponse("a"),
		persistence.PutConversation(&persistence.Conversation{ID: "Y", Metadata: map[string]string{"m": "1"}}),
		persistence.PutIdempotency("k", &persistence.IdemEntry{Fingerprint: "f", Status: 200, Body: []byte("body")}),
	)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, opts)
	for _, id := range []string{"a", "b", "c"} {
		if !has(t, s, id) {
			t.Errorf("%s lost across restart", id)
		}
	}
	if s.Len() != 3 {
		t.Errorf("Len = %d, want 3", s.Len())
	}
	if got := latestOf(t, s, "X"); got != "b" {
		t.Errorf("Latest(X) = %q, want b", got)
	}
	if c, err := s.Conversation("Y"); err != nil || c.Metadata["m"] != "1" {
		t.Errorf("Conversation(Y) = %+v, %v", c, err)
	}
	if e, ok, err := s.Idempotency("k"); err != nil || !ok || string(e.Body) != "body" {
		t.Errorf("Idempotency = %+v, %v, %v", e, ok, err)
	}
	// The LRU order survived too: b is now the least recently used.
	apply(t, s, put(resp("d", "", "")))
	if has(t, s, "b") || !has(t, s, "a") {
		t.Error("after restart the victim should be b (a was touched)")
	}
	if got := latestOf(t, s, "X"); got != "a" {
		t.Errorf("Latest(X) after evicting b = %q, want a", got)
	}
}

func failedApply(t *testing.T, b Backend) {
	tests := []struct {
		name  string
		ops   []persistence.Op
		inMsg string
	}{
		{"fails inside the transaction", []persistence.Op{put(resp("a", "", "X")), persistence.PutIdempotency("k", &persistence.IdemEntry{}),
			persistence.PutConversation(&persistence.Conversation{ID: "X", Latest: "y1"})}, `op 3 of 3 (put conversation "X")`},
		{"empty id", []persistence.Op{put(resp("a", "", "X")), put(resp("", "", ""))}, `op 2 of 2 (put response "")`},
		{"nil record", []persistence.Op{put(resp("a", "", "X")), persistence.PutConversation(nil)}, "op 2 of 2"},
		{"zero op", []persistence.Op{put(resp("a", "", "X")), {}}, "op 2 of 2 (zero op)"},
		{"id too long", []persistence.Op{put(resp("a", "", "X")), persistence.DeleteResponse(strings.Repeat("x", 4097))}, "op 2 of 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := b.open(t, persistence.Options{})
			apply(t, s, put(resp("y1", "", "Y")))
			err := s.Apply(tt.ops)
			he := wantCode(t, err, hermes.EInvalid)
			if !strings.Contains(he.Message, tt.inMsg) {
				t.Errorf("message %q does not contain %q", he.Message, tt.inMsg)
			}
			if has(t, s, "a") || s.Len() != 1 {
				t.Errorf("failed Apply wrote: has(a)=%v len=%d", has(t, s, "a"), s.Len())
			}
			if _, err := s.Conversation("X"); hermes.ErrorCode(err) != hermes.ENotFound {
				t.Errorf("failed Apply created conversation X: %v", err)
			}
			if _, ok, _ := s.Idempotency("k"); ok {
				t.Error("failed Apply stored an idempotency entry")
			}
		})
	}
}

func applyAfterClose(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{})
	s.Close()
	err := s.Apply([]persistence.Op{put(resp("a", "", ""))})
	wantCode(t, err, hermes.EInternal)
	_, err = s.Response("a")
	wantCode(t, err, hermes.EInternal)
	if s.Len() != 0 {
		t.Error("Len of a closed store should be 0")
	}
}

func itemsStoredOnce(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{})
	big := strings.Repeat("x", 8<<10)
	var prev *hermes.StoredResponse
	for i := range 100 {
		r := turn(fmt.Sprintf("r%03d", i), prev)
		r.Output[0].Content = big
		r.Transcript[len(r.Transcript)-1].Content = big
		apply(t, s, put(r))
		prev = r
	}
	wantTranscript(t, s, prev)
	got, err := s.Response(prev.ID)
	if err != nil || got.Parent != "r098" || len(got.Input) != 1 || got.Output[0].Content != big || got.Transcript != nil {
		t.Errorf("Response = %+v, %v", got, err)
	}
	if n := b.Items(t, s); n != 100 {
		t.Errorf("%d item records, want 100", n)
	}
	head, err := s.ResponseHead(prev.ID)
	if err != nil || head.Parent != "r098" || head.Input != nil || head.Output != nil || head.Status != hermes.StatusCompleted {
		t.Errorf("ResponseHead = %+v, %v; want the record without its items", head, err)
	}
	if _, err := s.ResponseHead("nope"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Errorf("ResponseHead(missing) = %v", err)
	}
}

func branching(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{})
	a := turn("a", nil)
	rb := turn("b", a)
	c := turn("c", a)
	d := turn("d", c)
	apply(t, s, put(a), put(rb), put(c), put(d))
	if n := b.Items(t, s); n != 4 {
		t.Fatalf("%d item records for 4 responses, want 4 (the prefix stored once)", n)
	}
	apply(t, s, persistence.DeleteResponse("a"), persistence.DeleteResponse("c"))
	if has(t, s, "a") || has(t, s, "c") {
		t.Fatal("a and c must not be addressable once deleted")
	}
	wantTranscript(t, s, rb)
	wantTranscript(t, s, d)
	if n := b.Items(t, s); n != 4 {
		t.Fatalf("%d item records, want 4: a and c are still needed", n)
	}
	apply(t, s, persistence.DeleteResponse("d"))
	if n := b.Items(t, s); n != 2 {
		t.Fatalf("%d item records after deleting d, want 2 (a for b, and b)", n)
	}
	wantTranscript(t, s, rb)
	apply(t, s, persistence.DeleteResponse("b"))
	if n := b.Items(t, s); n != 0 {
		t.Fatalf("%d item records left when nothing is addressed, want 0", n)
	}
	if _, err := s.Transcript("a"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("Transcript(a) = %v, want not found", err)
	}
}

func parentGone(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{})
	a := turn("a", nil)
	rb := turn("b", a)
	apply(t, s, put(a))
	apply(t, s, persistence.DeleteResponse("a"))
	apply(t, s, put(rb))
	wantTranscript(t, s, rb)
	got, err := s.Response("b")
	if err != nil || got.Parent != "" || !reflect.DeepEqual(got.Input, rb.Input) || len(got.Consumed) != 0 {
		t.Fatalf("Response(b) = %+v, %v; want its own items and no parent", got, err)
	}
	c := turn("c", rb)
	apply(t, s, put(c))
	wantTranscript(t, s, c)
	b.Items(t, s) // the layout is still consistent
}

// imagesReadBack: data-URL images in items (repeated across turns, inline
// when the parent is gone, after a restart) read back byte for byte,
// whatever the store does to keep them once.
func imagesReadBack(t *testing.T, b Backend) {
	raw := make([]byte, 64<<10)
	for i := range raw {
		raw[i] = byte(i*31 + i>>8)
	}
	img := hermes.Part{Type: "image_url", ImageURL: "data:image/png;base64," + base64.StdEncoding.EncodeToString(raw), Detail: "low"}
	user := func(text string) []hermes.Message {
		return []hermes.Message{{Role: hermes.RoleUser, Content: text, Parts: []hermes.Part{{Type: "text", Text: text}, img}}}
	}
	open := b.Storage(t)
	s := open(t, persistence.Options{})
	a := turn("a", nil)
	a.Input = user("look")
	a.Transcript = append(append([]hermes.Message(nil), a.Input...), a.Output...)
	rb := turn("b", a)
	rb.Input = user("again")
	rb.Transcript = append(append(append([]hermes.Message(nil), a.Transcript...), rb.Input...), rb.Output...)
	apply(t, s, put(a), put(rb))
	wantTranscript(t, s, rb)
	apply(t, s, persistence.DeleteResponse("a"))
	c := turn("c", rb)
	c.Input = user("once more")
	c.Transcript = append(append(append([]hermes.Message(nil), rb.Transcript...), c.Input...), c.Output...)
	apply(t, s, persistence.DeleteResponse("b"))
	apply(t, s, put(c)) // its parent is gone: the history, images included, inline
	wantTranscript(t, s, c)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, persistence.Options{})
	wantTranscript(t, s, c)
	got, err := s.Response("c")
	if err != nil || !reflect.DeepEqual(got.Input, c.Input) {
		t.Fatalf("Response(c) after a restart: %v", err)
	}
}

func replaceUnderNewParent(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{})
	a, rb := turn("a", nil), turn("b", nil)
	c := turn("c", a)
	apply(t, s, put(a), put(rb), put(c))
	c2 := turn("c", rb)
	apply(t, s, put(c2), persistence.DeleteResponse("a"))
	wantTranscript(t, s, c2)
	if n := b.Items(t, s); n != 2 {
		t.Fatalf("%d item records, want 2 (a is no longer needed)", n)
	}
	err := s.Apply([]persistence.Op{put(turn("b", c2))})
	wantCode(t, err, hermes.EInvalid)
	err = s.Apply([]persistence.Op{put(turn("b", turn("b", nil)))})
	wantCode(t, err, hermes.EInvalid)
	wantTranscript(t, s, c2)
	b.Items(t, s) // the layout is still consistent
}

// evictionChurn churns 1,000 responses through a capacity of 50, in chains
// that branch: the items kept stay bounded by what retained responses can
// reach, and every retained response's transcript stays whole.
func evictionChurn(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{Capacity: 50})
	rng := rand.New(rand.NewPCG(1, 2))
	const total, maxDepth = 1000, 10
	var recent []*hermes.StoredResponse
	byID := make(map[string]*hermes.StoredResponse)
	depth := make(map[string]int)
	maxItems := 0
	for i := 0; i < total; {
		ops := make([]persistence.Op, 0, 16)
		for range 1 + rng.IntN(16) {
			var parent *hermes.StoredResponse
			if len(recent) > 0 && rng.IntN(4) > 0 {
				parent = recent[rng.IntN(len(recent))]
				if depth[parent.ID] >= maxDepth || !has(t, s, parent.ID) {
					parent = nil
				}
			}
			r := turn(fmt.Sprintf("r%05d", i), parent)
			r.Output[0].Content = strings.Repeat("y", 1+rng.IntN(512))
			r.Transcript[len(r.Transcript)-1] = r.Output[0]
			if parent != nil {
				depth[r.ID] = depth[parent.ID] + 1
				ops = append(ops, persistence.TouchResponse(parent.ID))
			}
			ops = append(ops, put(r))
			byID[r.ID] = r
			recent = append(recent, r)
			if len(recent) > 30 {
				recent = recent[1:]
			}
			i++
		}
		apply(t, s, ops...)
		if i/200 != (i-len(ops))/200 {
			maxItems = max(maxItems, b.Items(t, s))
		}
	}
	if s.Len() != 50 {
		t.Fatalf("Len = %d, want 50", s.Len())
	}
	maxItems = max(maxItems, b.Items(t, s))
	if maxItems > 50*(maxDepth+1) {
		t.Errorf("up to %d item records kept for 50 responses of depth ≤ %d", maxItems, maxDepth)
	}
	kept := 0
	for id, r := range byID {
		if has(t, s, id) {
			kept++
			wantTranscript(t, s, r)
		}
	}
	if kept != 50 {
		t.Errorf("%d responses addressable, want 50", kept)
	}
}

func unfinished(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{})
	var ops []persistence.Op
	for _, st := range []hermes.Status{hermes.StatusQueued, hermes.StatusInProgress, hermes.StatusCompleted,
		hermes.StatusFailed, hermes.StatusCancelled, hermes.StatusIncomplete} {
		ops = append(ops, put(&hermes.StoredResponse{ID: "resp_" + string(st), Status: st, Created: time.Now(),
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: "x"}}}))
	}
	apply(t, s, ops...)
	ids, err := s.Unfinished()
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, []string{"resp_in_progress", "resp_queued"}) {
		t.Fatalf("Unfinished() = %q, %v", ids, err)
	}
	// Finishing one takes it off the list.
	done := &hermes.StoredResponse{ID: "resp_queued", Status: hermes.StatusCompleted, Created: time.Now()}
	apply(t, s, put(done))
	if ids, _ := s.Unfinished(); !slices.Equal(ids, []string{"resp_in_progress"}) {
		t.Fatalf("Unfinished() after completing resp_queued = %q", ids)
	}
}

func concurrentReaders(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{Capacity: 20})
	const batches, perBatch, readers = 40, 8, 4
	done := make(chan struct{})
	errs := make(chan error, readers+1)
	var wg sync.WaitGroup
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reads := 0
			for {
				select {
				case <-done:
					if reads == 0 {
						errs <- fmt.Errorf("reader %d never read", r)
					}
					return
				default:
				}
				id := fmt.Sprintf("r%d", (reads*7+r)%(batches*perBatch))
				got, err := s.Response(id)
				switch {
				case err == nil && got.ID != id:
					errs <- fmt.Errorf("Response(%s) returned %s", id, got.ID)
					return
				case err != nil && hermes.ErrorCode(err) != hermes.ENotFound:
					errs <- err
					return
				}
				if c, err := s.Conversation("C"); err == nil && c.Latest == "" {
					errs <- fmt.Errorf("conversation C lost its latest response")
					return
				}
				if n := s.Len(); n > 20 {
					errs <- fmt.Errorf("store length %d over capacity", n)
					return
				}
				reads++
			}
		}()
	}
	for bt := range batches {
		ops := make([]persistence.Op, 0, perBatch)
		for i := range perBatch {
			ops = append(ops, put(resp(fmt.Sprintf("r%d", bt*perBatch+i), "", "C")))
		}
		if err := s.Apply(ops); err != nil {
			errs <- err
			break
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := latestOf(t, s, "C"); got != fmt.Sprintf("r%d", batches*perBatch-1) {
		t.Errorf("Latest = %q", got)
	}
}

// hostileIDs: ids, names and keys come from clients. Bytes no store can
// keep as given (NUL, invalid UTF-8) are refused with invalid, never
// stored to read back as corrupt; reads of them find nothing; quotes and
// SQL are just names.
func hostileIDs(t *testing.T, b Backend) {
	s := b.open(t, persistence.Options{})
	for _, id := range []string{`'; DROP TABLE responses; --`, `a"b\c`, "名前", "%", "_"} {
		r := resp(id, "", id)
		apply(t, s, put(r), persistence.PutIdempotency(id, &persistence.IdemEntry{Fingerprint: "f"}))
		if got, err := s.Response(id); err != nil || got.ID != id {
			t.Errorf("Response(%q) = %v, %v", id, got, err)
		}
		if got := latestOf(t, s, id); got != id {
			t.Errorf("Latest(%q) = %q", id, got)
		}
		if _, ok, err := s.Idempotency(id); !ok || err != nil {
			t.Errorf("Idempotency(%q) = %v, %v", id, ok, err)
		}
	}
	if has(t, s, "%") && has(t, s, "x") {
		t.Error("a pattern character matched another id")
	}
	for _, id := range []string{"nul\x00byte", "bad\xffutf8"} {
		if _, err := s.Response(id); hermes.ErrorCode(err) != hermes.ENotFound {
			t.Errorf("Response(%q) = %v, want not found", id, err)
		}
		if _, err := s.Conversation(id); hermes.ErrorCode(err) != hermes.ENotFound {
			t.Errorf("Conversation(%q) = %v, want not found", id, err)
		}
		if _, ok, err := s.Idempotency(id); ok || err != nil {
			t.Errorf("Idempotency(%q) = %v, %v, want none", id, ok, err)
		}
		if _, err := s.Transcript(id); hermes.ErrorCode(err) != hermes.ENotFound {
			t.Errorf("Transcript(%q) = %v, want not found", id, err)
		}
		for _, op := range []persistence.Op{put(resp(id, "", "")), put(resp("ok", "", id)),
			persistence.PutIdempotency(id, &persistence.IdemEntry{}), persistence.PutConversation(&persistence.Conversation{ID: id})} {
			if err := s.Apply([]persistence.Op{op}); hermes.ErrorCode(err) != hermes.EInvalid {
				t.Errorf("%s: %v, want invalid", op, err)
			}
		}
	}
}

// splice: a compaction that kept its parent's last turns stores only its
// head (the first user message, the compaction item) and where the kept
// turns start; its transcript, and its children's, read back as the
// compacted history, across a restart and after its ancestors lose their
// addresses. If the parent is gone when it is applied, the compacted
// history is kept inline instead. A splice past the parent's transcript
// reads back as corrupt, not as a panic or a short transcript.
func splice(t *testing.T, b Backend) {
	open := b.Storage(t)
	s := open(t, persistence.Options{Capacity: 100})
	a := turn("a", nil)
	rb := turn("b", a)
	c := turn("c", rb)
	apply(t, s, put(a), put(rb), put(c))
	item := hermes.Message{Role: hermes.RoleCompaction, Content: "summary of a and b", Encrypted: "sealed"}
	head := []hermes.Message{c.Transcript[0], item}
	d := resp("d", "c", "")
	d.Parent, d.Compaction = "c", &item
	// An image in the turn: a store that keeps images apart (bbolt) or
	// inline (PostgreSQL) must keep the splice either way.
	d.Input[0].Parts = []hermes.Part{{Type: "text", Text: d.Input[0].Content},
		{Type: "image_url", ImageURL: "data:image/png;base64," + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("not really a png "), 1000))}}
	d.Splice = &hermes.Splice{Head: head, Skip: 4} // keeps c's turn: a's and b's go into the summary
	d.Transcript = append(append(append(append([]hermes.Message(nil), head...), c.Transcript[4:]...), d.Input...), d.Output...)
	apply(t, s, put(d))
	wantTranscript(t, s, d)
	e := turn("e", d)
	apply(t, s, put(e))
	wantTranscript(t, s, e)
	got, err := s.Response("d")
	if err != nil || got.Parent != "c" || !reflect.DeepEqual(got.Input, d.Input) || !reflect.DeepEqual(got.Output, d.Output) || len(got.Consumed) != 0 {
		t.Fatalf("Response(d) = %+v, %v; want its own items and its parent", got, err)
	}
	apply(t, s, persistence.DeleteResponse("a"), persistence.DeleteResponse("b"), persistence.DeleteResponse("c"))
	wantTranscript(t, s, e)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, persistence.Options{Capacity: 100})
	defer s.Close()
	wantTranscript(t, s, e)

	// The parent is gone by the time the splice is written: inline.
	x := turn("x", nil)
	apply(t, s, put(x))
	y := resp("y", "x", "")
	y.Parent = "x"
	y.Splice = &hermes.Splice{Head: []hermes.Message{x.Transcript[0], item}, Skip: 1}
	y.Transcript = append(append(append(append([]hermes.Message(nil), y.Splice.Head...), x.Transcript[1:]...), y.Input...), y.Output...)
	apply(t, s, persistence.DeleteResponse("x"))
	apply(t, s, put(y))
	wantTranscript(t, s, y)

	z := resp("z", "e", "")
	z.Parent = "e"
	z.Splice = &hermes.Splice{Head: head, Skip: len(e.Transcript) + 1}
	apply(t, s, put(z))
	if _, err := s.Transcript("z"); hermes.ErrorCode(err) != hermes.EInternal || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Transcript of a splice past its parent's transcript: %v, want a corrupt-record error", err)
	}
}
