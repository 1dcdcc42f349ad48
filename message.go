package hermes

import "strings"

// Role of a message author.
type Role string

const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
	// RoleCompaction marks a compaction item: Content is hermesd's summary
	// of the part of the conversation it replaced, Encrypted the same
	// sealed for clients (the Responses API's opaque encrypted_content).
	// Models see it as an assistant message carrying the summary.
	RoleCompaction Role = "compaction"
)

// Message is one entry of a transcript, in the shape every model provider
// understands: text (or parts), tool calls made by the assistant, and tool
// results answering them.
type Message struct {
	Role    Role   `json:"role"`
	Content string `json:"content,omitempty"`
	// Parts carries multimodal content (images); Content holds the text.
	Parts []Part `json:"parts,omitempty"`
	// ToolCalls are the calls an assistant message asks for.
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// ToolCallID and Name identify the call a tool message answers.
	ToolCallID string `json:"tool_call_id,omitempty"`
	Name       string `json:"name,omitempty"`
	// Encrypted is a compaction item's summary sealed for clients.
	Encrypted string `json:"encrypted,omitempty"`
	// Reasoning is what the model thought before this assistant message
	// (its answer or its tool calls). It stays in the transcript; only a
	// model configured to take it back is sent it.
	Reasoning string `json:"reasoning,omitempty"`
}

// Part is one piece of multimodal content.
type Part struct {
	Type     string `json:"type"` // "text", "image_url" or "file"
	Text     string `json:"text,omitempty"`
	ImageURL string `json:"image_url,omitempty"` // an http(s) or data: URL
	// Detail is the image detail the client asked for: auto, low or high
	// ("" leaves it to the model).
	Detail string `json:"detail,omitempty"`
	// FileID names the uploaded file an image came from (the Files API);
	// ImageURL then holds its content as a data URL.
	FileID string `json:"file_id,omitempty"`
	// File is a file sent with the message (Type "file"). The runtime
	// reads it into a text part before the turn starts, so no later
	// stage, the store included, sees one.
	File *FileInput `json:"file,omitempty"`
}

// Text returns the message's text: Content, or its text parts joined.
func (m Message) Text() string {
	if m.Content != "" || len(m.Parts) == 0 {
		return m.Content
	}
	var b strings.Builder
	for _, p := range m.Parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// ToolCall is a function call requested by the model.
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"` // JSON text, as the model wrote it
	// Server names who ran the call on the caller's behalf: AgentServer for
	// the agent's own tools. Empty for a call handed back to the client to
	// run (its function tool). The Responses API shows the first kind as
	// hosted-tool items (mcp_call), the second as function_call.
	Server string `json:"server,omitempty"`
	// Tool is the tool's own name on the MCP server that ran it, when that
	// differs from Name (which is how the model knows it: mcp_<server>_<tool>).
	// The Responses API's mcp_call items name it so.
	Tool string `json:"tool,omitempty"`
	// Approval is set on calls to a request's MCP server that needed the
	// client's approval (ApprovalRequested…); ApprovalRequest is the id of
	// the approval request a call made on the client's answer answers.
	Approval        string `json:"approval,omitempty"`
	ApprovalRequest string `json:"approval_request,omitempty"`
}

// AgentServer is the Server of calls hermesd's agent ran itself.
const AgentServer = "hermes"

// MCPToolName is the name an MCP server's tool is offered to the model
// under: mcp_<server>_<tool>, each part reduced to the characters OpenAI
// accepts in function names.
func MCPToolName(server, tool string) string {
	return "mcp_" + sanitizeName(server) + "_" + sanitizeName(tool)
}

func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

// ToolSpec describes a function tool to a model.
type ToolSpec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Parameters is the JSON schema of the arguments, as raw JSON.
	Parameters []byte `json:"parameters,omitempty"`
}

// Usage counts tokens. It is summed over every model call of a turn.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	CachedTokens     int `json:"cached_tokens,omitempty"`
	ReasoningTokens  int `json:"reasoning_tokens,omitempty"`
}

// Total returns prompt plus completion tokens.
func (u Usage) Total() int { return u.PromptTokens + u.CompletionTokens }

// Add adds o to u.
func (u *Usage) Add(o Usage) {
	u.PromptTokens += o.PromptTokens
	u.CompletionTokens += o.CompletionTokens
	u.CachedTokens += o.CachedTokens
	u.ReasoningTokens += o.ReasoningTokens
}

// Approval states of a call to a request's MCP server (ToolCall.Approval).
const (
	// ApprovalRequested: the call waits for the client's approval; the
	// turn ended there, and the call's tool result is a placeholder.
	ApprovalRequested = "requested"
	// ApprovalApproved and ApprovalDeclined mark the call a later turn made
	// again on the client's answer: run, or answered as declined.
	ApprovalApproved = "approved"
	ApprovalDeclined = "declined"
)

// RemoteMCP is a remote MCP server a request offers the agent for its turn
// (the Responses API's tool of type mcp): hermesd connects to it, lists
// its tools and runs the model's calls there.
type RemoteMCP struct {
	Label   string
	URL     string
	Headers map[string]string
	// Allowed names the server's tools the model may see and call; nil
	// allows them all.
	Allowed []string
	// Approve is whether a call needs the client's approval first, unless
	// its tool is named in Never (or, when Approve is false, in Always).
	Approve       bool
	Always, Never []string
}

// NeedsApproval reports whether a call to the server's tool must wait for
// the client's approval.
func (s RemoteMCP) NeedsApproval(tool string) bool {
	for _, n := range s.Never {
		if n == tool {
			return false
		}
	}
	for _, n := range s.Always {
		if n == tool {
			return true
		}
	}
	return s.Approve
}

// Approval is the client's answer to an approval request: the call it
// asked about (from the response that asked), and whether to run it.
type Approval struct {
	RequestID string // the mcp_approval_request item's id
	Call      ToolCall
	Approve   bool
	Reason    string // why the client declined, if it said
}

// MCPList is the tool list of a request's MCP server, as hermesd read it
// for a turn (the Responses API's mcp_list_tools item).
type MCPList struct {
	Server string    `json:"server"`
	Tools  []MCPTool `json:"tools,omitempty"`
}

// MCPTool is one tool of an MCPList.
type MCPTool struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// InputSchema is the tool's JSON schema, as raw JSON.
	InputSchema []byte `json:"input_schema,omitempty"`
}
