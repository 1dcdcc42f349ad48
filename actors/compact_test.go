package actors

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
	"github.com/hermesd/hermesd/tooling"
	"github.com/hermesd/hermesd/tooling/llm"
)

// limitedModel enforces a context window on the estimate the agent uses,
// answering over-long prompts with OpenAI's context-length error; it
// summarises deterministically (the user lines it was given) and
// otherwise calls blob once per user turn, then answers.
type limitedModel struct {
	window int
	mu     sync.Mutex
	calls  int
	over   int // prompts refused
	sums   int
	maxEst int // largest prompt seen, by the agent's uncalibrated estimate
	last   llm.Request
}

func (m *limitedModel) Stream(_ context.Context, req llm.Request, _ func(string)) (llm.Response, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	var e llm.Estimator
	est := e.Estimate("", req)
	m.maxEst = max(m.maxEst, est)
	if est > m.window {
		m.over++
		return llm.Response{}, hermes.Errorf(hermes.EUpstream, "upstream 400: This model's maximum context length is %d tokens. However, your messages resulted in more tokens. (context_length_exceeded)", m.window)
	}
	if req.System == llm.SummaryPrompt {
		m.sums++
		var facts []string
		for _, msg := range req.Messages {
			if msg.Role == hermes.RoleUser && msg.Content != llm.SummaryRequest {
				facts = append(facts, msg.Content)
			}
			if msg.Role == hermes.RoleCompaction {
				facts = append(facts, msg.Content)
			}
		}
		return llm.Response{Text: "SUMMARY: " + strings.Join(facts, "; ")}, nil
	}
	m.last = req
	last := req.Messages[len(req.Messages)-1]
	if last.Role == hermes.RoleUser {
		return llm.Response{ToolCalls: []hermes.ToolCall{{ID: "call_" + strconv.Itoa(m.calls), Name: "blob", Arguments: "{}"}}}, nil
	}
	return llm.Response{Text: "ok", Finish: hermes.FinishStop}, nil
}

func compactRuntime(t *testing.T, m llm.Model, window int) (*Runtime, *persistence.Store) {
	t.Helper()
	store, err := persistence.Open(t.TempDir()+"/db", persistence.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	reg := tooling.NewRegistry([]tooling.Tool{blobTool{out: strings.Repeat("x", 2<<10)}}, nil)
	rt := New(Options{Store: store, Agent: &Agent{Model: m, Tools: reg, Window: llm.NewWindow(window),
		Seal: func(s string) string { return "sealed:" + s }}})
	t.Cleanup(func() { rt.Shutdown(context.Background()); store.Close() })
	return rt, store
}

func runTurn(t *testing.T, rt *Runtime, req *hermes.TurnRequest) (*hermes.TurnResult, []hermes.Event) {
	t.Helper()
	events := make(chan hermes.Event, 256)
	req.Events, req.Ctx, req.Progress = events, context.Background(), true
	if err := rt.Submit(req); err != nil {
		t.Fatal(err)
	}
	var got []hermes.Event
	for ev := range events {
		got = append(got, ev)
		if ev.Kind == hermes.EventDone {
			return ev.Result, got
		}
	}
	return nil, got
}

// TestCompactionKeepsConversationAlive: a named conversation of 80 turns,
// each adding a 2 KB tool output, on a 3,000-token window: every turn
// completes, no prompt over the window is ever sent, compaction items are
// made and streamed, the fact of turn 1 is in every later prompt, and what
// the store keeps stays bounded.
func TestCompactionKeepsConversationAlive(t *testing.T) {
	m := &limitedModel{window: 3000}
	rt, store := compactRuntime(t, m, 3000)
	items := 0
	for i := range 80 {
		input := "turn " + strconv.Itoa(i)
		if i == 0 {
			input = "my name is Ada"
		}
		res, events := runTurn(t, rt, &hermes.TurnRequest{ResponseID: "resp_" + strconv.Itoa(i), Conversation: "long", Store: true,
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: input}}})
		if res.Err != nil || !res.Stored {
			t.Fatalf("turn %d: %v", i, res.Err)
		}
		for _, ev := range events {
			if ev.Kind == hermes.EventCompaction {
				items++
				if ev.Item.Role != hermes.RoleCompaction || ev.Item.Encrypted != "sealed:"+ev.Item.Content || res.Record.Compaction == nil {
					t.Fatalf("turn %d: compaction event %+v, record %+v", i, ev.Item, res.Record.Compaction)
				}
			}
		}
		if i > 0 && m.last.Messages[0].Content != "my name is Ada" {
			t.Fatalf("turn %d: the first user message is gone from the prompt", i)
		}
	}
	if m.over > 0 {
		t.Errorf("%d prompts over the window reached the model", m.over)
	}
	if items == 0 || m.sums < items {
		t.Errorf("%d compaction items, %d summarising calls", items, m.sums)
	}
	tr, err := store.Transcript("resp_79")
	if err != nil {
		t.Fatal(err)
	}
	var e llm.Estimator
	if n := e.Estimate("", llm.Request{Messages: tr}); n > 3000 {
		t.Errorf("the stored transcript is %d tokens, past the window", n)
	}
	found := false
	for _, msg := range tr {
		if msg.Role == hermes.RoleCompaction && strings.Contains(msg.Content, "turn ") {
			found = true
		}
	}
	if !found {
		t.Error("the stored transcript has no compaction item summarising the turns")
	}
	t.Logf("80 turns: %d compactions, %d model calls, stored transcript %d items", items, m.calls, len(tr))
}

// TestUpstreamContextErrorCompactsAndRetries: when the upstream refuses a
// prompt the estimate let through, the turn compacts once and retries.
func TestUpstreamContextErrorCompactsAndRetries(t *testing.T) {
	m := &limitedModel{window: 2500}
	// The agent believes the window is far larger: only the upstream's
	// refusal can make it compact.
	rt, _ := compactRuntime(t, m, 1_000_000)
	prev := ""
	for i := range 12 {
		res, _ := runTurn(t, rt, &hermes.TurnRequest{ResponseID: "r" + strconv.Itoa(i), Previous: prev, Store: true,
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: "q" + strconv.Itoa(i)}}})
		if res.Err != nil {
			t.Fatalf("turn %d: %v", i, res.Err)
		}
		prev = "r" + strconv.Itoa(i)
	}
	if m.over == 0 || m.sums == 0 {
		t.Errorf("refused %d prompts and summarised %d times; want both", m.over, m.sums)
	}
}

// TestTruncationModes: "disabled" refuses a prompt past the window before
// any model call; "auto" drops the oldest turns without summarising.
func TestTruncationModes(t *testing.T) {
	m := &limitedModel{window: 1 << 30}
	rt, _ := compactRuntime(t, m, 2000)
	big := strings.Repeat("y", 12000) // ~3,000 tokens
	res, _ := runTurn(t, rt, &hermes.TurnRequest{ResponseID: "d1", Truncation: "disabled", Input: []hermes.Message{{Role: hermes.RoleUser, Content: big}}})
	if res.Err == nil || res.Err.Code != hermes.EContextLength || m.calls != 0 {
		t.Fatalf("disabled: err %v after %d model calls; want context_length_exceeded before any", res.Err, m.calls)
	}
	prev := ""
	for i := range 10 {
		res, _ := runTurn(t, rt, &hermes.TurnRequest{ResponseID: "a" + strconv.Itoa(i), Previous: prev, Store: true, Truncation: "auto",
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: "q" + strconv.Itoa(i)}}})
		if res.Err != nil {
			t.Fatalf("auto turn %d: %v", i, res.Err)
		}
		prev = "a" + strconv.Itoa(i)
	}
	if m.sums != 0 {
		t.Errorf("auto truncation summarised %d times", m.sums)
	}
	if m.maxEst > 2000 {
		t.Errorf("a %d-token prompt was sent through a 2,000-token window", m.maxEst)
	}
	if got := m.last.Messages[0].Content; got != "q0" {
		t.Errorf("auto truncation dropped the first user message: %q", got)
	}
}

// summarisingChain is toolThenAnswer that also summarises.
type summarisingChain struct{ toolThenAnswer }

func (m *summarisingChain) Stream(ctx context.Context, req llm.Request, f func(string)) (llm.Response, error) {
	if req.System == llm.SummaryPrompt {
		return llm.Response{Text: "summary of " + strconv.Itoa(len(req.Messages)) + " messages"}, nil
	}
	return m.toolThenAnswer.Stream(ctx, req, f)
}

// TestCompactionKeepsWritesBounded: a 600-turn chain of 8 KB tool outputs
// through a 32k window compacts again and again, and the bytes a turn
// writes stay flat: each compaction takes the prompt to half the threshold,
// so trimmed outputs cannot pile up into a base rewritten every turn (as
// they did when trimming stopped just under the threshold: 121 KB a turn
// at first, 1 MB by turn 800).
func TestCompactionKeepsWritesBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("600 turns")
	}
	store, err := persistence.Open(t.TempDir()+"/db", persistence.Options{NoSync: true, Capacity: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg := tooling.NewRegistry([]tooling.Tool{blobTool{out: strings.Repeat("x", 8<<10)}}, nil)
	rt := New(Options{Agent: &Agent{Model: &summarisingChain{}, Tools: reg, Window: llm.NewWindow(32000)}, Store: store})
	defer rt.Shutdown(context.Background())
	var perHundred []int64
	w0 := writtenBytes(t)
	bases := 0
	prev := ""
	for i := range 600 {
		id := "resp_" + strconv.Itoa(i)
		res, _ := runTurn(t, rt, &hermes.TurnRequest{ResponseID: id, Previous: prev, Store: true,
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: strconv.Itoa(i)}}})
		if res.Err != nil || !res.Stored {
			t.Fatalf("turn %d: %v", i, res.Err)
		}
		if res.Compacted != nil {
			bases++
		}
		if (i+1)%100 == 0 {
			w := writtenBytes(t)
			perHundred = append(perHundred, (w-w0)/100)
			w0 = w
		}
		prev = id
	}
	t.Logf("bytes written a turn, by hundred turns: %v; %d compactions", perHundred, bases)
	if bases < 10 || bases > 120 {
		t.Fatalf("%d compactions in 600 turns of 8 KB through a 32k window; want them spaced, not every few turns", bases)
	}
	if last, first := perHundred[5], perHundred[1]; last > first*6/5 {
		t.Errorf("turns 500-600 write %d bytes each, turns 100-200 %d: writes grow with the chain", last, first)
	}
}
