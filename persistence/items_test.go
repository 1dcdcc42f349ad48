package persistence

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	hermes "github.com/hermesd/hermesd"
)

// checkItems verifies the items layout of s (itemRecords) and returns the
// number of item records.
func checkItems(t *testing.T, s *Store) int {
	t.Helper()
	n, err := itemRecords(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// itemRecords verifies the items layout of s: every addressed response has
// items; every kept item record is referenced exactly as often as its
// address and its children say; nothing is kept that nothing references.
// It returns the number of item records.
func itemRecords(s *Store) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		resp, items, refs := tx.Bucket(bucketResponses), tx.Bucket(bucketItems), tx.Bucket(bucketItemRefs)
		want := make(map[string]uint32)
		if err := resp.ForEach(func(k, _ []byte) error {
			if items.Get(k) == nil {
				return fmt.Errorf("response %q has no items", k)
			}
			want[string(k)]++
			return nil
		}); err != nil {
			return err
		}
		if err := refs.ForEach(func(k, v []byte) error {
			if len(v) < 4 {
				return fmt.Errorf("refs of %q are short", k)
			}
			if p := string(v[4:]); p != "" {
				if items.Get([]byte(p)) == nil {
					return fmt.Errorf("items of %q point at %q, which has none", k, p)
				}
				want[p]++
			}
			return nil
		}); err != nil {
			return err
		}
		if err := items.ForEach(func(k, _ []byte) error {
			n++
			v := refs.Get(k)
			if len(v) < 4 {
				return fmt.Errorf("items of %q have no reference count", k)
			}
			if got := binary.BigEndian.Uint32(v); got != want[string(k)] || got == 0 {
				return fmt.Errorf("items of %q counted %d references, want %d", k, got, want[string(k)])
			}
			return nil
		}); err != nil {
			return err
		}
		if refs.Stats().KeyN != n {
			return fmt.Errorf("%d reference counts for %d item records", refs.Stats().KeyN, n)
		}
		return nil
	})
	return n, err
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

func wantTranscript(t *testing.T, s *Store, r *hermes.StoredResponse) {
	t.Helper()
	got, err := s.Transcript(r.ID)
	if err != nil {
		t.Fatalf("Transcript(%s): %v", r.ID, err)
	}
	if !reflect.DeepEqual(got, r.Transcript) {
		t.Fatalf("Transcript(%s) has %d items, want %d:\n%+v\nwant %+v", r.ID, len(got), len(r.Transcript), got, r.Transcript)
	}
}

// TestItemsStoredOnce: a response's write holds its own items only, not
// its chain's, and its transcript is read back whole.
func TestItemsStoredOnce(t *testing.T) {
	s := newStore(t, Options{})
	big := strings.Repeat("x", 8<<10)
	var prev *hermes.StoredResponse
	var first, last int
	for i := range 200 {
		r := turn(fmt.Sprintf("r%03d", i), prev)
		r.Output[0].Content = big
		r.Transcript[len(r.Transcript)-1].Content = big
		op := PutResponse(r)
		if i == 0 {
			first = len(op.rec) + len(op.node)
		}
		last = len(op.rec) + len(op.node)
		apply(t, s, op)
		prev = r
	}
	if last > first+64 {
		t.Errorf("turn 200 writes %d bytes, turn 1 %d: the write grows with the chain", last, first)
	}
	wantTranscript(t, s, prev)
	got, err := s.Response(prev.ID)
	if err != nil || got.Parent != "r198" || len(got.Input) != 1 || got.Output[0].Content != big || got.Transcript != nil {
		t.Errorf("Response = %+v, %v", got, err)
	}
	if n := checkItems(t, s); n != 200 {
		t.Errorf("%d item records, want 200", n)
	}
	head, err := s.ResponseHead(prev.ID)
	if err != nil || head.Parent != "r198" || head.Input != nil || head.Output != nil || head.Status != hermes.StatusCompleted {
		t.Errorf("ResponseHead = %+v, %v; want the record without its items", head, err)
	}
	if _, err := s.ResponseHead("nope"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Errorf("ResponseHead(missing) = %v", err)
	}
}

// TestEvictionChurnBoundsItems churns 10,000 responses through a capacity
// of 100, in chains that branch: the items kept are exactly those a
// retained response can reach, their number stays bounded, every retained
// response's transcript stays whole, and the file stops growing.
func TestEvictionChurnBoundsItems(t *testing.T) {
	s := newStore(t, Options{Capacity: 100})
	rng := rand.New(rand.NewPCG(1, 2))
	const total, maxDepth = 10_000, 20
	var recent []*hermes.StoredResponse // candidates to continue
	byID := make(map[string]*hermes.StoredResponse)
	depth := make(map[string]int)
	var sizeAt2k int64
	maxItems := 0
	for i := 0; i < total; {
		ops := make([]Op, 0, 16)
		for range 1 + rng.IntN(16) {
			var parent *hermes.StoredResponse
			if len(recent) > 0 && rng.IntN(4) > 0 {
				parent = recent[rng.IntN(len(recent))]
				if depth[parent.ID] >= maxDepth || !has(t, s, parent.ID) {
					parent = nil
				}
			}
			r := turn(fmt.Sprintf("r%05d", i), parent)
			r.Output[0].Content = strings.Repeat("y", 1+rng.IntN(2048))
			r.Transcript[len(r.Transcript)-1] = r.Output[0]
			if parent != nil {
				depth[r.ID] = depth[parent.ID] + 1
				ops = append(ops, TouchResponse(parent.ID))
			}
			ops = append(ops, PutResponse(r))
			byID[r.ID] = r
			recent = append(recent, r)
			if len(recent) > 50 {
				recent = recent[1:]
			}
			i++
		}
		apply(t, s, ops...)
		if i/500 != (i-len(ops))/500 {
			maxItems = max(maxItems, checkItems(t, s))
		}
		if sizeAt2k == 0 && i >= 2000 {
			st, _ := s.Stats()
			sizeAt2k = st.FileBytes
		}
	}
	if s.Len() != 100 {
		t.Fatalf("Len = %d, want 100", s.Len())
	}
	n := checkItems(t, s)
	maxItems = max(maxItems, n)
	// Each of the 100 retained responses needs at most maxDepth+1 records.
	if maxItems > 100*(maxDepth+1) {
		t.Errorf("up to %d item records kept for 100 responses of depth ≤ %d", maxItems, maxDepth)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketResponses).ForEach(func(k, _ []byte) error {
			wantTranscript(t, s, byID[string(k)])
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := s.Stats()
	t.Logf("%d item records at the end (peak %d); file %d KiB after 2,000 responses, %d KiB after 10,000",
		n, maxItems, sizeAt2k>>10, st.FileBytes>>10)
	if st.FileBytes > 2*sizeAt2k {
		t.Errorf("file grew from %d to %d bytes under churn: no plateau", sizeAt2k, st.FileBytes)
	}
}

// TestMigrateSchema1 opens testdata/schema1.db, written by the schema-1
// code (every record carrying its whole transcript): everything reads back
// as before, chains now share their prefix, and the file is schema 2.
func TestMigrateSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api_server.db")
	copyFixture(t, path)
	s := openAt(t, path, Options{Capacity: 100})

	u := func(s string) hermes.Message { return hermes.Message{Role: hermes.RoleUser, Content: s} }
	a := func(s string) hermes.Message { return hermes.Message{Role: hermes.RoleAssistant, Content: s} }
	call := hermes.Message{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{{ID: "call_1", Name: "terminal", Arguments: `{"command":"ls"}`}}}
	result := hermes.Message{Role: hermes.RoleTool, ToolCallID: "call_1", Name: "terminal", Content: "a.txt\nb.txt"}
	ta := []hermes.Message{u("my name is Ada"), a("hello Ada")}
	tb := append(append([]hermes.Message{}, ta...), u("list files"), call, result, a("a.txt and b.txt"))
	tests := []struct {
		id, parent string
		transcript []hermes.Message
		in, out    int
	}{
		{"resp_a", "", ta, 1, 1},
		{"resp_b", "resp_a", tb, 1, 3},
		{"resp_c", "resp_b", append(append([]hermes.Message{}, tb...), u("what is my name?"), a("Ada")), 1, 1},
		{"resp_d", "resp_b", append(append([]hermes.Message{}, tb...), u("count them"), a("two")), 1, 1},
		{"resp_x1", "", []hermes.Message{u("remember 42"), a("ok")}, 1, 1},
		// A conversation turn: its previous is not its parent, so it keeps
		// its history inline.
		{"resp_x2", "", []hermes.Message{u("remember 42"), a("ok"), u("pending from the API"), u("what number?"), a("42")}, 1, 1},
		{"resp_queued", "", []hermes.Message{u("background job")}, 1, 0},
	}
	for _, tt := range tests {
		r, err := s.Response(tt.id)
		if err != nil {
			t.Fatalf("Response(%s): %v", tt.id, err)
		}
		n := len(tt.transcript)
		if r.Parent != tt.parent || !reflect.DeepEqual(r.Input, tt.transcript[n-tt.in-tt.out:n-tt.out]) ||
			!reflect.DeepEqual(r.Output, orNil(tt.transcript[n-tt.out:])) {
			t.Errorf("Response(%s) = parent %q input %+v output %+v", tt.id, r.Parent, r.Input, r.Output)
		}
		if tt.id != "resp_queued" && (r.Status != hermes.StatusCompleted || string(r.Wire) != `{"instructions":"be brief"}` || r.Usage.PromptTokens != 10) {
			t.Errorf("Response(%s) lost its fields: %+v", tt.id, r)
		}
		got, err := s.Transcript(tt.id)
		if err != nil || !reflect.DeepEqual(got, tt.transcript) {
			t.Errorf("Transcript(%s) = %+v, %v\nwant %+v", tt.id, got, err, tt.transcript)
		}
	}
	if n := checkItems(t, s); n != len(tests) || s.Len() != len(tests) {
		t.Errorf("%d item records, %d responses; want %d each", n, s.Len(), len(tests))
	}
	c, err := s.Conversation("conv_x")
	if err != nil || c.Latest != "resp_x2" || c.Metadata["topic"] != "numbers" || len(c.Pending) != 1 || c.Pending[0].Content != "added later" {
		t.Errorf("Conversation(conv_x) = %+v, %v", c, err)
	}
	if c, err := s.Conversation("conv_empty"); err != nil || c.Metadata["k"] != "v" {
		t.Errorf("Conversation(conv_empty) = %+v, %v", c, err)
	}
	if e, ok, err := s.Idempotency("idem-1"); !ok || err != nil || string(e.Body) != `{"id":"resp_a"}` {
		t.Errorf("Idempotency(idem-1) = %+v, %v, %v", e, ok, err)
	}
	// No record carries a transcript any more.
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchema)); v != schemaVersion {
			return fmt.Errorf("schema %d after migration", v)
		}
		return tx.Bucket(bucketResponses).ForEach(func(k, v []byte) error {
			if bytes.Contains(v, []byte(`"transcript"`)) {
				return fmt.Errorf("record %s still carries its transcript", k)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	// The LRU order survived (resp_a was touched last): new writes evict
	// resp_b first, whose items stay for resp_c and resp_d.
	apply(t, s, PutResponse(resp("resp_new", "", "")))
	s.Close()
	s = openAt(t, path, Options{Capacity: 8})
	apply(t, s, PutResponse(resp("resp_new2", "", "")))
	if has(t, s, "resp_b") || !has(t, s, "resp_a") || !has(t, s, "resp_c") {
		t.Error("after migration the victim should be resp_b")
	}
	if got, err := s.Transcript("resp_d"); err != nil || len(got) != len(tests[3].transcript) {
		t.Errorf("Transcript(resp_d) after evicting its parent = %d items, %v", len(got), err)
	}
	checkItems(t, s)
}

// copyFixture copies testdata/schema1.db to path.
func copyFixture(t *testing.T, path string) {
	t.Helper()
	src, err := os.ReadFile("testdata/schema1.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
}

// crashChildEnv names the file the crash child writes to.
const crashChildEnv = "HERMES_PERSISTENCE_CRASH_CHILD"

// TestCrashChild is the process TestSIGKILLMidWrite kills: it writes
// chains with eviction, fsync on, and prints each committed batch's last id.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("run by TestSIGKILLMidWrite")
	}
	s, err := Open(path, Options{Capacity: 50})
	if err != nil {
		t.Fatal(err)
	}
	heads := make([]*hermes.StoredResponse, 8)
	for i := 0; ; i++ {
		ops := make([]Op, 0, len(heads))
		for c := range heads {
			r := turn(fmt.Sprintf("c%d-%06d", c, i), heads[c])
			if i%25 == 0 {
				r = turn(r.ID, nil) // a new chain now and then
			}
			r.Transcript = nil // the writer needs only the parent pointer
			ops = append(ops, PutResponse(r))
			heads[c] = r
		}
		if err := s.Apply(ops); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("committed %d\n", i)
	}
}

// TestSIGKILLMidWrite kills a process in the middle of its writes and
// checks the file it leaves: every batch it reported committed is there,
// reference counts agree with the records, and every transcript is whole.
func TestSIGKILLMidWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs and kills a subprocess")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a round-dependent number of commits, mid-stream.
		want := 20 + 30*round
		buf := make([]byte, 0, 4096)
		last := -1
		deadline := time.Now().Add(30 * time.Second)
		for last < want && time.Now().Before(deadline) {
			chunk := make([]byte, 512)
			k, err := out.Read(chunk)
			buf = append(buf, chunk[:k]...)
			for {
				nl := bytes.IndexByte(buf, '\n')
				if nl < 0 {
					break
				}
				fmt.Sscanf(string(buf[:nl]), "committed %d", &last)
				buf = buf[nl+1:]
			}
			if err == io.EOF {
				t.Fatalf("round %d: child exited after %d commits", round, last)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if last < want {
			t.Fatalf("round %d: only %d commits in 30s", round, last)
		}

		s, err := Open(path, Options{Capacity: 50, NoSync: true})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		for c := range 8 {
			id := fmt.Sprintf("c%d-%06d", c, last)
			tr, err := s.Transcript(id)
			if err != nil {
				t.Fatalf("round %d: reported committed %s: %v", round, id, err)
			}
			if want := 2 * (last%25 + 1); len(tr) != want {
				t.Fatalf("round %d: Transcript(%s) has %d items, want %d", round, id, len(tr), want)
			}
		}
		checkItems(t, s)
		t.Logf("round %d: killed after %d commits; %d responses, %d item records", round, last, s.Len(), checkItems(t, s))
		s.Close()
	}
}
