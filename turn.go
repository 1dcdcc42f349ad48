package hermes

import (
	"context"
	"time"
)

// TurnRequest is one request for the agent: resolve history, run the agent
// loop, store the result. httpfront builds it; the actors runtime runs it.
type TurnRequest struct {
	// ResponseID is the id to give this turn's answer.
	ResponseID string
	// Previous is the response this turn continues (previous_response_id).
	Previous string
	// PreviousRecord, when set, is the record Previous names held by the
	// caller rather than the store: a WebSocket connection keeps its latest
	// store: false response, transcript included, so the next response on
	// it can continue that chain. The runtime continues its Transcript.
	PreviousRecord *StoredResponse
	// Conversation is the named conversation this turn belongs to.
	Conversation string
	// System is the caller's system message or instructions, layered on
	// top of the agent's own prompt.
	System string
	// Input is the new input. For stateless chat completions it is the whole
	// conversation as the client sent it.
	Input []Message
	// ClientTools are the caller's own function tools, handed back when called.
	ClientTools []ToolSpec
	// MCP are the remote MCP servers the request offers the agent for this
	// turn; their headers are secrets, kept in memory only.
	MCP []RemoteMCP
	// Listed are tool lists of the request's MCP servers the client was
	// shown already (mcp_list_tools items in its input, or in the chain it
	// continues): the turn offers the model those tools and emits no new
	// list for those servers.
	Listed []MCPList
	// Approvals answer approval requests of the response this turn
	// continues: each call approved runs before the model is called.
	Approvals []Approval
	// ToolChoice is passed to the model ("auto", "none", "required" or a name).
	ToolChoice string
	MaxTokens  int
	// MaxToolCalls bounds the agent's own tool calls in the turn (0: no
	// bound beyond the iteration limit); calls past it are answered with
	// an error result the model reads.
	MaxToolCalls int
	// ReasoningEffort is passed to the upstream as reasoning_effort when
	// the model is marked as a reasoning model.
	ReasoningEffort string
	// Store asks for the turn to be kept (Responses API store=true).
	Store bool
	// Background turns run detached from any client: their record is kept
	// as in_progress while they run, and Runtime.Cancel stops them.
	Background bool
	// Wire holds the codec's own extra record fields (instructions,
	// metadata, tools…) stored beside the response, opaque to the runtime.
	// A turn that carries Wire (a Responses API turn) always gets its
	// TurnResult.Record, stored or not.
	Wire []byte
	// Model is the model id the client asked for, echoed back.
	Model string
	// CompactThreshold is the prompt size in tokens past which the turn
	// compacts its history (context_management compact_threshold); 0 takes
	// the server's HERMES_COMPACT_AT.
	CompactThreshold int
	// Truncation is "auto" (drop the oldest items instead of summarising),
	// "disabled" (a prompt that cannot fit fails with
	// EContextLengthExceeded) or "" (summarise).
	Truncation string
	// Created is when the request arrived.
	Created time.Time

	// Events receives everything the turn emits; the last event is always
	// EventDone. The sender selects on Ctx.Done() and never blocks forever.
	Events chan<- Event
	// Progress asks for text deltas and tool events; without it Events
	// gets only EventDone (a non-stream request has no use for the rest).
	Progress bool
	// Ctx is the request's context. The receiver cancels it when it no
	// longer listens (the client went away), which cancels the turn.
	Ctx context.Context
	// Sink, when set, takes the turn's events instead of Events: the turn
	// hands each one over on its own goroutine, so a stream writes a
	// frame without passing it to another goroutine first.
	Sink EventSink
}

// EventSink receives a turn's events as they happen (TurnRequest.Sink).
// Emit is called one event at a time (a turn's tools run concurrently, so
// not always from the same goroutine); it returns false once nobody
// listens. More(true) says the events that follow are already at hand
// (the model's stream holds more that arrived together), so a writer may
// hold them to send together; More(false) that the stream then waits.
type EventSink interface {
	Emit(Event) bool
	More(bool)
}

// Send hands ev to whoever listens to the turn: its Sink, or its Events
// channel until Ctx ends. It reports false once nobody listens.
func (r *TurnRequest) Send(ev Event) bool {
	if r.Sink != nil {
		return r.Sink.Emit(ev)
	}
	select {
	case r.Events <- ev:
		return true
	case <-r.Ctx.Done():
		return false
	}
}

// Status of a stored response.
type Status string

const (
	StatusQueued     Status = "queued"
	StatusInProgress Status = "in_progress"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
	StatusIncomplete Status = "incomplete"
	StatusCancelled  Status = "cancelled"
)

// StoredResponse is the durable record of one turn. The store keeps only
// the turn's own items (Consumed, Input, Output) and a pointer to Parent, so
// a turn's write costs the same at turn 1,000 as at turn 1; a transcript is
// read back by walking parents (persistence.Store.Transcript). httpfront
// renders the wire object from it, the same way for the stream's final
// event and for GET.
type StoredResponse struct {
	ID           string `json:"id"`
	Previous     string `json:"previous,omitempty"`
	Conversation string `json:"conversation,omitempty"`
	// Parent is the response whose transcript this one continues: Previous,
	// or its conversation's latest response when the turn started; "" when
	// it starts a transcript.
	Parent string `json:"parent,omitempty"`
	// Chain is the id of the first response of the chain this one
	// continues (its own id when it starts one): the routing key.
	Chain     string    `json:"chain,omitempty"`
	Status    Status    `json:"status"`
	Created   time.Time `json:"created"`
	Completed time.Time `json:"completed,omitempty"`
	Model     string    `json:"model,omitempty"`
	// Consumed are the items added to its conversation since Parent that
	// this turn took in before its Input.
	Consumed []Message `json:"consumed,omitempty"`
	// Input is this turn's own input; Output what the turn produced (agent
	// tool calls and results, client tool calls, the final answer).
	Input  []Message    `json:"input,omitempty"`
	Output []Message    `json:"output,omitempty"`
	Finish FinishReason `json:"finish,omitempty"`
	Usage  Usage        `json:"usage"`
	// MCPLists are the tool lists of the request's MCP servers as the
	// turn read them; they are rendered first in the output.
	MCPLists []MCPList `json:"mcp_lists,omitempty"`
	// Listed maps the server label of each mcp_list_tools item in the
	// chain up to and including this response to the response whose
	// output holds it, so a later turn finds it without walking the chain.
	Listed map[string]string `json:"mcp_listed,omitempty"`
	// Lists, on a record never stored (a WebSocket connection's store:
	// false response), are the tool lists its turn knew: the responses
	// Listed names are not in the store, so the next turn reads them here.
	Lists []MCPList `json:"-"`
	// ErrCode and ErrMessage describe why a failed or incomplete turn ended.
	ErrCode    string `json:"err_code,omitempty"`
	ErrMessage string `json:"err_message,omitempty"`
	// Wire holds the codec's own fields (instructions, metadata, tools…),
	// opaque to everything but httpfront.
	Wire []byte `json:"wire,omitempty"`
	// Compaction is the compaction item this turn made when it compacted
	// the history it continued (it then starts a new base: no Parent, its
	// compacted history kept with it). It is rendered first in the output.
	Compaction *Message `json:"compaction,omitempty"`
	// Splice, when set, says this record's transcript is Splice.Head,
	// then its Parent's transcript from item Splice.Skip on, then its own
	// items: a compaction that kept the most recent turns verbatim points
	// at them instead of copying them. The store keeps it with the items.
	Splice *Splice `json:"-"`
	// Unbased is how many bytes of items the chain has stored since its
	// last base (a record without Parent), this record's own included. A
	// turn that only trims old tool outputs keeps its parent instead of
	// writing a trimmed copy, so untrimmed items pile up behind it; past a
	// bound, a turn writes its trimmed history as a new base anyway and
	// the items behind it can go.
	Unbased int64 `json:"unbased,omitempty"`
	// Transcript is Parent's transcript followed by Consumed, Input and
	// Output: what the next turn starts from. It lives in memory only (the
	// conversation actor caches it); the store rebuilds it from parents, and
	// uses it when Parent has vanished before the record is committed.
	Transcript []Message `json:"-"`
}

// Splice is a compacted history that keeps the most recent part of the
// history it compacted: Head (the items kept from its start and the
// compaction item, if any), then that history from item Skip on.
type Splice struct {
	Head []Message
	Skip int
}

// Conversation is a named conversation's record: what it is called, its
// metadata, the response its next turn continues, and items added through
// the Conversations API that no turn has consumed yet.
type Conversation struct {
	ID       string            `json:"id"` // a conv_… id or a free name
	Created  time.Time         `json:"created"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Latest is the id of the latest response in it; "" starts fresh. The
	// store keeps it pointing at a stored response.
	Latest  string    `json:"latest,omitempty"`
	Pending []Message `json:"pending,omitempty"`
}

// IdempotencyEntry is the answer remembered for an Idempotency-Key,
// replayed byte for byte while it has not expired.
type IdempotencyEntry struct {
	Fingerprint string `json:"fingerprint"` // hash of the request body
	Status      int    `json:"status"`
	ContentType string `json:"content_type,omitempty"`
	Body        []byte `json:"body,omitempty"`
	// Expires is when the entry stops replaying; zero means the store's
	// default lifetime from when it is written.
	Expires time.Time `json:"expires"`
}
