package llm

import (
	"context"
	"strconv"
	"strings"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

const (
	// heardChars and toolSummaryChars are how many characters of the
	// message or of a tool result an answer repeats; "…" follows a cut.
	heardChars       = 200
	toolSummaryChars = 2000
	offlineHeard     = "Hermes (offline model) heard: "
	offlineNothing   = "Hermes (offline model) heard nothing to answer."
	offlineNoSystem  = "(no system prompt)"
)

// Offline is the built-in scripted model that answers when no upstream is
// configured. It is deterministic: the same request gives the same answer.
// Directives in the last user message (see DIRECTIVES.md and the package
// doc) make it call tools, sleep, fail or produce a given number of tokens,
// which is what the end-to-end tests and benchmarks drive it with.
//
// The zero value is ready to use and safe for concurrent use.
type Offline struct {
	// TokenDelay is the pause between streamed tokens; /delay overrides it.
	TokenDelay time.Duration
}

// NewOffline returns an offline model with no token delay.
func NewOffline() *Offline { return &Offline{} }

// Stream implements Model.
func (o *Offline) Stream(ctx context.Context, req Request, onDelta func(text string)) (Response, error) {
	if onDelta == nil {
		onDelta = func(string) {}
	}
	if ctx.Err() != nil {
		return Response{}, cancelled(ctx)
	}
	msgs := req.Messages
	lastUser := -1
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == hermes.RoleUser {
			lastUser = i
			break
		}
	}
	var said string
	switch {
	case lastUser >= 0:
		said = msgs[lastUser].Text()
	case len(msgs) > 0:
		said = msgs[len(msgs)-1].Text() // a lone system message (title requests)
	default:
		said = req.System
	}
	sc := hermes.ParseDirectives(said)
	usage := hermes.Usage{PromptTokens: promptEstimate(req)}

	if sc.Sleep > 0 {
		if err := wait(ctx, sc.Sleep); err != nil {
			return Response{Usage: usage}, err
		}
	}
	if sc.FailSet && sc.FailAfter < 0 {
		return Response{Usage: usage}, hermes.Errorf(hermes.EUpstream, "%s", sc.Fail)
	}

	var reasoning string
	if sc.Think != "" {
		// Reasoning streams like an answer, before it.
		r, err := emit(ctx, sc.Think, emitLimits{failAfter: -1, delay: o.TokenDelay}, hermes.Usage{}, orNop(req.OnReasoning))
		if err != nil {
			return Response{Usage: usage}, err
		}
		reasoning = r.Text
		usage.ReasoningTokens = r.Usage.CompletionTokens
		usage.CompletionTokens = r.Usage.CompletionTokens
	}

	results := msgs[lastUser+1:]
	nResults := 0
	for _, m := range results {
		if m.Role == hermes.RoleTool {
			nResults++
		}
	}
	if len(sc.Calls) > 0 && req.ToolChoice != "none" {
		if round := nResults / len(sc.Calls); round < max(sc.Repeat, 1) {
			calls := make([]hermes.ToolCall, len(sc.Calls))
			for i, c := range sc.Calls {
				c.ID = "call_" + strconv.Itoa(round*len(sc.Calls)+i+1)
				calls[i] = c
				usage.CompletionTokens += (len(c.Name)+len(c.Arguments))/4 + 1
			}
			return Response{Reasoning: reasoning, ToolCalls: calls, Finish: hermes.FinishToolCalls, Usage: usage}, nil
		}
	}

	var answer string
	switch {
	case sc.EchoSystem:
		answer = systemText(req.AllMessages())
	case sc.EchoHistory:
		answer = historyText(req.AllMessages())
	case sc.Tokens >= 0:
		answer = numberedTokens(sc.Tokens)
	case nResults > 0:
		answer = toolSummary(msgs, lastUser)
	case sc.Text != "":
		answer = offlineHeard + tooling.Truncate(sc.Text, heardChars+1, "…")
	default:
		answer = offlineNothing
	}

	delay := o.TokenDelay
	if sc.DelaySet {
		delay = sc.Delay
	}
	r, err := emit(ctx, answer, emitLimits{maxTokens: req.MaxTokens, failAfter: sc.FailAfter, fail: sc.Fail, delay: delay}, usage, onDelta)
	r.Reasoning = reasoning
	r.Usage.CompletionTokens += usage.ReasoningTokens
	return r, err
}

func orNop(f func(string)) func(string) {
	if f == nil {
		return func(string) {}
	}
	return f
}

type emitLimits struct {
	maxTokens int // 0: none
	failAfter int // -1: none
	fail      string
	delay     time.Duration
}

// emit streams answer token by token (a token is a run of non-space
// characters with the whitespace that follows it). Tokens are substrings of
// answer, so streaming allocates nothing per token.
func emit(ctx context.Context, answer string, lim emitLimits, usage hermes.Usage, onDelta func(string)) (Response, error) {
	done := ctx.Done()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	pos, n := 0, 0
	for pos < len(answer) {
		if n == lim.failAfter {
			return partial(answer[:pos], n, usage), hermes.Errorf(hermes.EUpstream, "%s", lim.fail)
		}
		if lim.maxTokens > 0 && n == lim.maxTokens {
			r := partial(answer[:pos], n, usage)
			r.Finish = hermes.FinishLength
			return r, nil
		}
		if n > 0 && lim.delay > 0 {
			if timer == nil {
				timer = time.NewTimer(lim.delay)
			} else {
				timer.Reset(lim.delay)
			}
			select {
			case <-done:
				return partial(answer[:pos], n, usage), cancelled(ctx)
			case <-timer.C:
			}
		} else {
			select {
			case <-done:
				return partial(answer[:pos], n, usage), cancelled(ctx)
			default:
			}
		}
		end := nextToken(answer, pos)
		onDelta(answer[pos:end])
		pos = end
		n++
	}
	if lim.failAfter >= n {
		// The answer ran out before the failure point: fail at its end.
		return partial(answer, n, usage), hermes.Errorf(hermes.EUpstream, "%s", lim.fail)
	}
	r := partial(answer, n, usage)
	r.Finish = hermes.FinishStop
	return r, nil
}

func partial(text string, tokens int, usage hermes.Usage) Response {
	usage.CompletionTokens = tokens
	return Response{Text: text, Usage: usage}
}

// nextToken returns the end of the token starting at pos: leading
// whitespace, a run of non-whitespace, then the whitespace that follows.
func nextToken(s string, pos int) int {
	i := pos
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	for i < len(s) && !isSpace(s[i]) {
		i++
	}
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

func isSpace(b byte) bool { return b == ' ' || b == '\n' || b == '\t' || b == '\r' }

// numberedTokens returns "tok1 tok2 … tokN": exactly n tokens.
func numberedTokens(n int) string {
	if n == 0 {
		return ""
	}
	var b strings.Builder
	b.Grow(n * 8)
	var num [20]byte
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteByte(' ')
		}
		b.WriteString("tok")
		b.Write(strconv.AppendInt(num[:0], int64(i), 10))
	}
	return b.String()
}

// systemText returns the system messages' text, joined by blank lines.
func systemText(msgs []hermes.Message) string {
	var parts []string
	for _, m := range msgs {
		if m.Role == hermes.RoleSystem {
			parts = append(parts, m.Text())
		}
	}
	if len(parts) == 0 {
		return offlineNoSystem
	}
	return strings.Join(parts, "\n\n")
}

// historyText returns one line per message: its role and its text (newlines
// folded to spaces), with the tool calls an assistant message made.
func historyText(msgs []hermes.Message) string {
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(string(m.Role))
		b.WriteString(": ")
		b.WriteString(strings.ReplaceAll(m.Text(), "\n", " "))
		for _, c := range m.ToolCalls {
			b.WriteString(" [call ")
			b.WriteString(c.Name)
			b.WriteByte(' ')
			b.WriteString(c.Arguments)
			b.WriteByte(']')
		}
	}
	return b.String()
}

// toolSummary answers the tool results that follow the last user message,
// one "NAME returned: OUTPUT" line each.
func toolSummary(msgs []hermes.Message, lastUser int) string {
	names := make(map[string]string)
	var b strings.Builder
	for _, m := range msgs[lastUser+1:] {
		for _, c := range m.ToolCalls {
			names[c.ID] = c.Name
		}
		if m.Role != hermes.RoleTool {
			continue
		}
		name := m.Name
		if name == "" {
			name = names[m.ToolCallID]
		}
		if name == "" {
			name = "tool"
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(name)
		b.WriteString(" returned: ")
		b.WriteString(tooling.Truncate(m.Text(), toolSummaryChars+1, "…"))
	}
	return b.String()
}

// promptEstimate is a deterministic prompt size: a quarter of the
// characters sent, at least 1.
func promptEstimate(req Request) int {
	n := len(req.System)
	for _, m := range req.Messages {
		n += len(m.Content)
		for _, p := range m.Parts {
			n += len(p.Text) + len(p.ImageURL)
		}
		for _, c := range m.ToolCalls {
			n += len(c.Name) + len(c.Arguments)
		}
	}
	return max(n/4, 1)
}

// wait pauses for d or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return cancelled(ctx)
	case <-t.C:
		return nil
	}
}
