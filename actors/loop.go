package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
	"github.com/hermesd/hermesd/tooling/llm"
)

// Agent is the agent loop: call the model with tools, run the tools it asks
// for, repeat until it answers. It holds no per-turn state and is shared by
// every turn.
type Agent struct {
	Model         llm.Model
	Tools         *tooling.Registry
	MaxIterations int
	// Prompt layers the agent's own system prompt around the caller's.
	Prompt func(callerSystem string) string
	// UpstreamModel is the model id sent upstream ("" lets the provider choose).
	UpstreamModel string
	// Window is the model's context window, CompactAt the prompt size in
	// tokens past which a turn compacts its history (HERMES_COMPACT_AT, as
	// a function of the window), and Estimator the prompt-size estimate,
	// calibrated from each call's reported prompt_tokens. A nil Window
	// turns compaction off.
	Window    *llm.Window
	CompactAt func(window int) int
	Estimator *llm.Estimator
	// Seal seals a compaction item's summary for clients (AES-GCM under a
	// key in HERMES_HOME); nil leaves items without encrypted content.
	Seal func(summary string) string
	// OnModelCall and OnTool, when set, observe each model call and tool
	// run (metrics).
	OnModelCall func(d time.Duration, err error)
	OnTool      func(name string, failed bool, d time.Duration)
	// MaxParallelTools caps the tool calls of one model response that run
	// at once (HERMES_MAX_PARALLEL_TOOLS, default 8): a response with 500
	// terminal calls once started 500 processes together.
	MaxParallelTools int
	// Setup, when set, is asked at the start of each turn what it runs
	// with for the model its request names (resolved by the front end):
	// the model (with its fallbacks), the id sent upstream, the context
	// window, the tools and the prompt. A reload (SIGHUP) changes its
	// answers for new turns; a running turn keeps what it started with.
	Setup func(model string) TurnSetup

	// Remote connects to a request's MCP server for one turn; nil refuses
	// requests that name one.
	Remote func(ctx context.Context, s hermes.RemoteMCP) (RemoteServer, error)

	// running is shared by the turns' copies of the agent (Setup); New
	// makes it, and an agent run without a Runtime tracks nothing.
	running *toolRuns
}

// RemoteServer is a request's MCP server, connected for one turn.
type RemoteServer interface {
	// Tools are the tools the request allows, named for the model and
	// answering tooling.Served.
	Tools() []tooling.Tool
	// List is the tool list the client is shown.
	List() hermes.MCPList
	Close()
}

// TurnSetup is what one turn runs with (Agent.Setup). Tools and Prompt nil
// keep the agent's own.
type TurnSetup struct {
	Model         llm.Model
	UpstreamModel string
	Window        *llm.Window
	Tools         *tooling.Registry
	Prompt        func(callerSystem string) string
	// NoTools sends the model no tools (a model without tool calling).
	NoTools bool
	// Done, when set, is called once the turn has ended.
	Done func()
}

// prompt returns what every model call of req's turn sends besides the
// transcript: the system prompt, the tool specs (the caller's own tools
// win over the agent's of the same name), and the caller's tool names.
func (a *Agent) prompt(req *hermes.TurnRequest) (system string, specs []hermes.ToolSpec, clientTools map[string]bool) {
	system = req.System
	if a.Prompt != nil {
		system = a.Prompt(req.System)
	}
	clientTools = make(map[string]bool, len(req.ClientTools))
	for _, t := range req.ClientTools {
		clientTools[t.Name] = true
	}
	if a.Tools != nil {
		specs = a.Tools.Specs()
	}
	if len(req.ClientTools) > 0 {
		own := specs
		specs = make([]hermes.ToolSpec, 0, len(own)+len(req.ClientTools))
		for _, s := range own {
			if !clientTools[s.Name] {
				specs = append(specs, s)
			}
		}
		specs = append(specs, req.ClientTools...)
	}
	return system, specs, clientTools
}

// emitFunc hands an event to the client; false means nobody listens anymore.
type emitFunc func(hermes.Event) bool

// Run runs one turn over history (what the conversation already holds) and
// the request's new input. It never panics: a panic in a tool or the model
// becomes the turn's error.
func (a *Agent) Run(ctx context.Context, history []hermes.Message, req *hermes.TurnRequest, emit emitFunc) (res hermes.TurnResult) {
	if a.Setup != nil {
		t, done := a.forTurn(req.Model)
		if done != nil {
			defer done()
		}
		return t.Run(ctx, history, req, emit)
	}
	res.ResponseID = req.ResponseID
	defer func() {
		if p := recover(); p != nil {
			res.Err = &hermes.Error{Code: hermes.EInternal, Message: "the agent failed unexpectedly",
				Cause: fmt.Errorf("panic: %v\n%s", p, debug.Stack())}
		}
	}()

	var approve map[string]bool // the request's MCP tools whose calls wait for approval
	if len(req.MCP) > 0 {
		t, close, err := a.connectRemote(ctx, req, emit, &res)
		if err != nil {
			res.Err = err
			return res
		}
		defer close()
		a, approve = t.agent, t.approve
	}

	// The turn appends to history in place when its array has room: the
	// conversation actor hands over the transcript it cached, which only
	// the turn continuing it ever extends (conversation.go), so a turn's
	// cost does not grow with its chain. Anything else gets a copy.
	transcript := append(history, req.Input...)
	start := len(history)

	system, specs, clientTools := a.prompt(req)

	maxIter := a.MaxIterations
	if maxIter <= 0 {
		maxIter = 90
	}
	toolCalls := 0 // agent tool calls run so far, against req.MaxToolCalls
	finish := func() hermes.TurnResult {
		res.Added = transcript[start:]
		return res
	}
	refit := func(force bool) (bool, *hermes.Error) {
		f, err := a.fit(ctx, req, system, specs, transcript, start, force)
		res.Usage.Add(f.usage)
		if err != nil || !f.changed {
			return false, err
		}
		transcript, start = f.transcript, f.start
		res.CompactedInput += f.fromInput
		if f.dropped {
			// The first compaction of the turn is a splice of the history
			// it continued (trims keep its indices); a second one is of
			// the first's result, which the store does not hold.
			res.Splice = nil
			if res.Compacted == nil && f.fromInput == 0 {
				res.Splice = &hermes.Splice{Head: transcript[:f.head:f.head], Skip: f.skip}
			}
			res.Compacted = transcript[:start:start]
		} else {
			// Trimmed only: the record keeps its parent, and the trims
			// are made again from the stored history whenever it is read
			// back (they depend on nothing else). Writing the trimmed
			// history as a new base rewrote the whole transcript every
			// few turns of a long chain.
			res.Trimmed = transcript[:start:start]
		}
		if f.item != nil {
			res.Compaction = f.item
			emit(hermes.Event{Kind: hermes.EventCompaction, Item: f.item})
		}
		return true, nil
	}
	if len(req.Approvals) > 0 {
		transcript = append(transcript, a.answerApprovals(ctx, req.Approvals, transcript[:len(transcript):len(transcript)], emit)...)
	}
	var more func(bool)
	if req.Sink != nil && req.Progress {
		more = req.Sink.More
	}
	retried := false // one compaction and retry after the upstream says the prompt is too long
	for iter := 0; ; iter++ {
		if a.Window != nil {
			if _, err := refit(false); err != nil {
				res.Err = err
				return finish()
			}
		}
		if iter == maxIter {
			note := fmt.Sprintf("\n\n[stopped: reached the limit of %d tool iterations for one turn]", maxIter)
			emit(hermes.Event{Kind: hermes.EventTextDelta, Text: note})
			res.Text += note
			res.Finish = hermes.FinishLength
			transcript = append(transcript, hermes.Message{Role: hermes.RoleAssistant, Content: res.Text})
			return finish()
		}
		callStart := time.Now()
		out, err := a.Model.Stream(ctx, llm.Request{
			Model:      a.UpstreamModel,
			System:     system,
			Messages:   transcript[:len(transcript):len(transcript)],
			Tools:      specs,
			ToolChoice: req.ToolChoice,
			MaxTokens:  req.MaxTokens,
			Effort:     req.ReasoningEffort,
			OnFallback: func(model string) {
				emit(hermes.Event{Kind: hermes.EventModel, Text: model})
			},
			OnReasoning: func(delta string) {
				emit(hermes.Event{Kind: hermes.EventReasoningDelta, Text: delta})
			},
			OnMore: more,
		}, func(delta string) {
			emit(hermes.Event{Kind: hermes.EventTextDelta, Text: delta})
		})
		res.Usage.Add(out.Usage)
		if out.Model != "" {
			res.Model = out.Model
		}
		if out.Reasoning != "" {
			if res.Reasoning != "" {
				res.Reasoning += "\n\n"
			}
			res.Reasoning += out.Reasoning
		}
		if a.Estimator != nil && out.Usage.PromptTokens > 0 {
			a.Estimator.Observe(a.UpstreamModel, llm.Request{System: system, Messages: transcript, Tools: specs}, out.Usage.PromptTokens)
		}
		if a.OnModelCall != nil {
			a.OnModelCall(time.Since(callStart), err)
		}
		if err != nil && a.Window != nil && !retried && out.Text == "" && len(out.ToolCalls) == 0 &&
			llm.IsContextLengthError(hermes.AsError(err).Message) {
			retried = true
			changed, ferr := refit(true)
			if ferr != nil {
				res.Err = ferr
				return finish()
			}
			if changed {
				iter-- // the same step again, on the compacted prompt
				continue
			}
		}
		if err != nil {
			res.Text = out.Text // a failing model returns what it produced
			if ctx.Err() != nil && hermes.ErrorCode(err) != hermes.ETimeout {
				err = contextError(ctx, err)
			}
			res.Err = hermes.AsError(err)
			if res.Text != "" || out.Reasoning != "" {
				transcript = append(transcript, hermes.Message{Role: hermes.RoleAssistant, Content: res.Text, Reasoning: out.Reasoning})
			}
			return finish()
		}
		if len(out.ToolCalls) == 0 {
			res.Text = out.Text
			res.Finish = out.Finish
			if res.Finish == "" || res.Finish == hermes.FinishToolCalls {
				res.Finish = hermes.FinishStop
			}
			transcript = append(transcript, hermes.Message{Role: hermes.RoleAssistant, Content: out.Text, Reasoning: out.Reasoning})
			return finish()
		}

		var agentCalls, handBack, waiting []hermes.ToolCall
		for i, c := range out.ToolCalls {
			if clientTools[c.Name] {
				handBack = append(handBack, c)
				continue
			}
			out.ToolCalls[i].Server = hermes.AgentServer
			if a.Tools != nil {
				// An MCP server's name and its own name for the tool.
				out.ToolCalls[i].Server, out.ToolCalls[i].Tool = a.Tools.Origin(c.Name)
			}
			if approve[c.Name] {
				out.ToolCalls[i].Approval = hermes.ApprovalRequested
				waiting = append(waiting, out.ToolCalls[i])
				continue
			}
			agentCalls = append(agentCalls, out.ToolCalls[i])
		}
		transcript = append(transcript, hermes.Message{Role: hermes.RoleAssistant, Content: out.Text, Reasoning: out.Reasoning, ToolCalls: out.ToolCalls})
		allowed := len(agentCalls)
		if req.MaxToolCalls > 0 {
			allowed = max(0, min(allowed, req.MaxToolCalls-toolCalls))
			toolCalls += allowed
			if toolCalls >= req.MaxToolCalls {
				// The budget is spent: later model calls see only the
				// caller's tools, so the model answers instead of asking.
				specs = req.ClientTools
			}
		}
		// Capped: a tool appending to its history must not write into the
		// array this turn goes on extending.
		results := a.runTools(ctx, agentCalls, allowed, transcript[:len(transcript):len(transcript)], emit)
		transcript = append(transcript, results...)
		for _, c := range waiting {
			// Answered for now, so the transcript stays one every upstream
			// takes; the call is made again once the client approves it.
			transcript = append(transcript, hermes.Message{Role: hermes.RoleTool, ToolCallID: c.ID, Name: c.Name, Content: AwaitingApproval})
		}
		if len(handBack) > 0 || len(waiting) > 0 {
			res.Text = out.Text
			res.ClientToolCalls, res.ApprovalRequests = handBack, waiting
			res.Finish = hermes.FinishStop
			if len(handBack) > 0 {
				res.Finish = hermes.FinishToolCalls
			}
			return finish()
		}
		if ctx.Err() != nil {
			res.Err = contextError(ctx, ctx.Err())
			return finish()
		}
	}
}

// maxCallsPerResponse bounds the tool calls one model response may make:
// a model asked for 500 terminal calls at once. Calls beyond it are
// answered as refused so the model can ask again with fewer.
const maxCallsPerResponse = 128

// abandonAfter is how long tool calls still running when their turn's
// context ends have to return before they are abandoned.
const abandonAfter = 500 * time.Millisecond

// runTools runs the first allowed of the agent's own tool calls (the rest
// are past max_tool_calls and answered without running), at most
// maxCallsPerResponse of them and MaxParallelTools at a time, and returns
// their results in call order. Failures are results the model reads, never
// errors. When ctx ends (turn timeout, cancel, shutdown) it stops waiting:
// a call still running abandonAfter later is abandoned and reported as not
// returned, so a tool that never returns cannot hold the turn, its slot or
// shutdown.
func (a *Agent) runTools(ctx context.Context, calls []hermes.ToolCall, allowed int, history []hermes.Message, emit emitFunc) []hermes.Message {
	results := make([]hermes.Message, len(calls))
	events := make([]*hermes.ToolEvent, len(calls))
	for i, c := range calls {
		ev := &hermes.ToolEvent{CallID: c.ID, Name: c.Name, Server: c.Server, Tool: c.Tool, Emoji: "⚡", Label: c.Name, Arguments: c.Arguments,
			ApprovalRequest: c.ApprovalRequest}
		if t, ok := a.lookup(c.Name); ok {
			ev.Emoji = t.Emoji()
			ev.Label = safeLabel(t, c)
		}
		events[i] = ev
		results[i] = hermes.Message{Role: hermes.RoleTool, ToolCallID: c.ID, Name: c.Name}
		emit(hermes.Event{Kind: hermes.EventToolStarted, Tool: ev})
	}
	run := min(len(calls), maxCallsPerResponse, allowed)
	for i := run; i < len(calls); i++ {
		if i >= allowed {
			results[i].Content = tooling.ErrorResult("not run: this response reached its max_tool_calls limit; answer with what you have")
			continue
		}
		results[i].Content = tooling.ErrorResult(fmt.Sprintf(
			"refused: one response may make at most %d tool calls and this was call %d of %d; it did not run. Make the calls you still need in a later response.",
			maxCallsPerResponse, i+1, len(calls)))
	}
	parallel := a.MaxParallelTools
	if parallel <= 0 {
		parallel = 8
	}
	type outcome struct {
		i   int
		out string
	}
	// Buffered for every call, so a call that returns after it was
	// abandoned never blocks.
	done := make(chan outcome, run)
	pending := make(map[int]*toolRun, parallel)
	var giveUp <-chan time.Time // set once ctx has ended
	next := 0
	for next < run || len(pending) > 0 {
		for len(pending) < parallel && next < run && ctx.Err() == nil {
			i, c := next, calls[next]
			next++
			tr := a.running.add(c)
			pending[i] = tr
			go func() {
				out := a.runTool(ctx, c, history)
				a.running.remove(tr)
				done <- outcome{i, out}
			}()
		}
		if len(pending) == 0 {
			break // ctx ended before the rest started
		}
		ended := ctx.Done()
		if giveUp != nil {
			ended = nil // already ended: wait for giveUp
		}
		select {
		case o := <-done:
			tr := pending[o.i]
			delete(pending, o.i)
			results[o.i].Content = o.out
			if a.OnTool != nil {
				a.OnTool(tr.name, strings.HasPrefix(o.out, `{"error"`), time.Since(tr.start))
			}
		case <-ended:
			// Calls that honour cancellation get a moment to return their
			// own result (a terminal command reports what it printed and
			// kills what it started); the rest are abandoned then.
			t := time.NewTimer(abandonAfter)
			defer t.Stop()
			giveUp = t.C
		case <-giveUp:
			why := contextError(ctx, nil).Message
			for i, tr := range pending {
				results[i].Content = tooling.ErrorResult(fmt.Sprintf(
					"tool %s did not return before the turn ended (%s); it was abandoned and its result is unknown", tr.name, why))
				if a.OnTool != nil {
					a.OnTool(tr.name, true, time.Since(tr.start))
				}
			}
			clear(pending)
		}
	}
	for i := next; i < run; i++ {
		results[i].Content = tooling.ErrorResult(fmt.Sprintf("not run: the turn ended (%s) before this call started", contextError(ctx, nil).Message))
	}
	for i, ev := range events {
		done := *ev
		done.Output = results[i].Content
		emit(hermes.Event{Kind: hermes.EventToolFinished, Tool: &done})
	}
	return results
}

// toolRun is one tool call under way.
type toolRun struct {
	name, id string
	start    time.Time
}

// forTurn is the agent a turn for model runs: a copy with Setup's answer,
// and what to call when the turn ends.
func (a *Agent) forTurn(model string) (*Agent, func()) {
	ts := a.Setup(model)
	t := *a
	t.Setup = nil
	t.Model, t.UpstreamModel, t.Window = ts.Model, ts.UpstreamModel, ts.Window
	if ts.Tools != nil {
		t.Tools = ts.Tools
	}
	if ts.Prompt != nil {
		t.Prompt = ts.Prompt
	}
	if ts.NoTools {
		t.Tools = nil
	}
	return &t, ts.Done
}

// toolRuns is the set of tool calls under way, including those abandoned
// by their turn, so shutdown can say what it leaves behind.
type toolRuns struct {
	mu sync.Mutex // guards m
	m  map[*toolRun]struct{}
}

func (s *toolRuns) add(c hermes.ToolCall) *toolRun {
	tr := &toolRun{name: c.Name, id: c.ID, start: time.Now()}
	if s == nil {
		return tr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[*toolRun]struct{})
	}
	s.m[tr] = struct{}{}
	return tr
}

func (s *toolRuns) remove(tr *toolRun) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, tr)
}

// Running describes the tool calls still under way, oldest first, as
// "NAME (CALL_ID) for DURATION".
func (a *Agent) Running() []string {
	s := a.running
	if s == nil {
		return nil
	}
	s.mu.Lock()
	runs := make([]*toolRun, 0, len(s.m))
	for tr := range s.m {
		runs = append(runs, tr)
	}
	s.mu.Unlock()
	sort.Slice(runs, func(i, j int) bool { return runs[i].start.Before(runs[j].start) })
	out := make([]string, len(runs))
	for i, tr := range runs {
		out[i] = fmt.Sprintf("%s (%s) for %s", tr.name, tr.id, time.Since(tr.start).Round(time.Millisecond))
	}
	return out
}

func (a *Agent) lookup(name string) (tooling.Tool, bool) {
	if a.Tools == nil {
		return nil, false
	}
	return a.Tools.Get(name)
}

func (a *Agent) runTool(ctx context.Context, c hermes.ToolCall, history []hermes.Message) (out string) {
	t, ok := a.lookup(c.Name)
	if !ok {
		return tooling.ErrorResult(fmt.Sprintf("unknown tool %q; available tools: %v", c.Name, a.toolNames()))
	}
	if c.Arguments != "" && !json.Valid([]byte(c.Arguments)) {
		return tooling.ErrorResult(fmt.Sprintf("the arguments of this %s call are not valid JSON; send a JSON object matching the tool's schema", c.Name))
	}
	defer func() {
		if p := recover(); p != nil {
			out = tooling.ErrorResult(fmt.Sprintf("tool %s failed unexpectedly: %v", c.Name, p))
		}
	}()
	return t.Run(ctx, tooling.Call{ID: c.ID, Args: []byte(c.Arguments), History: history})
}

func (a *Agent) toolNames() []string {
	if a.Tools == nil {
		return nil
	}
	return a.Tools.Names()
}

func safeLabel(t tooling.Tool, c hermes.ToolCall) (label string) {
	defer func() {
		if recover() != nil {
			label = c.Name
		}
	}()
	if label = t.Label([]byte(c.Arguments)); label == "" {
		label = c.Name
	}
	return label
}

// contextError says why a turn's context ended.
func contextError(ctx context.Context, err error) *hermes.Error {
	switch context.Cause(ctx) {
	case context.DeadlineExceeded, errTurnTimeout:
		return &hermes.Error{Code: hermes.ETimeout, Message: "the turn took longer than HERMES_TURN_TIMEOUT", Cause: err}
	case errShutdown:
		return &hermes.Error{Code: hermes.EUnavailable, Message: "the server is shutting down", Cause: err}
	case errLeaseLost:
		return errLeaseLost
	}
	return &hermes.Error{Code: hermes.ECancelled, Message: "the turn was cancelled", Cause: err}
}

// AwaitingApproval is the result the model reads for a call waiting for
// the client's approval (a codec rebuilding such a call from an item sent
// back gives it the same).
var AwaitingApproval = tooling.JSONResult(map[string]string{
	"status": "awaiting approval",
	"note":   "this call needs the user's approval; it runs if they approve it, and its result follows then",
})

// turnRemote is what a turn took from its request's MCP servers.
type turnRemote struct {
	agent   *Agent          // a copy with the servers' tools added
	approve map[string]bool // tool name → its calls wait for approval
}

// connectRemote connects to the request's MCP servers, emits and records
// their tool lists, and returns the agent the turn runs with and what
// closes the connections. A server that cannot be reached fails the turn
// before anything else happened, so the client gets a plain error.
func (a *Agent) connectRemote(ctx context.Context, req *hermes.TurnRequest, emit emitFunc, res *hermes.TurnResult) (*turnRemote, func(), *hermes.Error) {
	var conns []RemoteServer
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	configured := make(map[string]bool)
	if a.Tools != nil {
		for _, n := range a.Tools.Names() {
			server, _ := a.Tools.Origin(n)
			configured[server] = true
		}
	}
	// A server whose list the client holds already is not listed again:
	// the model gets the tools that list names (OpenAI's rule; a client
	// drops the item to have the list read afresh).
	listed := make(map[string]map[string]bool, len(req.Listed))
	for _, l := range req.Listed {
		names := make(map[string]bool, len(l.Tools))
		for _, tl := range l.Tools {
			names[tl.Name] = true
		}
		listed[l.Server] = names
	}
	t := &turnRemote{approve: make(map[string]bool)}
	var extra []tooling.Tool
	for _, s := range req.MCP {
		if configured[s.Label] {
			closeAll()
			return nil, nil, hermes.InvalidParam("tools", "server_label '%s' names an MCP server this server has configured; choose another label", s.Label)
		}
		if a.Remote == nil {
			closeAll()
			return nil, nil, hermes.InvalidParam("tools", "this server does not connect to MCP servers a request names")
		}
		if a.Tools == nil {
			closeAll()
			return nil, nil, hermes.InvalidParam("tools", "the model '%s' does not call tools; an mcp tool cannot be used with it", req.Model)
		}
		c, err := a.Remote(ctx, s)
		if err != nil {
			closeAll()
			if ctx.Err() != nil {
				return nil, nil, contextError(ctx, err)
			}
			return nil, nil, hermes.AsError(err)
		}
		conns = append(conns, c)
		known, shown := listed[s.Label]
		for _, tl := range c.Tools() {
			name := tl.Spec().Name
			tool := name
			if sv, ok := tl.(tooling.Served); ok {
				tool = sv.ServerTool()
			}
			if shown && !known[tool] {
				continue
			}
			t.approve[name] = s.NeedsApproval(tool)
			extra = append(extra, tl)
		}
		if !shown {
			res.MCPLists = append(res.MCPLists, c.List())
		}
	}
	// A name collision leaves the request's tool out (a configured
	// server's a_b with tool c, and a request's a with tool b_c): it is
	// not listed to the client either.
	reg, refused := a.Tools.With(extra)
	out := make(map[string]bool, len(refused))
	for _, name := range refused {
		out[name] = true
		delete(t.approve, name)
	}
	for i := range res.MCPLists {
		list := &res.MCPLists[i]
		kept := list.Tools[:0:0]
		for _, tl := range list.Tools {
			if !out[hermes.MCPToolName(list.Server, tl.Name)] {
				kept = append(kept, tl)
			}
		}
		list.Tools = kept
		shown := *list
		emit(hermes.Event{Kind: hermes.EventMCPList, List: &shown})
	}
	turn := *a
	turn.Tools = reg
	t.agent = &turn
	return t, closeAll, nil
}

// answerApprovals makes the calls the client answered again, approved ones
// run and declined ones answered so, and returns the assistant message
// holding them and their results, to follow what the turn continues.
func (a *Agent) answerApprovals(ctx context.Context, approvals []hermes.Approval, history []hermes.Message, emit emitFunc) []hermes.Message {
	calls := make([]hermes.ToolCall, len(approvals))
	var run []hermes.ToolCall
	reasons := make(map[string]string)
	for i, ap := range approvals {
		c := ap.Call
		// A call id of its own: the request's call is answered already
		// (AwaitingApproval), and an id answers one call.
		c.ID += "_approved"
		c.ApprovalRequest, c.Approval = ap.RequestID, hermes.ApprovalDeclined
		reasons[c.ID] = ap.Reason
		if ap.Approve {
			c.Approval = hermes.ApprovalApproved
			run = append(run, c)
		}
		calls[i] = c
	}
	ran := a.runTools(ctx, run, len(run), history, emit)
	out := []hermes.Message{{Role: hermes.RoleAssistant, ToolCalls: calls}}
	for _, c := range calls {
		if c.Approval == hermes.ApprovalApproved {
			out = append(out, ran[0])
			ran = ran[1:]
			continue
		}
		why := "the user declined this call; it did not run"
		if r := reasons[c.ID]; r != "" {
			why += ". Their reason: " + tooling.CutBytes(r, 2000)
		}
		out = append(out, hermes.Message{Role: hermes.RoleTool, ToolCallID: c.ID, Name: c.Name, Content: tooling.ErrorResult(why)})
	}
	return out
}
