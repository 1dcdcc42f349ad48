package actors

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// countingStore counts transcript reads: the walks over every ancestor
// that the conversation actor's cache exists to avoid.
type countingStore struct {
	*persistence.Store
	walks atomic.Int64
}

func (s *countingStore) Transcript(id string) ([]hermes.Message, error) {
	s.walks.Add(1)
	return s.Store.Transcript(id)
}

func texts(msgs []hermes.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Content
	}
	return out
}

// TestTranscriptCachedInActor: consecutive turns of a chain and of a named
// conversation take the transcript from the actor's cache; a new actor (or
// a new process) reads it back whole from the parents in the store, and
// what is stored is exactly what the model saw.
func TestTranscriptCachedInActor(t *testing.T) {
	db, err := persistence.Open(t.TempDir()+"/db", persistence.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := &countingStore{Store: db}
	m := &gateModel{}
	start := func() *Runtime {
		return New(Options{Agent: &Agent{Model: m}, Store: store})
	}
	rt := start()
	run := func(rt *Runtime, req *hermes.TurnRequest) *hermes.TurnResult {
		t.Helper()
		req.Store = true
		ch, err := submit(t, rt, req)
		if err != nil {
			t.Fatal(err)
		}
		res := <-ch
		if res.Err != nil || !res.Stored {
			t.Fatalf("turn %s: %v (stored %v)", req.ResponseID, res.Err, res.Stored)
		}
		return res
	}
	lastSeen := func() []string {
		m.mu.Lock()
		defer m.mu.Unlock()
		return texts(m.seen[len(m.seen)-1])
	}
	user := func(s string) []hermes.Message { return []hermes.Message{{Role: hermes.RoleUser, Content: s}} }

	var want []string
	prev := ""
	for i := range 6 {
		id := "resp_" + strconv.Itoa(i)
		run(rt, &hermes.TurnRequest{ResponseID: id, Previous: prev, Input: user("q" + strconv.Itoa(i))})
		want = append(want, "q"+strconv.Itoa(i))
		if got := lastSeen(); !reflect.DeepEqual(got, want) {
			t.Fatalf("turn %d: model saw %q, want %q", i, got, want)
		}
		want = append(want, "echo: q"+strconv.Itoa(i))
		prev = id
	}
	if n := store.walks.Load(); n != 0 {
		t.Errorf("%d transcript reads for a chain whose actor holds it, want 0", n)
	}

	run(rt, &hermes.TurnRequest{ResponseID: "resp_c1", Conversation: "named", Input: user("one")})
	if _, err := rt.UpdateConversation("named", func(c *hermes.Conversation) { c.Pending = append(c.Pending, user("note")...) }); err != nil {
		t.Fatal(err)
	}
	run(rt, &hermes.TurnRequest{ResponseID: "resp_c2", Conversation: "named", Input: user("two")})
	if got, want := lastSeen(), []string{"one", "echo: one", "note", "two"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("conversation turn saw %q, want %q", got, want)
	}
	if n := store.walks.Load(); n != 0 {
		t.Errorf("%d transcript reads for a conversation whose actor holds it, want 0", n)
	}
	if tr, err := db.Transcript("resp_c2"); err != nil || !reflect.DeepEqual(texts(tr), []string{"one", "echo: one", "note", "two", "echo: two"}) {
		t.Errorf("stored transcript of resp_c2 = %q, %v", texts(tr), err)
	}
	if c, err := db.Conversation("named"); err != nil || len(c.Pending) != 0 {
		t.Errorf("pending items not consumed: %+v, %v", c, err)
	}
	if err := rt.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A new runtime has no actors: one read each, whole.
	rt = start()
	defer rt.Shutdown(context.Background())
	run(rt, &hermes.TurnRequest{ResponseID: "resp_6", Previous: prev, Input: user("q6")})
	if got := lastSeen(); !reflect.DeepEqual(got, append(want, "q6")) {
		t.Fatalf("after restart the model saw %q", got)
	}
	run(rt, &hermes.TurnRequest{ResponseID: "resp_c3", Conversation: "named", Input: user("three")})
	if got := lastSeen(); !reflect.DeepEqual(got, []string{"one", "echo: one", "note", "two", "echo: two", "three"}) {
		t.Fatalf("after restart the conversation turn saw %q", got)
	}
	if n := store.walks.Load(); n != 2 {
		t.Errorf("%d transcript reads after restart, want 2 (one per conversation)", n)
	}
}

// TestUnstoredTurnDoesNotShareTheCache: a turn that stores nothing (store:
// false on a stored chain) extends the cached transcript's array in place;
// the next turn must not write over what it produced.
func TestUnstoredTurnDoesNotShareTheCache(t *testing.T) {
	rt := newRuntime(t, &gateModel{}, Options{})
	user := func(s string) []hermes.Message { return []hermes.Message{{Role: hermes.RoleUser, Content: s}} }
	run := func(req *hermes.TurnRequest) *hermes.TurnResult {
		t.Helper()
		req.Wire = []byte(`{}`) // a Responses turn: its record is built, stored or not
		ch, err := submit(t, rt, req)
		if err != nil {
			t.Fatal(err)
		}
		res := <-ch
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		return res
	}
	// Grow the chain until its cached transcript has room for a turn.
	prev := ""
	for i := 0; ; i++ {
		id := "resp_" + strconv.Itoa(i)
		rec := run(&hermes.TurnRequest{ResponseID: id, Previous: prev, Store: true, Input: user(id)}).Record
		prev = id
		if cap(rec.Transcript) >= len(rec.Transcript)+2 {
			break
		}
		if i == 20 {
			t.Fatal("the cached transcript never had room to grow in place")
		}
	}
	x := run(&hermes.TurnRequest{ResponseID: "resp_x", Previous: prev, Input: user("x")})
	y := run(&hermes.TurnRequest{ResponseID: "resp_y", Previous: prev, Store: true, Input: user("y")})
	if got := texts(x.Record.Output); !reflect.DeepEqual(got, []string{"echo: x"}) {
		t.Errorf("the unstored turn's output became %q", got)
	}
	if got := texts(y.Record.Output); !reflect.DeepEqual(got, []string{"echo: y"}) {
		t.Errorf("the stored turn's output is %q", got)
	}
}

// TestCheckToolOutputs: an output answers a call of the history or of the
// input, once; and a turn that answers no call does no work on its
// history, which is the whole chain (it used to index every call of it on
// every turn, a cost growing with the chain).
func TestCheckToolOutputs(t *testing.T) {
	call := func(id string) hermes.Message {
		return hermes.Message{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{{ID: id, Name: "lookup"}}}
	}
	out := func(id string) hermes.Message {
		return hermes.Message{Role: hermes.RoleTool, ToolCallID: id, Content: "x"}
	}
	user := hermes.Message{Role: hermes.RoleUser, Content: "go on"}
	history := []hermes.Message{user, call("c1"), out("c1"), call("c2")}
	for _, tc := range []struct {
		name    string
		history []hermes.Message
		input   []hermes.Message
		wantErr string
	}{
		{"plain input", history, []hermes.Message{user}, ""},
		{"answers a pending call", history, []hermes.Message{out("c2")}, ""},
		{"answers a call of its own input", history, []hermes.Message{call("c9"), out("c9")}, ""},
		{"answers an unknown call", history, []hermes.Message{out("c7")}, "No tool call found"},
		{"answers an answered call", history, []hermes.Message{out("c1")}, "already answered"},
		{"answers a call twice", history, []hermes.Message{out("c2"), out("c2")}, "already answered"},
		{"no history", nil, []hermes.Message{out("c7")}, ""},
	} {
		err := checkToolOutputs(tc.history, tc.input)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	long := make([]hermes.Message, 0, 3000)
	for i := range 1000 {
		id := "call_" + strconv.Itoa(i)
		long = append(long, user, call(id), out(id))
	}
	if n := testing.AllocsPerRun(20, func() {
		if err := checkToolOutputs(long, []hermes.Message{user}); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("checking a plain input against a 3,000-item history made %.0f allocations: it indexes the history", n)
	}
}
