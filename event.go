package hermes

// EventKind says what happened in a turn.
type EventKind uint8

const (
	// EventTextDelta: Text holds the next piece of the assistant's answer.
	EventTextDelta EventKind = iota + 1
	// EventToolStarted: Tool describes a tool the agent started running.
	EventToolStarted
	// EventToolFinished: Tool describes a tool the agent finished, with its output.
	EventToolFinished
	// EventDone: the turn ended; Result holds the outcome. Always the last event.
	EventDone
	// EventCompaction: the turn compacted its history; Item is the
	// compaction item (RoleCompaction), or nil when trimming tool outputs
	// was enough.
	EventCompaction
	// EventReasoningDelta: Text holds the next piece of the model's
	// reasoning, which comes before the answer or tool calls it leads to.
	EventReasoningDelta
	// EventModel: Text names the model answering from now on: the one
	// asked for failed before its first token and a fallback took over.
	// It comes before that fallback's first output.
	EventModel
	// EventMCPList: List is the tool list of a request's MCP server, read
	// at the start of the turn.
	EventMCPList
)

// Event is everything a turn emits on its way to the client. httpfront alone
// turns events into wire frames.
type Event struct {
	Kind   EventKind
	Text   string
	Tool   *ToolEvent
	Result *TurnResult
	Item   *Message
	List   *MCPList
}

// ToolEvent describes one agent tool run, for progress markers and
// Responses API hosted-tool items.
type ToolEvent struct {
	CallID    string
	Name      string
	Server    string // who ran it (ToolCall.Server)
	Tool      string // its name on that server (ToolCall.Tool)
	Emoji     string
	Label     string
	Arguments string
	Output    string // set on EventToolFinished
	// ApprovalRequest is the approval request a call run on the client's
	// approval answers (ToolCall.ApprovalRequest).
	ApprovalRequest string
}

// FinishReason says why a turn's answer ended.
type FinishReason string

const (
	FinishStop      FinishReason = "stop"
	FinishLength    FinishReason = "length"
	FinishToolCalls FinishReason = "tool_calls" // client tools handed back
)

// TurnResult is the outcome of a turn.
type TurnResult struct {
	// ResponseID is the id given to this turn (resp_… or chatcmpl-…).
	ResponseID string
	// Text is the assistant's final answer (or the partial one on failure).
	Text string
	// Reasoning is all the model's reasoning in the turn, in order.
	Reasoning string
	// ClientToolCalls are calls to the client's own tools, handed back.
	ClientToolCalls []ToolCall
	// Added is what the turn appended to the transcript: the new input, the
	// agent's tool calls and results, and the final assistant message.
	Added  []Message
	Finish FinishReason
	Usage  Usage
	// Model is the id of the model that answered last, when it differs
	// from the one asked for or a router said (a fallback); "" otherwise.
	Model string
	// Err is set when the turn failed or was cut short; Text holds what was
	// produced before.
	Err *Error
	// Stored is true when the turn's record was committed to the store.
	Stored bool
	// Compacted is set when the turn compacted the history it continued:
	// the compacted history, which Added follows. The record then starts a
	// new base instead of pointing at its parent.
	Compacted []Message
	// Compaction is the compaction item the turn made, if any; it is also
	// in Compacted.
	Compaction *Message
	// MCPLists are the tool lists of the request's MCP servers.
	MCPLists []MCPList
	// ApprovalRequests are the calls waiting for the client's approval:
	// the turn ended for them.
	ApprovalRequests []ToolCall
	// Trimmed is set when the turn only trimmed old tool outputs of the
	// history it continued: that history, trimmed, which Added follows.
	// The record still points at its parent (the trims are made again
	// from the stored history when it is read back); the trimmed copy is
	// what the conversation keeps in memory for its next turn.
	Trimmed []Message
	// Splice, when the turn compacted once and kept the most recent part
	// of its history verbatim, is Compacted as that: its first Splice.Head
	// items, then the history from item Splice.Skip on (trimmed outputs
	// aside). The record can then point at the kept turns.
	Splice *Splice
	// CompactedInput is how many of the request's input items went into
	// Compacted or Trimmed rather than Added: a request without stored
	// history whose input was larger than the window.
	CompactedInput int
	// Record is the stored record, when the turn belongs to a stored chain.
	Record *StoredResponse
}
