package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	hermes "github.com/hermesd/hermesd"
)

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

func openAt(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	opts.NoSync = true
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t *testing.T, opts Options) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "api_server.db"), opts)
}

func apply(t *testing.T, s *Store, ops ...Op) {
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

func has(t *testing.T, s *Store, id string) bool {
	t.Helper()
	_, err := s.Response(id)
	return found(t, err)
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

func latestOf(t *testing.T, s *Store, conv string) string {
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

func TestRoundTrip(t *testing.T) {
	s := newStore(t, Options{})
	r := &hermes.StoredResponse{
		ID:           "resp_1",
		Previous:     "resp_0",
		Conversation: "conv_a",
		Chain:        "resp_0",
		Status:       hermes.StatusCompleted,
		Created:      time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Completed:    time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC),
		Model:        "hermes-agent",
		Consumed:     []hermes.Message{{Role: hermes.RoleUser, Content: "added through the API"}},
		Input:        []hermes.Message{{Role: hermes.RoleUser, Content: "list files", Parts: []hermes.Part{{Type: "image_url", ImageURL: "data:x"}}}},
		Output: []hermes.Message{
			{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{{ID: "call_1", Name: "terminal", Arguments: `{"command":"ls"}`}}},
			{Role: hermes.RoleTool, ToolCallID: "call_1", Name: "terminal", Content: "a\nb"},
			{Role: hermes.RoleAssistant, Content: "a and b"},
		},
		Finish:  hermes.FinishStop,
		Usage:   hermes.Usage{PromptTokens: 10, CompletionTokens: 5, CachedTokens: 2},
		ErrCode: "",
		Wire:    []byte(`{"instructions":"be brief"}`),
	}
	idem := &IdemEntry{Fingerprint: "sha256:abc", Status: 200, ContentType: "application/json",
		Body: []byte(`{"id":"resp_1"}`), Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	apply(t, s,
		PutResponse(r),
		PutConversation(&Conversation{ID: "named", Metadata: map[string]string{"k": "v"},
			Pending: []hermes.Message{{Role: hermes.RoleUser, Content: "later"}}}),
		PutIdempotency("key-1", idem),
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
	st, err := s.Stats()
	if err != nil || st.Responses != 1 || st.FileBytes <= 0 {
		t.Errorf("Stats = %+v, %v", st, err)
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
	apply(t, s, PutResponse(&r2))
	if got, _ := s.Response("resp_1"); got.Status != hermes.StatusFailed || s.Len() != 1 {
		t.Errorf("after replace: status %s len %d", got.Status, s.Len())
	}
	// Deleting a missing response is not an error.
	apply(t, s, DeleteResponse("nope"), TouchResponse("nope"), DeleteConversation("nope"))
}

func TestFileMode(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.db")
	s := openAt(t, fresh, Options{})
	s.Close()
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("fresh store mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	loose := filepath.Join(dir, "loose.db")
	s = openAt(t, loose, Options{})
	s.Close()
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, loose, Options{})
	s.Close()
	if fi, err := os.Stat(loose); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("reopened 0644 store mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openAt(t, path, Options{})
	s.Close()

	readSchema := func() uint32 {
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var v uint32
		db.View(func(tx *bolt.Tx) error {
			v = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchema))
			return nil
		})
		return v
	}
	if v := readSchema(); v != schemaVersion {
		t.Fatalf("schema written = %d, want %d", v, schemaVersion)
	}

	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion+1))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{})
	he := wantCode(t, err, hermes.EUnavailable)
	if want := fmt.Sprintf("schema version %d", schemaVersion+1); !strings.Contains(he.Message, want) {
		t.Errorf("message %q does not mention %q", he.Message, want)
	}
	// Refusing must not have rewritten the version.
	if v := readSchema(); v != schemaVersion+1 {
		t.Errorf("schema after refusal = %d", v)
	}
}

func TestLockedByAnotherStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locked.db")
	first := openAt(t, path, Options{})

	const timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := Open(path, Options{LockTimeout: timeout})
	elapsed := time.Since(start)
	he := wantCode(t, err, hermes.EUnavailable)
	if want := "store " + path + " is locked by another process"; he.Message != want {
		t.Errorf("message = %q, want %q", he.Message, want)
	}
	// bbolt retries every 50ms and gives up before the deadline passes.
	if elapsed < timeout/2 || elapsed > timeout+time.Second {
		t.Errorf("gave up after %v, want about the %v lock timeout", elapsed, timeout)
	}
	// The holder is unharmed.
	apply(t, first, PutResponse(resp("a", "", "")))

	first.Close()
	openAt(t, path, Options{LockTimeout: timeout})
}

func TestLRUEviction(t *testing.T) {
	tests := []struct {
		name string
		ops  [][]Op // each inner slice is one Apply
		kept []string
		gone []string
	}{
		{
			name: "oldest goes",
			ops: [][]Op{{PutResponse(resp("a", "", ""))}, {PutResponse(resp("b", "", ""))},
				{PutResponse(resp("c", "", ""))}, {PutResponse(resp("d", "", ""))}},
			kept: []string{"b", "c", "d"},
			gone: []string{"a"},
		},
		{
			name: "touch changes the victim",
			ops: [][]Op{{PutResponse(resp("a", "", ""))}, {PutResponse(resp("b", "", ""))},
				{PutResponse(resp("c", "", ""))}, {TouchResponse("a")}, {PutResponse(resp("d", "", ""))}},
			kept: []string{"a", "c", "d"},
			gone: []string{"b"},
		},
		{
			name: "replacing counts as use",
			ops: [][]Op{{PutResponse(resp("a", "", ""))}, {PutResponse(resp("b", "", ""))},
				{PutResponse(resp("c", "", ""))}, {PutResponse(resp("a", "", ""))}, {PutResponse(resp("d", "", ""))}},
			kept: []string{"a", "c", "d"},
			gone: []string{"b"},
		},
		{
			name: "one grouped apply keeps its newest",
			ops: [][]Op{{PutResponse(resp("a", "", "")), PutResponse(resp("b", "", "")), PutResponse(resp("c", "", "")),
				PutResponse(resp("d", "", "")), PutResponse(resp("e", "", ""))}},
			kept: []string{"c", "d", "e"},
			gone: []string{"a", "b"},
		},
		{
			name: "evicting an older link keeps the newer one whole",
			ops: [][]Op{{PutResponse(resp("a", "", ""))}, {PutResponse(resp("b", "a", ""))},
				{PutResponse(resp("c", "b", ""))}, {PutResponse(resp("d", "c", ""))}},
			kept: []string{"b", "c", "d"},
			gone: []string{"a"},
		},
		{
			name: "delete frees a slot",
			ops: [][]Op{{PutResponse(resp("a", "", ""))}, {PutResponse(resp("b", "", ""))},
				{PutResponse(resp("c", "", ""))}, {DeleteResponse("b")}, {PutResponse(resp("d", "", ""))}},
			kept: []string{"a", "c", "d"},
			gone: []string{"b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Options{Capacity: 3})
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
	s := newStore(t, Options{Capacity: 1})
	apply(t, s, PutResponse(resp("b", "", "")), PutResponse(resp("c", "b", "")), PutResponse(resp("d", "c", "")))
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

// transcriptOf is the transcript of a chain of resp(id…) records.
func transcriptOf(ids ...string) []hermes.Message {
	var out []hermes.Message
	for _, id := range ids {
		r := resp(id, "", "")
		out = append(append(out, r.Input...), r.Output...)
	}
	return out
}

func TestConversationNeverDangles(t *testing.T) {
	put := func(id, prev, conv string) []Op { return []Op{PutResponse(resp(id, prev, conv))} }
	tests := []struct {
		name     string
		capacity int
		ops      [][]Op
		conv     string
		want     string // Latest afterwards
	}{
		{
			name: "points at the newest", capacity: 10, conv: "X",
			ops:  [][]Op{put("x1", "", "X"), put("x2", "x1", "X")},
			want: "x2",
		},
		{
			name: "latest evicted falls back to previous", capacity: 3, conv: "X",
			ops: [][]Op{put("x1", "", "X"), put("x2", "x1", "X"), {TouchResponse("x1")},
				put("o1", "", ""), put("o2", "", "")},
			want: "x1",
		},
		{
			name: "all evicted starts fresh", capacity: 2, conv: "X",
			ops:  [][]Op{put("x1", "", "X"), put("x2", "x1", "X"), put("o1", "", ""), put("o2", "", "")},
			want: "",
		},
		{
			name: "latest deleted falls back to previous", capacity: 10, conv: "X",
			ops:  [][]Op{put("x1", "", "X"), put("x2", "x1", "X"), put("x3", "x2", "X"), {DeleteResponse("x3")}},
			want: "x2",
		},
		{
			name: "fallback skips a gap in the chain", capacity: 10, conv: "X",
			ops: [][]Op{put("x1", "", "X"), put("x2", "x1", "X"), put("x3", "x2", "X"),
				{DeleteResponse("x2")}, {DeleteResponse("x3")}},
			want: "x1",
		},
		{
			name: "deleting an older one keeps latest", capacity: 10, conv: "X",
			ops:  [][]Op{put("x1", "", "X"), put("x2", "x1", "X"), {DeleteResponse("x1")}},
			want: "x2",
		},
		{
			name: "deleting the only one starts fresh", capacity: 10, conv: "X",
			ops:  [][]Op{put("x1", "", "X"), {DeleteResponse("x1")}},
			want: "",
		},
		{
			name: "other conversations are not candidates", capacity: 10, conv: "X",
			ops:  [][]Op{put("x1", "", "X"), put("y1", "", "Y"), put("y2", "y1", "Y"), {DeleteResponse("x1")}},
			want: "",
		},
		{
			name: "prefix names do not mix", capacity: 10, conv: "ab",
			ops:  [][]Op{put("ab1", "", "ab"), put("abc1", "", "abc"), put("a1", "", "a"), {DeleteResponse("ab1")}},
			want: "",
		},
		{
			name: "stale latest in a put is repointed", capacity: 10, conv: "X",
			ops: [][]Op{put("x1", "", "X"), put("x2", "x1", "X"), {DeleteResponse("x2")},
				{PutConversation(&Conversation{ID: "X", Latest: "x2"})}},
			want: "x1",
		},
		{
			name: "put before its response in one apply", capacity: 10, conv: "X",
			ops: [][]Op{put("x1", "", "X"),
				{PutConversation(&Conversation{ID: "X", Latest: "x2"}), PutResponse(resp("x2", "x1", "X"))}},
			want: "x2",
		},
		{
			name: "response moved to another conversation", capacity: 10, conv: "X",
			ops:  [][]Op{put("x1", "", "X"), put("x2", "x1", "X"), put("x2", "x1", "Y")},
			want: "x1",
		},
		{
			name: "evicted within the same apply", capacity: 1, conv: "X",
			ops:  [][]Op{{PutResponse(resp("x1", "", "X")), PutResponse(resp("o1", "", ""))}},
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Options{Capacity: tt.capacity})
			for _, ops := range tt.ops {
				apply(t, s, ops...)
			}
			if got := latestOf(t, s, tt.conv); got != tt.want {
				t.Errorf("Latest = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPutConversationRejectsForeignLatest(t *testing.T) {
	s := newStore(t, Options{})
	apply(t, s, PutResponse(resp("y1", "", "Y")))
	err := s.Apply([]Op{PutConversation(&Conversation{ID: "X", Latest: "y1"})})
	he := wantCode(t, err, hermes.EInvalid)
	if !strings.Contains(he.Message, `put conversation "X"`) {
		t.Errorf("message %q does not name the op", he.Message)
	}
}

func TestDeleteConversation(t *testing.T) {
	s := newStore(t, Options{})
	created := time.Date(2024, 5, 5, 0, 0, 0, 0, time.UTC)
	apply(t, s,
		PutConversation(&Conversation{ID: "X", Created: created, Metadata: map[string]string{"topic": "go"}}),
		PutResponse(resp("x1", "", "X")),
		PutResponse(resp("x2", "x1", "X")),
	)
	c, err := s.Conversation("X")
	if err != nil || !c.Created.Equal(created) || c.Metadata["topic"] != "go" || c.Latest != "x2" {
		t.Fatalf("before delete: %+v, %v (a response must keep the metadata and creation time)", c, err)
	}
	apply(t, s, DeleteConversation("X"))
	_, err = s.Conversation("X")
	wantCode(t, err, hermes.ENotFound)
	if !has(t, s, "x1") || !has(t, s, "x2") {
		t.Fatal("responses must stay until evicted")
	}

	// A new conversation of the same name does not fall back to the old
	// conversation's responses.
	apply(t, s, PutResponse(resp("n1", "", "X")))
	if got := latestOf(t, s, "X"); got != "n1" {
		t.Fatalf("Latest = %q, want n1", got)
	}
	apply(t, s, DeleteResponse("n1"))
	if got := latestOf(t, s, "X"); got != "" {
		t.Errorf("Latest after deleting n1 = %q, want \"\"", got)
	}
	// Deleting an old response later does not resurrect or touch X.
	apply(t, s, DeleteResponse("x2"))
	if got := latestOf(t, s, "X"); got != "" {
		t.Errorf("Latest = %q, want \"\"", got)
	}
}

func countKeys(t *testing.T, s *Store, bucket []byte) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error { n++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIdempotencyTTL(t *testing.T) {
	clk := newClock()
	s := newStore(t, Options{Now: clk.Now, IdempotencyTTL: 5 * time.Minute})
	apply(t, s,
		PutIdempotency("k", &IdemEntry{Fingerprint: "f1", Status: 200, Body: []byte("first")}),
		PutIdempotency("own", &IdemEntry{Fingerprint: "f2", Status: 201, Expires: clk.Now().Add(time.Hour)}),
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

	// The next Apply purges it from disk (reads alone never write).
	if n := countKeys(t, s, bucketIdem); n != 2 {
		t.Fatalf("idempotency records before purge = %d, want 2", n)
	}
	apply(t, s, TouchResponse("unrelated"))
	if n, x := countKeys(t, s, bucketIdem), countKeys(t, s, bucketIdemExp); n != 1 || x != 1 {
		t.Fatalf("after purge: %d records, %d expiry keys; want 1 and 1", n, x)
	}

	// Replacing an entry moves its expiry: the old expiry purges nothing.
	apply(t, s, PutIdempotency("r", &IdemEntry{Fingerprint: "a"}))
	clk.Add(4 * time.Minute)
	apply(t, s, PutIdempotency("r", &IdemEntry{Fingerprint: "b"}))
	clk.Add(2 * time.Minute)
	apply(t, s, TouchResponse("unrelated"))
	if e, ok, _ := s.Idempotency("r"); !ok || e.Fingerprint != "b" {
		t.Fatalf("replaced entry = %+v, %v; want fingerprint b still live", e, ok)
	}
}

func TestIdempotencyPurgeIsBounded(t *testing.T) {
	clk := newClock()
	s := newStore(t, Options{Now: clk.Now})
	const total = purgeBatch*2 + 10
	ops := make([]Op, total)
	for i := range ops {
		ops[i] = PutIdempotency(fmt.Sprintf("k%03d", i), &IdemEntry{Fingerprint: "f"})
	}
	apply(t, s, ops...)
	clk.Add(time.Hour)
	for want := total - purgeBatch; want >= 0; want -= purgeBatch {
		apply(t, s, TouchResponse("x"))
		if n := countKeys(t, s, bucketIdem); n != want {
			t.Fatalf("records left = %d, want %d", n, want)
		}
	}
	apply(t, s, TouchResponse("x"))
	if n, x := countKeys(t, s, bucketIdem), countKeys(t, s, bucketIdemExp); n != 0 || x != 0 {
		t.Fatalf("after enough applies: %d records, %d expiry keys", n, x)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "restart.db")
	opts := Options{Capacity: 3, Now: clk.Now}
	s := openAt(t, path, opts)
	apply(t, s,
		PutResponse(resp("a", "", "X")),
		PutResponse(resp("b", "a", "X")),
		PutResponse(resp("c", "", "")),
		TouchResponse("a"),
		PutConversation(&Conversation{ID: "Y", Metadata: map[string]string{"m": "1"}}),
		PutIdempotency("k", &IdemEntry{Fingerprint: "f", Status: 200, Body: []byte("body")}),
	)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, opts)
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
	apply(t, s, PutResponse(resp("d", "", "")))
	if has(t, s, "b") || !has(t, s, "a") {
		t.Error("after restart the victim should be b (a was touched)")
	}
	if got := latestOf(t, s, "X"); got != "a" {
		t.Errorf("Latest(X) after evicting b = %q, want a", got)
	}
}

func TestFailedApplyWritesNothing(t *testing.T) {
	tests := []struct {
		name  string
		ops   []Op
		code  string
		inMsg string
	}{
		{
			name: "fails inside the transaction",
			ops: []Op{PutResponse(resp("a", "", "X")), PutIdempotency("k", &IdemEntry{}),
				PutConversation(&Conversation{ID: "X", Latest: "y1"})},
			code:  hermes.EInvalid,
			inMsg: `op 3 of 3 (put conversation "X")`,
		},
		{
			name:  "empty id",
			ops:   []Op{PutResponse(resp("a", "", "X")), PutResponse(resp("", "", ""))},
			code:  hermes.EInvalid,
			inMsg: `op 2 of 2 (put response "")`,
		},
		{
			name:  "nil record",
			ops:   []Op{PutResponse(resp("a", "", "X")), PutConversation(nil)},
			code:  hermes.EInvalid,
			inMsg: "op 2 of 2",
		},
		{
			name:  "zero op",
			ops:   []Op{PutResponse(resp("a", "", "X")), {}},
			code:  hermes.EInvalid,
			inMsg: "op 2 of 2 (zero op)",
		},
		{
			name:  "id too long",
			ops:   []Op{PutResponse(resp("a", "", "X")), DeleteResponse(strings.Repeat("x", maxIDLen+1))},
			code:  hermes.EInvalid,
			inMsg: "op 2 of 2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Options{})
			apply(t, s, PutResponse(resp("y1", "", "Y")))
			err := s.Apply(tt.ops)
			he := wantCode(t, err, tt.code)
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

func TestApplyAfterClose(t *testing.T) {
	s := newStore(t, Options{})
	s.Close()
	err := s.Apply([]Op{PutResponse(resp("a", "", ""))})
	wantCode(t, err, hermes.EInternal)
	_, err = s.Response("a")
	wantCode(t, err, hermes.EInternal)
	if s.Len() != 0 {
		t.Error("Len of a closed store should be 0")
	}
}

func TestConcurrentReadersDuringApply(t *testing.T) {
	s := newStore(t, Options{Capacity: 20})
	const batches, perBatch, readers = 60, 8, 4
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
					errs <- fmt.Errorf("Len %d over capacity", n)
					return
				}
				reads++
			}
		}()
	}
	for b := range batches {
		ops := make([]Op, 0, perBatch)
		for i := range perBatch {
			n := b*perBatch + i
			ops = append(ops, PutResponse(resp(fmt.Sprintf("r%d", n), "", "C")))
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

func TestCorruptRecords(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		// idemMissing: the bytes decode to an empty idempotency entry,
		// which reads as expired rather than corrupt.
		idemMissing bool
	}{
		{name: "empty", data: []byte{}},
		{name: "unknown version", data: append([]byte{9}, `{"id":"bad"}`...)},
		{name: "truncated json", data: append([]byte{formatVersion}, `{"id":"bad","transcript":[`...)},
		{name: "wrong types", data: append([]byte{formatVersion}, `{"id":"bad","transcript":5,"pending":5,"status":"x"}`...)},
		{name: "not json", data: append([]byte{formatVersion}, 0xff, 0x00, 0x13)},
		{name: "null", data: append([]byte{formatVersion}, `null`...), idemMissing: true},
		{name: "another id", data: append([]byte{formatVersion}, `{"id":"other","status":"x"}`...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Options{})
			err := s.db.Update(func(tx *bolt.Tx) error {
				if err := tx.Bucket(bucketResponses).Put([]byte("bad"), tt.data); err != nil {
					return err
				}
				if err := tx.Bucket(bucketConvs).Put([]byte("bad"), tt.data); err != nil {
					return err
				}
				return tx.Bucket(bucketIdem).Put([]byte("bad"), append(seqKey(1<<62), tt.data...))
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Response("bad")
			if he := wantCode(t, err, hermes.EInternal); !strings.Contains(he.Message, `response "bad"`) {
				t.Errorf("message %q does not name the record", he.Message)
			}
			_, err = s.Conversation("bad")
			if he := wantCode(t, err, hermes.EInternal); !strings.Contains(he.Message, `conversation "bad"`) {
				t.Errorf("message %q does not name the record", he.Message)
			}
			_, ok, err := s.Idempotency("bad")
			if tt.idemMissing {
				if ok || err != nil {
					t.Errorf("Idempotency = %v, %v; want missing", ok, err)
				}
			} else {
				wantCode(t, err, hermes.EInternal)
			}

			// A corrupt conversation does not block writes to it.
			apply(t, s, PutResponse(resp("c1", "", "bad")))
			if got := latestOf(t, s, "bad"); got != "c1" {
				t.Errorf("Latest after rewrite = %q", got)
			}
		})
	}
}
