package actors

import (
	"context"
	"reflect"
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
// writes stay flat. Each compaction takes the prompt to half the
// threshold, so trimmed outputs cannot pile up into a base rewritten every
// turn (as they did when trimming stopped just under the threshold: 121 KB
// a turn at first, 1 MB by turn 800); and a pass that only trims writes no
// base at all (the record keeps its parent: trims are made again from the
// stored history), and a summary points at the turns it kept (its parent,
// from the first kept item) instead of copying them: only the chain
// passing maxUnbased behind its last base writes a copy. When every pass
// wrote a copy, turns 100-600 wrote 114-122 KB each.
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
	bases, trims, rebases := 0, 0, 0
	var prevUnbased int64
	var plainBytes, trimBytes, summaryBytes []int64
	prev := ""
	for i := range 600 {
		id := "resp_" + strconv.Itoa(i)
		before := writtenBytes(t)
		res, _ := runTurn(t, rt, &hermes.TurnRequest{ResponseID: id, Previous: prev, Store: true,
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: strconv.Itoa(i)}}})
		if res.Err != nil || !res.Stored {
			t.Fatalf("turn %d: %v", i, res.Err)
		}
		head, err := store.ResponseHead(id)
		if err != nil {
			t.Fatal(err)
		}
		rebased := head.Parent == "" && res.Trimmed != nil && prevUnbased+16<<10 > maxUnbased
		switch wrote := writtenBytes(t) - before; {
		case res.Compacted != nil:
			bases++
			summaryBytes = append(summaryBytes, wrote)
			if res.Splice == nil || head.Parent != prev {
				t.Fatalf("turn %d summarised: stored with parent %q, want %q and a splice (its kept turns are the parent's)", i, head.Parent, prev)
			}
		case rebased:
			// Past maxUnbased: the trimmed history became a base.
			rebases++
		case res.Trimmed != nil:
			trims++
			trimBytes = append(trimBytes, wrote)
			if head.Parent != prev {
				t.Fatalf("turn %d trimmed its history: stored with parent %q, want %q", i, head.Parent, prev)
			}
		case i >= 100: // the store is full: every turn evicts, as trims do
			plainBytes = append(plainBytes, wrote)
		}
		if (i+1)%100 == 0 {
			w := writtenBytes(t)
			perHundred = append(perHundred, (w-w0)/100)
			w0 = w
		}
		prev, prevUnbased = id, head.Unbased
	}
	t.Logf("bytes written a turn, by hundred turns: %v; %d summaries, %d trims, %d rebased past the bound", perHundred, bases, trims, rebases)
	if bases < 2 || bases > 60 {
		t.Fatalf("%d summaries in 600 turns of 8 KB through a 32k window; want them spaced, not every few turns", bases)
	}
	if trims < 20 {
		t.Fatalf("%d passes that only trimmed in 600 turns: the test no longer shows what they write", trims)
	}
	if tb, pb := meanOf(trimBytes), meanOf(plainBytes); tb > 1.2*pb {
		t.Errorf("a turn that trimmed wrote %.0f bytes, one that did not %.0f: the trimmed history is written out", tb, pb)
	}
	if sb, pb := meanOf(summaryBytes), meanOf(plainBytes); sb > 1.2*pb {
		t.Errorf("a turn that summarised wrote %.0f bytes, one that did not %.0f: the kept turns are copied", sb, pb)
	}
	for i := 2; i < len(perHundred); i++ {
		if perHundred[i] > perHundred[1]*6/5 {
			t.Errorf("turns %d-%d write %d bytes each, turns 100-200 %d: writes grow with the chain", 100*i, 100*i+100, perHundred[i], perHundred[1])
		}
	}
}

// TestTrimmedHistoryReadBackTrimsAgain: a turn that only trimmed old tool
// outputs is stored after its parent, not as a trimmed copy; a runtime
// that never saw the chain (restarted, cache empty) reads the untrimmed
// history back, trims it again, and continues within the window.
func TestTrimmedHistoryReadBackTrimsAgain(t *testing.T) {
	m := &limitedModel{window: 8000}
	rt, store := compactRuntime(t, m, 8000)
	trimmed, _ := chainUntil(t, rt, store, 40, func(i int, res *hermes.TurnResult) bool {
		if res.Compacted != nil {
			t.Fatalf("turn %d summarised before any turn only trimmed: the test needs a smaller step", i)
		}
		return res.Trimmed != nil
	})
	stored, err := store.Transcript(trimmed)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range stored {
		if strings.Contains(msg.Content, "trimmed by hermesd") {
			t.Fatalf("the stored transcript holds a trimmed output: the trims were written out")
		}
	}

	fresh := New(Options{Store: store, Agent: &Agent{Model: m, Tools: tooling.NewRegistry([]tooling.Tool{blobTool{out: strings.Repeat("x", 2<<10)}}, nil),
		Window: llm.NewWindow(8000)}})
	defer fresh.Shutdown(context.Background())
	over := m.over
	res, _ := runTurn(t, fresh, &hermes.TurnRequest{ResponseID: "resp_after", Previous: trimmed, Store: true,
		Input: []hermes.Message{{Role: hermes.RoleUser, Content: "what was fact 0?"}}})
	if res.Err != nil || !res.Stored {
		t.Fatalf("continuing after a restart: %v", res.Err)
	}
	if m.over != over {
		t.Errorf("a prompt over the window reached the model after the restart")
	}
	if res.Trimmed == nil && res.Compacted == nil {
		t.Errorf("the untrimmed history read back was sent as it is")
	}
	if got := m.last.Messages[0].Content; got != "fact 0" {
		t.Errorf("the prompt after the restart begins with %q, want the chain's first fact", got)
	}
}

// TestTrimmingChainRebasesPastBound: a chain of 64 KB tool outputs through
// a 128k window trims every few turns and would summarise only after
// hundreds; the items it keeps behind its last base stay under maxUnbased,
// because a trimming turn past the bound writes its trimmed history as a
// new base, whose transcript reads back whole (first message first,
// outputs trimmed) with no compaction item.
func TestTrimmingChainRebasesPastBound(t *testing.T) {
	if testing.Short() {
		t.Skip("100 turns of 64 KB")
	}
	store, err := persistence.Open(t.TempDir()+"/db", persistence.Options{NoSync: true, Capacity: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg := tooling.NewRegistry([]tooling.Tool{blobTool{out: strings.Repeat("y", 64<<10)}}, nil)
	rt := New(Options{Agent: &Agent{Model: &summarisingChain{}, Tools: reg, Window: llm.NewWindow(llm.DefaultContextWindow)}, Store: store})
	defer rt.Shutdown(context.Background())
	prev, rebased := "", ""
	for i := range 100 {
		id := "resp_" + strconv.Itoa(i)
		res, _ := runTurn(t, rt, &hermes.TurnRequest{ResponseID: id, Previous: prev, Store: true,
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: strconv.Itoa(i)}}})
		if res.Err != nil || !res.Stored {
			t.Fatalf("turn %d: %v", i, res.Err)
		}
		if res.Compacted != nil {
			t.Fatalf("turn %d summarised: the test wants a chain that only trims", i)
		}
		head, err := store.ResponseHead(id)
		if err != nil {
			t.Fatal(err)
		}
		if head.Unbased > maxUnbased+(128<<10) {
			t.Fatalf("turn %d: %d bytes of items stored behind the chain's last base (bound %d)", i, head.Unbased, maxUnbased)
		}
		if i > 0 && head.Parent == "" && rebased == "" {
			rebased = id
			if res.Trimmed == nil || res.Compaction != nil {
				t.Fatalf("turn %d became a base without trimming, or with a compaction item", i)
			}
		}
		prev = id
	}
	if rebased == "" {
		t.Fatal("100 turns of 64 KB (6 MB) never wrote a new base")
	}
	tr, err := store.Transcript(rebased)
	if err != nil {
		t.Fatal(err)
	}
	trimmed := 0
	for _, m := range tr {
		if strings.Contains(m.Content, "trimmed by hermesd") {
			trimmed++
		}
	}
	if tr[0].Content != "0" || trimmed == 0 {
		t.Errorf("the new base's transcript begins with %q and holds %d trimmed outputs", tr[0].Content, trimmed)
	}
}

// TestSplicedSummaryReadBack: a summary on a stored chain keeps its
// parent and points at the turns it kept; the transcript read back from
// the store is the compacted one (first user message, compaction item,
// kept turns, this turn: the same items as in memory, outputs untrimmed
// aside), and a runtime that never saw the chain continues from it within
// the window.
func TestSplicedSummaryReadBack(t *testing.T) {
	m := &limitedModel{window: 3000}
	rt, store := compactRuntime(t, m, 3000)
	spliced, res := chainUntil(t, rt, store, 60, func(_ int, res *hermes.TurnResult) bool {
		return res.Compacted != nil && res.Splice != nil
	})
	inMemory := res.Record.Transcript
	got, err := store.Transcript(spliced)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(inMemory) {
		t.Fatalf("read back %d items, in memory %d", len(got), len(inMemory))
	}
	for i := range got {
		trimmed := strings.Contains(inMemory[i].Content, "trimmed by hermesd")
		if got[i].Role != inMemory[i].Role || (!trimmed && !reflect.DeepEqual(got[i], inMemory[i])) {
			t.Fatalf("item %d read back as %+v, in memory %+v", i, got[i], inMemory[i])
		}
	}
	if got[0].Content != "fact 0" || got[1].Role != hermes.RoleCompaction {
		t.Fatalf("the transcript read back starts %q, %q: want the first fact, then the compaction item", got[0].Content, got[1].Role)
	}

	fresh := New(Options{Store: store, Agent: &Agent{Model: m, Tools: tooling.NewRegistry([]tooling.Tool{blobTool{out: strings.Repeat("x", 2<<10)}}, nil),
		Window: llm.NewWindow(3000)}})
	defer fresh.Shutdown(context.Background())
	over := m.over
	res, _ = runTurn(t, fresh, &hermes.TurnRequest{ResponseID: "resp_after", Previous: spliced, Store: true,
		Input: []hermes.Message{{Role: hermes.RoleUser, Content: "what was fact 0?"}}})
	if res.Err != nil || !res.Stored || m.over != over {
		t.Fatalf("continuing after a restart: %v (%d prompts over the window)", res.Err, m.over-over)
	}
	if first := m.last.Messages[0].Content; first != "fact 0" {
		t.Errorf("the prompt after the restart begins with %q", first)
	}
}

// chainUntil continues one stored chain with "fact N" turns until found
// says a turn's result is the one looked for, and checks that turn was
// stored after its parent; it fails after turns turns.
func chainUntil(t *testing.T, rt *Runtime, store *persistence.Store, turns int, found func(i int, res *hermes.TurnResult) bool) (string, *hermes.TurnResult) {
	t.Helper()
	prev := ""
	for i := range turns {
		id := "resp_" + strconv.Itoa(i)
		res, _ := runTurn(t, rt, &hermes.TurnRequest{ResponseID: id, Previous: prev, Store: true,
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: "fact " + strconv.Itoa(i)}}})
		if res.Err != nil || !res.Stored {
			t.Fatalf("turn %d: %v", i, res.Err)
		}
		if found(i, res) {
			if head, err := store.ResponseHead(id); err != nil || head.Parent != prev {
				t.Fatalf("turn %d was stored with parent %q (err %v), want %q", i, head.Parent, err, prev)
			}
			return id, res
		}
		prev = id
	}
	t.Fatalf("%d turns and none was the one looked for", turns)
	return "", nil
}
