package actors

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling/llm"
)

// Compaction (issue 12): before a model call whose prompt would pass the
// threshold, the history the turn continues is made smaller, in this
// order: old tool outputs are trimmed; then, unless the request asked for
// truncation "auto" (drop the oldest turns instead), the middle of the
// history is summarised by the model into a compaction item, keeping the
// first user message and the most recent turns verbatim. The compacted
// history becomes the base later turns start from.

const (
	// keepToolOutputs are the most recent tool outputs never trimmed: the
	// model is likely still working with them.
	keepToolOutputs = 2
	// trimmedHead is how much of a trimmed tool output stays.
	trimmedHead = 200
	// trimAbove is the size under which a tool output is not worth trimming.
	trimAbove = 2 * trimmedHead
)

// fitted is a transcript made to fit: history is transcript[:start].
type fitted struct {
	transcript []hermes.Message
	start      int
	item       *hermes.Message // the compaction item made, if any
	changed    bool
	// dropped is set when items of the history were summarised or
	// dropped, not only trimmed: only then is the history a new base.
	dropped bool
	// head and skip, when dropped, say what the compacted history is:
	// its first head items, then the history it was made from, from
	// item skip on.
	head, skip int
	// fromInput is how many of the turn's own items (its input) were
	// taken into the history to be compacted: a request that carries its
	// whole conversation as input (no stored history).
	fromInput int
	usage     hermes.Usage // of the summarising call
}

// threshold is the prompt size in tokens past which req's turn compacts.
func (a *Agent) threshold(req *hermes.TurnRequest, window int) int {
	t := req.CompactThreshold
	if t <= 0 && a.CompactAt != nil {
		t = a.CompactAt(window)
	}
	if t <= 0 {
		t = window * 8 / 10
	}
	return min(t, window)
}

// uncalibrated serves agents built without an Estimator (tests).
var uncalibrated llm.Estimator

func (a *Agent) estimate(system string, specs []hermes.ToolSpec, msgs []hermes.Message) int {
	e := a.Estimator
	if e == nil {
		e = &uncalibrated
	}
	return e.Estimate(a.UpstreamModel, llm.Request{System: system, Messages: msgs, Tools: specs})
}

// fit returns the transcript the next model call may send. force compacts
// even under the threshold: the upstream said the prompt did not fit.
func (a *Agent) fit(ctx context.Context, req *hermes.TurnRequest, system string, specs []hermes.ToolSpec,
	transcript []hermes.Message, start int, force bool) (fitted, *hermes.Error) {
	out := fitted{transcript: transcript, start: start}
	window := a.Window.Tokens()
	limit := a.threshold(req, window)
	est := a.estimate(system, specs, transcript)
	if !force && est <= limit {
		return out, nil
	}
	tooBig := &hermes.Error{Code: hermes.EContextLength, Param: "input",
		Message: fmt.Sprintf("Your input exceeds the context window of this model: about %d tokens for a window of %d.", est, window)}
	if req.Truncation == "disabled" {
		if force || est > window {
			return out, tooBig
		}
		return out, nil
	}
	if force {
		limit = min(limit, est*3/4) // the estimate was too low: aim lower
	}

	if start == 0 {
		// No stored history: the request carries its conversation as
		// input (a chat completion, a stateless Responses request, a
		// chain's first turn). All but its last user message and what
		// follows may be compacted; the client keeps its messages, and a
		// stored response keeps the compacted form as its base.
		start = lastUser(transcript)
		out.fromInput = start
	}
	history := append([]hermes.Message(nil), transcript[:start]...) // never written in place: others hold it
	own := transcript[start:]
	// Compact the history to half the room it may take, not just under the
	// threshold: trimmed outputs still add up, and a history kept just
	// under it would be compacted (and written out whole as a new base) on
	// every turn. The room is what the system prompt, the tool specs and
	// this turn's own items leave.
	floor := a.estimate(system, specs, own)
	target := floor + max(limit-floor, 0)/2
	fits := func() bool {
		return a.estimate(system, specs, append(history[:len(history):len(history)], own...)) <= target
	}
	done := func() (fitted, *hermes.Error) {
		out.transcript = append(history[:len(history):len(history)], own...)
		out.start, out.changed = len(history), true
		if a.estimate(system, specs, out.transcript) > window {
			return out, tooBig
		}
		return out, nil
	}

	// 1. Trim old tool outputs, oldest first.
	seen := 0
	for i := len(history) - 1; i >= 0; i-- {
		m := history[i]
		if m.Role != hermes.RoleTool {
			continue
		}
		if seen++; seen <= keepToolOutputs || len(m.Content) <= trimAbove {
			continue
		}
		m.Content = trimOutput(m.Content)
		history[i] = m
	}
	if fits() {
		return done()
	}

	// 2. Keep the first user message and the recent turns; the middle goes.
	first := 0
	for first < len(history) && history[first].Role != hermes.RoleUser {
		first++
	}
	if first == len(history) {
		return done()
	}
	cut := recentCut(history, first+1, (target-floor)/2, func(ms []hermes.Message) int { return a.estimate("", nil, ms) })
	middle := history[first+1 : cut]
	if len(middle) == 0 {
		return done()
	}
	kept := append(append([]hermes.Message(nil), history[:first+1]...), history[cut:]...)
	out.dropped, out.head, out.skip = true, first+1, cut
	if req.Truncation == "auto" {
		history = kept
		return done()
	}
	summary, usage, err := a.summarise(ctx, middle, window)
	out.usage = usage
	if err != nil {
		return out, err
	}
	item := hermes.Message{Role: hermes.RoleCompaction, Content: summary}
	if a.Seal != nil {
		item.Encrypted = a.Seal(summary)
	}
	history = append(append(append([]hermes.Message(nil), history[:first+1]...), item), history[cut:]...)
	out.item, out.head = &item, first+2
	return done()
}

// lastUser returns the index of the last user message, 0 when none.
func lastUser(msgs []hermes.Message) int {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == hermes.RoleUser {
			return i
		}
	}
	return 0
}

// trimOutput keeps the head of a tool output and says what was cut.
func trimOutput(s string) string {
	head := s[:trimmedHead]
	for len(head) > 0 && !utf8Start(s[len(head)]) {
		head = head[:len(head)-1]
	}
	return head + "\n[… " + strconv.Itoa(len(s)-len(head)) + " more bytes of this tool output were trimmed by hermesd to fit the context window]"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// recentCut returns where the verbatim tail of history starts: as many of
// the most recent messages as fit budget tokens, moved forward to a user
// message so the tail begins a turn (and no tool result loses its call).
// It is never before from.
func recentCut(history []hermes.Message, from, budget int, estimate func([]hermes.Message) int) int {
	cut := len(history)
	for cut > from && estimate(history[cut-1:]) <= budget {
		cut--
	}
	for cut < len(history) && history[cut].Role != hermes.RoleUser {
		cut++
	}
	return cut
}

// maxSummaryChunks bounds the summarising calls of one compaction; a middle
// longer than that many windows keeps its earlier summaries and its most
// recent part.
const maxSummaryChunks = 8

// summarise asks the model for a summary of middle, in chunks that fit the
// window, oldest first, each carrying the summary so far. Earlier
// compaction items in the middle are carried over.
func (a *Agent) summarise(ctx context.Context, middle []hermes.Message, window int) (string, hermes.Usage, *hermes.Error) {
	var usage hermes.Usage
	// Room for a chunk beside the summary carried into it.
	budget := window * 4 / 10
	var chunks [][]hermes.Message
	end := len(middle)
	for end > 0 && len(chunks) < maxSummaryChunks {
		from := recentCut(middle[:end], 0, budget, func(ms []hermes.Message) int { return a.estimate(llm.SummaryPrompt, nil, ms) })
		if from == end { // one message past the budget: on its own
			from = end - 1
		}
		chunks = append(chunks, middle[from:end])
		end = from
	}
	// Summaries in the part left out are carried into the first chunk.
	var earlier []hermes.Message
	for _, m := range middle[:end] {
		if m.Role == hermes.RoleCompaction {
			earlier = append(earlier, m)
		}
	}
	summary := ""
	for i := len(chunks) - 1; i >= 0; i-- {
		msgs := append([]hermes.Message(nil), earlier...)
		if summary != "" {
			msgs = []hermes.Message{{Role: hermes.RoleCompaction, Content: summary}}
		}
		msgs = append(append(msgs, chunks[i]...), hermes.Message{Role: hermes.RoleUser, Content: llm.SummaryRequest})
		out, err := a.Model.Stream(ctx, llm.Request{Model: a.UpstreamModel, System: llm.SummaryPrompt, Messages: msgs}, nil)
		usage.Add(out.Usage)
		if err != nil {
			e := hermes.AsError(err)
			return "", usage, &hermes.Error{Code: e.Code, Message: "compacting the conversation failed: " + e.Message, Cause: err}
		}
		if summary = strings.TrimSpace(out.Text); summary == "" {
			return "", usage, &hermes.Error{Code: hermes.EUpstream, Message: "compacting the conversation failed: the model wrote an empty summary"}
		}
	}
	return summary, usage, nil
}

// Compact summarises msgs whatever their size (POST /v1/responses/compact):
// the first user message and the recent turns stay, the rest becomes one
// compaction item. It returns the compacted list and the summarising usage.
func (a *Agent) Compact(ctx context.Context, req *hermes.TurnRequest, msgs []hermes.Message) ([]hermes.Message, hermes.Usage, *hermes.Error) {
	window := llm.DefaultContextWindow
	if a.Window != nil {
		window = a.Window.Tokens()
	}
	first := -1
	for i, m := range msgs {
		if m.Role == hermes.RoleUser {
			first = i
			break
		}
	}
	keep := recentCut(msgs, first+1, a.threshold(req, window)/3, func(ms []hermes.Message) int { return a.estimate("", nil, ms) })
	if keep == first+1 { // the recent turns are all there is: summarise them
		keep = len(msgs)
	}
	if first+1 >= keep { // a lone user message: it is its own summary's subject
		first, keep = -1, len(msgs)
	}
	if keep == 0 {
		return nil, hermes.Usage{}, hermes.InvalidParam("input", "there is nothing to compact")
	}
	summary, usage, err := a.summarise(ctx, msgs[first+1:keep], window)
	if err != nil {
		return nil, usage, err
	}
	item := hermes.Message{Role: hermes.RoleCompaction, Content: summary}
	if a.Seal != nil {
		item.Encrypted = a.Seal(summary)
	}
	out := append(append(append([]hermes.Message(nil), msgs[:first+1]...), item), msgs[keep:]...)
	return out, usage, nil
}
