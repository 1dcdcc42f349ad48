package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// TestStats: the bbolt store reports its response count and file size
// (the round trip itself is storetest's RoundTrip).
func TestStats(t *testing.T) {
	s := newStore(t, Options{})
	apply(t, s, PutResponse(resp("a", "", "")), PutResponse(resp("b", "a", "")))
	st, err := s.Stats()
	if err != nil || st.Responses != 2 || st.FileBytes <= 0 {
		t.Errorf("Stats = %+v, %v", st, err)
	}
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
