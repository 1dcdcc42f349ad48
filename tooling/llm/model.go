package llm

import (
	"context"

	hermes "github.com/hermesd/hermesd"
)

// Request is one model call: the whole prompt, system message first.
type Request struct {
	Model string
	// System, when set, is sent as a system message before Messages. It is
	// apart so a turn can hand its transcript over as it is: prepending it
	// would copy the whole transcript for every model call.
	System     string
	Messages   []hermes.Message
	Tools      []hermes.ToolSpec
	ToolChoice string // "", "auto", "none", "required" or a tool name
	MaxTokens  int    // 0: no limit
	// Effort is the reasoning effort to ask for (reasoning_effort); ""
	// leaves it to the upstream. Only a model marked as reasoning is sent
	// it (UpstreamOptions.Reasoning).
	Effort string
	// OnReasoning, when set, receives each piece of the model's reasoning
	// as it arrives (the text it thinks before answering, kept apart from
	// the answer).
	OnReasoning func(text string)
	// OnFallback, when set, is told the id of a fallback model that
	// answers in place of a failed one, before its first output
	// (Router.Model).
	OnFallback func(model string)
	// OnMore, when set, is told how the output comes in, so a stream can
	// send together the pieces that arrived together: OnMore(true) when a
	// read from the upstream brought data (the deltas that follow are at
	// hand), OnMore(false) before the model waits for more (and when the
	// call ends). A model that never calls it leaves every delta to be
	// sent as it comes.
	OnMore func(more bool)
}

// Response is what one model call produced.
type Response struct {
	Text string
	// Reasoning is what the model thought before answering, from any of
	// the upstream forms (reasoning_content, reasoning, <think>…</think>).
	Reasoning string
	ToolCalls []hermes.ToolCall
	Finish    hermes.FinishReason
	Usage     hermes.Usage
	// Model is the id of the route that answered, when a Router chose
	// (Router.Model); "" otherwise.
	Model string
}

// Model is a chat model that streams its answer.
type Model interface {
	// Stream runs the call, handing each piece of answer text to onDelta as
	// it arrives, and returns the whole response. Errors are *hermes.Error:
	// EUpstream (carrying the upstream's message), ERateLimited (with
	// RetryAfter), ETimeout, ECancelled when ctx ends.
	Stream(ctx context.Context, req Request, onDelta func(text string)) (Response, error)
}

// AllMessages returns the messages as sent: System first, when set, then
// Messages. It copies, so it is for the rare caller that needs them as one
// list.
func (r Request) AllMessages() []hermes.Message {
	if r.System == "" {
		return r.Messages
	}
	out := make([]hermes.Message, 0, len(r.Messages)+1)
	out = append(out, hermes.Message{Role: hermes.RoleSystem, Content: r.System})
	return append(out, r.Messages...)
}
