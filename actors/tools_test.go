package actors

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
	"github.com/hermesd/hermesd/tooling"
	"github.com/hermesd/hermesd/tooling/llm"
)

// testTool is a tool whose Run the test supplies.
type testTool struct {
	name string
	run  func(ctx context.Context) string
}

func (t *testTool) Spec() hermes.ToolSpec {
	return hermes.ToolSpec{Name: t.name, Description: "test tool", Parameters: []byte(`{"type":"object"}`)}
}
func (t *testTool) Emoji() string                                  { return "🧪" }
func (t *testTool) Label([]byte) string                            { return t.name }
func (t *testTool) Run(ctx context.Context, _ tooling.Call) string { return t.run(ctx) }

// newToolRuntime is a runtime on a temp store whose agent is the offline
// model with tools.
func newToolRuntime(t *testing.T, opts Options, agent *Agent, tools ...tooling.Tool) *Runtime {
	t.Helper()
	store, err := persistence.Open(t.TempDir()+"/db", persistence.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	agent.Model = llm.NewOffline()
	agent.Tools = tooling.NewRegistry(tools, nil)
	opts.Agent, opts.Store = agent, store
	rt := New(opts)
	t.Cleanup(func() {
		// Bounded, so a turn a stuck tool holds fails the test, not hangs it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Shutdown(ctx)
		store.Close()
	})
	return rt
}

// within waits up to d for a value on ch, failing the test without one.
func within[T any](t *testing.T, ch <-chan T, d time.Duration) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("nothing within %v", d)
		var zero T
		return zero
	}
}

// A tool that never returns (it ignores its context, as a blocking open
// of a FIFO does) no longer holds its turn: at HERMES_TURN_TIMEOUT the turn
// ends with a timeout, the tool's result says it was abandoned, and the
// turn's slot is free again. With a cap of 2, two such turns used to leave
// every later turn refused with 429 for good.
func TestStuckToolIsAbandonedAtTurnTimeout(t *testing.T) {
	release := make(chan struct{})
	stuck := &testTool{name: "stuck", run: func(context.Context) string { <-release; return `{"ok":true}` }}
	agent := &Agent{}
	rt := newToolRuntime(t, Options{MaxTurns: 2, TurnTimeout: 300 * time.Millisecond}, agent, stuck)
	t.Cleanup(func() { close(release) }) // before the runtime's cleanup (cleanups run last first)

	var turns []<-chan *hermes.TurnResult
	for i := 0; i < 2; i++ {
		ch, err := submit(t, rt, &hermes.TurnRequest{ResponseID: fmt.Sprintf("resp_stuck%d", i), Conversation: fmt.Sprintf("c%d", i),
			Store: true, Input: []hermes.Message{{Role: hermes.RoleUser, Content: "/tool stuck {}"}}})
		if err != nil {
			t.Fatal(err)
		}
		turns = append(turns, ch)
	}
	for i, ch := range turns {
		r := within(t, ch, 10*time.Second)
		if r.Err == nil || r.Err.Code != hermes.ETimeout {
			t.Fatalf("turn %d: err %+v, want timeout", i, r.Err)
		}
		if r.Record == nil || r.Record.Status != hermes.StatusFailed {
			t.Fatalf("turn %d: record %+v", i, r.Record)
		}
		var out string
		for _, m := range r.Record.Output {
			if m.Role == hermes.RoleTool {
				out = m.Content
			}
		}
		if !strings.Contains(out, "abandoned") || !strings.Contains(out, "HERMES_TURN_TIMEOUT") {
			t.Fatalf("turn %d: tool result %q does not say it was abandoned at the timeout", i, out)
		}
	}
	if got := agent.Running(); len(got) != 2 || !strings.HasPrefix(got[0], "stuck (call_1) for ") {
		t.Fatalf("running tools = %q, want the two abandoned calls", got)
	}
	if s := rt.Stats(); s.Admitted != 0 {
		t.Fatalf("slots still held after the timeouts: %+v", s)
	}
	waitRunning(t, rt, 0) // a turn counts as running until just after its last event
	ch, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_after", Conversation: "c9", Store: true,
		Input: []hermes.Message{{Role: hermes.RoleUser, Content: "hello"}}})
	if err != nil {
		t.Fatalf("a new turn after the stuck ones: %v", err)
	}
	if r := within(t, ch, 10*time.Second); r.Err != nil || !strings.Contains(r.Text, "hello") {
		t.Fatalf("new turn: %+v %q", r.Err, r.Text)
	}
}

// One model response asking for 500 tool calls runs at most
// MaxParallelTools of them at a time and at most 128 in all; the rest are
// answered as refused, with the reason, and the turn goes on.
func TestToolCallsPerResponseAreBounded(t *testing.T) {
	const parallel = 8
	var cur, peak, ran atomic.Int64
	full := make(chan struct{})
	var fullOnce sync.Once
	probe := &testTool{name: "probe", run: func(context.Context) string {
		ran.Add(1)
		n := cur.Add(1)
		defer cur.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if n >= parallel {
			fullOnce.Do(func() { close(full) })
		}
		// Hold the first calls until the cap is reached, so a cap that let
		// more run together would show in the peak.
		select {
		case <-full:
		case <-time.After(5 * time.Second):
		}
		return `{"ok":true}`
	}}
	agent := &Agent{MaxParallelTools: parallel}
	rt := newToolRuntime(t, Options{}, agent, probe)
	prompt := strings.Repeat("/tool probe {}\n", 500)
	ch, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_many", Store: true,
		Input: []hermes.Message{{Role: hermes.RoleUser, Content: prompt}}})
	if err != nil {
		t.Fatal(err)
	}
	r := within(t, ch, 30*time.Second)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	t.Logf("500 calls in one response: %d ran, at most %d at once", ran.Load(), peak.Load())
	if p := peak.Load(); p != parallel {
		t.Fatalf("peak concurrency %d, want %d", p, parallel)
	}
	if n := ran.Load(); n != maxCallsPerResponse {
		t.Fatalf("%d calls ran, want %d", n, maxCallsPerResponse)
	}
	var ok, refused int
	for _, m := range r.Record.Output {
		if m.Role != hermes.RoleTool {
			continue
		}
		switch {
		case m.Content == `{"ok":true}`:
			ok++
		case strings.Contains(m.Content, "refused: one response may make at most 128 tool calls"):
			refused++
		default:
			t.Fatalf("unexpected result %q", m.Content)
		}
	}
	if ok != 128 || refused != 372 {
		t.Fatalf("%d results ok, %d refused; want 128 and 372", ok, refused)
	}
}
