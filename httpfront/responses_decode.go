package httpfront

import (
	"bytes"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/actors"
)

// Decoding of POST /v1/responses bodies: the request fields, the input
// items (including the items hermesd itself returned, sent back by
// stateless clients) and the tools.

type responsesRequest struct {
	Model              string            `json:"model"`
	Input              json.RawMessage   `json:"input"`
	Instructions       *string           `json:"instructions"`
	PreviousResponseID string            `json:"previous_response_id"`
	Conversation       json.RawMessage   `json:"conversation"`
	Store              *bool             `json:"store"`
	Stream             bool              `json:"stream"`
	Tools              json.RawMessage   `json:"tools"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	MaxOutputTokens    *int              `json:"max_output_tokens"`
	MaxToolCalls       *int              `json:"max_tool_calls"`
	Metadata           map[string]string `json:"metadata"`
	Background         bool              `json:"background"`
	ParallelToolCalls  *bool             `json:"parallel_tool_calls"`
	Temperature        *float64          `json:"temperature"`
	TopP               *float64          `json:"top_p"`
	PresencePenalty    *float64          `json:"presence_penalty"`
	FrequencyPenalty   *float64          `json:"frequency_penalty"`
	TopLogprobs        *int              `json:"top_logprobs"`
	Reasoning          *reasoningConfig  `json:"reasoning"`
	SafetyIdentifier   *string           `json:"safety_identifier"`
	PromptCacheKey     *string           `json:"prompt_cache_key"`
	Include            []string          `json:"include"`
	Truncation         string            `json:"truncation"`
	ContextManagement  []struct {
		Type             string `json:"type"`
		CompactThreshold *int   `json:"compact_threshold"`
	} `json:"context_management"`
	// wire is what the request's response objects echo, as decoding the
	// TurnRequest's Wire gives it: a stream takes it as it is.
	wire responseWire
}

// responseWire is what a response object echoes of its request; kept in
// the record's Wire so GET renders the same object the stream ended with.
type responseWire struct {
	Instructions      *string           `json:"instructions,omitempty"`
	Metadata          map[string]string `json:"metadata,omitempty"`
	Tools             json.RawMessage   `json:"tools,omitempty"`
	ToolChoice        json.RawMessage   `json:"tool_choice,omitempty"`
	MaxOutputTokens   *int              `json:"max_output_tokens,omitempty"`
	MaxToolCalls      *int              `json:"max_tool_calls,omitempty"`
	ParallelToolCalls *bool             `json:"parallel_tool_calls,omitempty"`
	Temperature       *float64          `json:"temperature,omitempty"`
	TopP              *float64          `json:"top_p,omitempty"`
	PresencePenalty   *float64          `json:"presence_penalty,omitempty"`
	FrequencyPenalty  *float64          `json:"frequency_penalty,omitempty"`
	TopLogprobs       *int              `json:"top_logprobs,omitempty"`
	Reasoning         *reasoningConfig  `json:"reasoning,omitempty"`
	SafetyIdentifier  *string           `json:"safety_identifier,omitempty"`
	PromptCacheKey    *string           `json:"prompt_cache_key,omitempty"`
	Include           []string          `json:"include,omitempty"`
	Truncation        string            `json:"truncation,omitempty"`
	Store             bool              `json:"store"`
	Background        bool              `json:"background,omitempty"`
	// canonical says Tools and ToolChoice are as json.Marshal writes a
	// json.RawMessage (the decoder made them so), so echoes copy them.
	canonical bool
}

// inputItem is one item of a Responses API input list.
type inputItem struct {
	Type        string          `json:"type"`
	ID          string          `json:"id"`
	Role        string          `json:"role"`
	Content     wireContent     `json:"content"`
	CallID      string          `json:"call_id"`
	Name        string          `json:"name"`
	Arguments   string          `json:"arguments"`
	Output      wireContent     `json:"output"`
	ServerLabel string          `json:"server_label"`
	Error       json.RawMessage `json:"error"`
	Action      json.RawMessage `json:"action"`
	// EncryptedContent is a compaction item's sealed summary.
	EncryptedContent string `json:"encrypted_content"`
	// An mcp_approval_response's answer.
	ApprovalRequestID string `json:"approval_request_id"`
	Approve           *bool  `json:"approve"`
	Reason            string `json:"reason"`
	// An mcp_list_tools item's tools: their names are what the model is
	// offered of its server.
	Tools []struct {
		Name string `json:"name"`
	} `json:"tools"`
}

// reasoningEfforts are the efforts the Open Responses schema names
// (and OpenAI's "minimal").
var reasoningEfforts = map[string]bool{"none": true, "minimal": true, "low": true, "medium": true, "high": true, "xhigh": true}

// reasoningSummaries are the summaries a request may ask for; any of
// them gives the reasoning itself as the summary.
var reasoningSummaries = map[string]bool{"auto": true, "concise": true, "detailed": true}

// decodeResponses turns a /v1/responses body into a turn request.
func (s *Server) decodeResponses(body []byte) (*responsesRequest, *hermes.TurnRequest, error) {
	return s.decodeResponsesOn(body, nil)
}

// decodeResponsesOn is decodeResponses for a WebSocket connection: the
// approval answers of a store: false request continuing a response go to
// pending instead of being resolved, since that response may be the
// connection's own, which only its session knows, once the request's turn
// starts (socketTurn resolves them then).
func (s *Server) decodeResponsesOn(body []byte, pending *[]approvalAnswer) (*responsesRequest, *hermes.TurnRequest, error) {
	var rr responsesRequest
	if err := decodeObject(body, &rr); err != nil {
		return nil, nil, err
	}
	req := &hermes.TurnRequest{Previous: rr.PreviousResponseID, Store: true, Background: rr.Background}
	var err error
	if req.Model, err = s.resolveModel(rr.Model); err != nil {
		return nil, nil, err
	}
	if rr.Store != nil {
		req.Store = *rr.Store
	}
	if err := checkMetadata(rr.Metadata); err != nil {
		return nil, nil, err
	}
	if rr.Background && !req.Store {
		return nil, nil, hermes.InvalidParam("background", "background responses must be stored (store: true)")
	}
	conv, err := conversationID(rr.Conversation)
	if err != nil {
		return nil, nil, err
	}
	if conv != "" && rr.PreviousResponseID != "" {
		return nil, nil, hermes.InvalidParam("conversation", "'conversation' and 'previous_response_id' cannot be used together")
	}
	req.Conversation = conv
	if err := checkID("previous_response_id", rr.PreviousResponseID); err != nil {
		return nil, nil, err
	}
	if err := checkID("conversation", conv); err != nil {
		return nil, nil, err
	}
	var system []string
	if rr.Instructions != nil && *rr.Instructions != "" {
		system = append(system, *rr.Instructions)
	}
	// With nothing to continue, every tool output must answer a call in
	// the input itself.
	var approvals []approvalAnswer
	input, sys, err := s.decodeInput(rr.Input, inputScope{param: "input", whole: rr.PreviousResponseID == "" && conv == "", approvals: &approvals, lists: &req.Listed})
	if err != nil {
		return nil, nil, err
	}
	if err := s.checkImages(input, "input"); err != nil {
		return nil, nil, err
	}
	req.Input = input
	req.System = strings.Join(append(system, sys...), "\n\n")
	if req.ClientTools, req.MCP, err = responseTools(rr.Tools); err != nil {
		return nil, nil, err
	}
	if pending != nil && rr.PreviousResponseID != "" && !req.Store {
		*pending = approvals
	} else if req.Approvals, err = s.approvals(approvals, req, rr.PreviousResponseID, nil); err != nil {
		return nil, nil, err
	}
	if len(req.Input) == 0 && len(approvals) == 0 {
		return nil, nil, hermes.InvalidParam("input", "'input' must be a non-empty string or list of items")
	}
	if req.ToolChoice, err = toolChoice(rr.ToolChoice); err != nil {
		return nil, nil, err
	}
	if rr.MaxOutputTokens != nil {
		if *rr.MaxOutputTokens < 1 {
			return nil, nil, hermes.InvalidParam("max_output_tokens", "max_output_tokens must be at least 1")
		}
		req.MaxTokens = *rr.MaxOutputTokens
	}
	if rr.MaxToolCalls != nil {
		if *rr.MaxToolCalls < 1 {
			return nil, nil, hermes.InvalidParam("max_tool_calls", "max_tool_calls must be at least 1")
		}
		req.MaxToolCalls = *rr.MaxToolCalls
	}
	if rr.TopLogprobs != nil && (*rr.TopLogprobs < 0 || *rr.TopLogprobs > 20) {
		return nil, nil, hermes.InvalidParam("top_logprobs", "top_logprobs must be from 0 to 20")
	}
	if r := rr.Reasoning; r != nil && r.Effort != nil {
		if !reasoningEfforts[*r.Effort] {
			return nil, nil, hermes.InvalidParam("reasoning.effort", "reasoning.effort must be none, minimal, low, medium, high or xhigh")
		}
		req.ReasoningEffort = *r.Effort
	}
	if r := rr.Reasoning; r != nil && r.Summary != nil && !reasoningSummaries[*r.Summary] {
		return nil, nil, hermes.InvalidParam("reasoning.summary", "reasoning.summary must be auto, concise or detailed")
	}
	for _, f := range []struct {
		param string
		v     *string
	}{{"safety_identifier", rr.SafetyIdentifier}, {"prompt_cache_key", rr.PromptCacheKey}} {
		if f.v != nil && len(*f.v) > 64 {
			return nil, nil, hermes.InvalidParam(f.param, "'%s' is longer than 64 characters", f.param)
		}
	}
	switch rr.Truncation {
	case "", "auto", "disabled":
		req.Truncation = rr.Truncation
	default:
		return nil, nil, hermes.InvalidParam("truncation", "truncation must be auto or disabled")
	}
	for i, cm := range rr.ContextManagement {
		if cm.Type != "compaction" {
			return nil, nil, hermes.InvalidParam(fmt.Sprintf("context_management[%d].type", i), "context_management entries must be of type 'compaction'")
		}
		if cm.CompactThreshold != nil {
			if *cm.CompactThreshold < 1000 {
				return nil, nil, hermes.InvalidParam(fmt.Sprintf("context_management[%d].compact_threshold", i), "compact_threshold must be at least 1000 tokens")
			}
			req.CompactThreshold = *cm.CompactThreshold
		}
	}
	w := &rr.wire
	*w = responseWire{Instructions: rr.Instructions, Metadata: rr.Metadata,
		MaxOutputTokens: rr.MaxOutputTokens, MaxToolCalls: rr.MaxToolCalls, ParallelToolCalls: rr.ParallelToolCalls,
		Temperature: rr.Temperature, TopP: rr.TopP, PresencePenalty: rr.PresencePenalty, FrequencyPenalty: rr.FrequencyPenalty,
		TopLogprobs: rr.TopLogprobs, SafetyIdentifier: rr.SafetyIdentifier, PromptCacheKey: rr.PromptCacheKey,
		Include: rr.Include, Truncation: rr.Truncation, Store: req.Store, Background: rr.Background}
	if rr.Reasoning != nil {
		w.Reasoning = &reasoningConfig{Effort: rr.Reasoning.Effort, Summary: rr.Reasoning.Summary}
	}
	// The raw fields are kept as the encoder writes them, once, so Wire
	// and the stream's echo copy them.
	w.canonical = true
	if len(rr.ToolChoice) > 0 {
		w.ToolChoice = canonicalRaw(rr.ToolChoice)
	}
	if t := bytes.TrimSpace(rr.Tools); len(t) > 0 && !bytes.Equal(t, []byte("null")) {
		if len(req.MCP) > 0 {
			t = maskedTools(t) // echoed as sent, credentials masked
		}
		w.Tools = canonicalRaw(t)
	}
	req.Wire = appendWire(nil, w)
	return &rr, req, nil
}

// appendWire appends w as json.Marshal does, its raw fields copied
// (w.canonical): a large tools list is not encoded again.
func appendWire(b []byte, w *responseWire) []byte {
	b = append(b, '{')
	field := func(name string) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), name...), `":`...)
	}
	if w.Instructions != nil {
		field("instructions")
		b = appendString(b, *w.Instructions)
	}
	if len(w.Metadata) > 0 {
		field("metadata")
		b = appendMetadata(b, w.Metadata)
	}
	if len(w.Tools) > 0 {
		field("tools")
		b = appendRaw(b, w.Tools, w.canonical)
	}
	if len(w.ToolChoice) > 0 {
		field("tool_choice")
		b = appendRaw(b, w.ToolChoice, w.canonical)
	}
	for _, f := range []struct {
		name string
		n    *int
	}{{"max_output_tokens", w.MaxOutputTokens}, {"max_tool_calls", w.MaxToolCalls}} {
		if f.n != nil {
			field(f.name)
			b = appendInt(b, int64(*f.n))
		}
	}
	if w.ParallelToolCalls != nil {
		field("parallel_tool_calls")
		b = strconv.AppendBool(b, *w.ParallelToolCalls)
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"temperature", w.Temperature}, {"top_p", w.TopP}, {"presence_penalty", w.PresencePenalty}, {"frequency_penalty", w.FrequencyPenalty}} {
		if f.v != nil {
			field(f.name)
			b = appendFloat(b, *f.v)
		}
	}
	if w.TopLogprobs != nil {
		field("top_logprobs")
		b = appendInt(b, int64(*w.TopLogprobs))
	}
	if w.Reasoning != nil {
		field("reasoning")
		b = appendReasoning(b, w.Reasoning)
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"safety_identifier", w.SafetyIdentifier}, {"prompt_cache_key", w.PromptCacheKey}} {
		if f.v != nil {
			field(f.name)
			b = appendString(b, *f.v)
		}
	}
	if len(w.Include) > 0 {
		field("include")
		b = append(b, '[')
		for i, s := range w.Include {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		b = append(b, ']')
	}
	if w.Truncation != "" {
		field("truncation")
		b = appendString(b, w.Truncation)
	}
	field("store")
	b = strconv.AppendBool(b, w.Store)
	if w.Background {
		field("background")
		b = append(b, "true"...)
	}
	return append(b, '}')
}

// responseTool is one entry of a Responses API tools list.
type responseTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	ServerLabel string          `json:"server_label"`
	// Tools are a namespace's function tools (Codex groups tools so).
	Tools []responseTool `json:"tools"`
	// An mcp tool's server and what the request allows of it.
	ServerURL       string            `json:"server_url"`
	ConnectorID     string            `json:"connector_id"`
	Authorization   string            `json:"authorization"`
	Headers         map[string]string `json:"headers"`
	AllowedTools    json.RawMessage   `json:"allowed_tools"`
	RequireApproval json.RawMessage   `json:"require_approval"`
}

// webSearchTools are OpenAI's hosted web search types; hermesd's own
// web_search serves them.
var webSearchTools = map[string]bool{"web_search": true, "web_search_preview": true,
	"web_search_preview_2025_03_11": true, "web_search_2025_08_26": true}

// responseTools reads a Responses API tools list: the caller's function
// tools (flat or grouped in namespaces) become client tools; hosted types
// hermesd serves itself are accepted; the others are refused by name, so
// a client never believes a tool is there when it is not.
func responseTools(raw json.RawMessage) ([]hermes.ToolSpec, []hermes.RemoteMCP, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil, nil
	}
	var tools []responseTool
	if err := json.Unmarshal(raw, &tools); err != nil {
		return nil, nil, hermes.InvalidParam("tools", "'tools' must be a list of tool objects")
	}
	var remote []hermes.RemoteMCP
	var specs []hermes.ToolSpec
	seen := make(map[string]bool)
	addFunction := func(param string, t responseTool) error {
		if t.Name == "" {
			return hermes.InvalidParam(param+".name", "function tools need a name")
		}
		if seen[t.Name] {
			return hermes.InvalidParam(param+".name", "tool name '%s' is given twice", t.Name)
		}
		seen[t.Name] = true
		specs = append(specs, hermes.ToolSpec{Name: t.Name, Description: t.Description, Parameters: t.Parameters})
		return nil
	}
	for i, t := range tools {
		param := "tools[" + itoa(i) + "]"
		switch {
		case t.Type == "function" || t.Type == "":
			if err := addFunction(param, t); err != nil {
				return nil, nil, err
			}
		case t.Type == "namespace":
			// The model sees the namespace's tools by their own names; a
			// call goes back as a function_call with that name and the
			// namespace (itemForm.namespaces), which Codex needs to run it.
			for j, inner := range t.Tools {
				p := param + ".tools[" + itoa(j) + "]"
				if inner.Type != "function" && inner.Type != "" {
					return nil, nil, hermes.InvalidParam(p+".type", "a namespace holds function tools, not '%s'", inner.Type)
				}
				if err := addFunction(p, inner); err != nil {
					return nil, nil, err
				}
			}
		case webSearchTools[t.Type]:
		case t.Type == "mcp" && t.ServerLabel == hermes.AgentServer:
			// The agent's own tools, named as the mcp_call items name them.
		case t.Type == "mcp":
			r, err := remoteMCP(param, t)
			if err != nil {
				return nil, nil, err
			}
			for _, other := range remote {
				if other.Label == r.Label {
					return nil, nil, hermes.InvalidParam(param+".server_label", "server_label '%s' is given twice", r.Label)
				}
			}
			if len(remote) == maxRemoteMCP {
				return nil, nil, hermes.InvalidParam(param, "a request may name at most %d MCP servers", maxRemoteMCP)
			}
			remote = append(remote, r)
		default:
			return nil, nil, hermes.InvalidParam(param+".type", "tool type '%s' is not supported by this server", t.Type)
		}
	}
	return specs, remote, nil
}

// maxRemoteMCP bounds the MCP servers one request names: each is a
// connection made before the model is called.
const maxRemoteMCP = 8

// mcpLabel is what a request's server_label may be: it becomes part of
// tool names (mcp_<label>_<tool>, at most 64 characters).
var mcpLabel = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// remoteMCP reads a request's mcp tool: the server hermesd connects to for
// the turn, its headers, which tools it allows and which calls wait for
// the client's approval (all of them unless require_approval says
// otherwise, as OpenAI defaults).
func remoteMCP(param string, t responseTool) (hermes.RemoteMCP, error) {
	r := hermes.RemoteMCP{Label: t.ServerLabel, URL: t.ServerURL, Approve: true}
	switch {
	case !mcpLabel.MatchString(t.ServerLabel):
		return r, hermes.InvalidParam(param+".server_label", "server_label must be 1 to 32 letters, digits, _ or -")
	case t.ConnectorID != "" && t.ServerURL == "":
		return r, hermes.InvalidParam(param+".connector_id", "connectors are not served here; give the MCP server's server_url")
	case t.ServerURL == "":
		return r, hermes.InvalidParam(param+".server_url", "an mcp tool needs a server_url")
	}
	u, err := url.Parse(t.ServerURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(t.ServerURL) > 2048 {
		return r, hermes.InvalidParam(param+".server_url", "server_url must be an http or https URL")
	}
	if len(t.Headers) > 32 {
		return r, hermes.InvalidParam(param+".headers", "at most 32 headers")
	}
	r.Headers = make(map[string]string, len(t.Headers)+1)
	for k, v := range t.Headers {
		if !validHeader(k, v) {
			return r, hermes.InvalidParam(param+".headers", "header '%s' is not a valid HTTP header", cutForMessage(k))
		}
		r.Headers[k] = v
	}
	if t.Authorization != "" {
		if !validHeader("Authorization", t.Authorization) {
			return r, hermes.InvalidParam(param+".authorization", "authorization is not a valid header value")
		}
		r.Headers["Authorization"] = "Bearer " + t.Authorization
	}
	if r.Allowed, err = allowedTools(param+".allowed_tools", t.AllowedTools); err != nil {
		return r, err
	}
	if err := requireApproval(param+".require_approval", t.RequireApproval, &r); err != nil {
		return r, err
	}
	return r, nil
}

// validHeader refuses names and values no HTTP header can carry (a CR or
// LF would start another header).
func validHeader(k, v string) bool {
	if k == "" || len(k) > 256 || len(v) > 8192 || strings.ContainsAny(v, "\r\n\x00") {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}

func cutForMessage(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// toolNames is OpenAI's {"tool_names": […]} filter.
type toolNames struct {
	ToolNames []string `json:"tool_names"`
	ReadOnly  *bool    `json:"read_only"`
}

// allowedTools reads allowed_tools: a list of names or {"tool_names": […]};
// nil allows every tool.
func allowedTools(param string, raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var names []string
	if json.Unmarshal(raw, &names) == nil {
		return append([]string{}, names...), nil
	}
	var f toolNames
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, hermes.InvalidParam(param, "allowed_tools must be a list of tool names or {\"tool_names\": […]}")
	}
	if f.ReadOnly != nil && *f.ReadOnly {
		return nil, hermes.InvalidParam(param+".read_only", "the read_only filter is not supported; list the tools in tool_names")
	}
	return append([]string{}, f.ToolNames...), nil
}

// requireApproval reads require_approval: "always", "never", or
// {"always": {"tool_names": […]}, "never": {"tool_names": […]}} where the
// tools named in neither need approval.
func requireApproval(param string, raw json.RawMessage, r *hermes.RemoteMCP) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	var mode string
	if json.Unmarshal(raw, &mode) == nil {
		switch mode {
		case "always":
		case "never":
			r.Approve = false
		default:
			return hermes.InvalidParam(param, "require_approval must be always, never or {\"always\"|\"never\": {\"tool_names\": […]}}")
		}
		return nil
	}
	var f struct {
		Always *toolNames `json:"always"`
		Never  *toolNames `json:"never"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return hermes.InvalidParam(param, "require_approval must be always, never or {\"always\"|\"never\": {\"tool_names\": […]}}")
	}
	for _, g := range []*toolNames{f.Always, f.Never} {
		if g != nil && g.ReadOnly != nil && *g.ReadOnly {
			return hermes.InvalidParam(param, "the read_only filter is not supported; list the tools in tool_names")
		}
	}
	if f.Always != nil {
		r.Always = f.Always.ToolNames
	}
	if f.Never != nil {
		r.Never = f.Never.ToolNames
	}
	return nil
}

// maskedTools is the tools list as a response echoes it and the store
// keeps it: an mcp tool's headers and authorization masked, and the
// password of its server_url, so no credential outlives the request.
func maskedTools(raw json.RawMessage) json.RawMessage {
	var tools []map[string]json.RawMessage
	if json.Unmarshal(raw, &tools) != nil {
		return raw
	}
	changed := false
	for _, t := range tools {
		var typ string
		if json.Unmarshal(t["type"], &typ); typ != "mcp" {
			continue
		}
		var headers map[string]string
		if json.Unmarshal(t["headers"], &headers) == nil && len(headers) > 0 {
			for k := range headers {
				headers[k] = "****"
			}
			t["headers"], _ = json.Marshal(headers)
			changed = true
		}
		if a, ok := t["authorization"]; ok && !bytes.Equal(bytes.TrimSpace(a), []byte("null")) {
			t["authorization"] = json.RawMessage(`"****"`)
			changed = true
		}
		var su string
		if json.Unmarshal(t["server_url"], &su) == nil {
			if u, err := url.Parse(su); err == nil && u.User != nil {
				t["server_url"], _ = json.Marshal(u.Redacted())
				changed = true
			}
		}
	}
	if !changed {
		return raw
	}
	b, err := json.Marshal(tools)
	if err != nil {
		return raw
	}
	return b
}

// checkID refuses ids no store key should hold: path characters, control
// bytes, absurd lengths.
func checkID(param, id string) error {
	if len(id) > 256 || strings.ContainsAny(id, "/\\\x00\r\n") {
		return hermes.InvalidParam(param, "'%s' is not a valid id", param)
	}
	return nil
}

// conversationID reads "name", {"id": "conv_…"} or null.
func conversationID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var name string
	if json.Unmarshal(raw, &name) == nil {
		return name, nil
	}
	var obj struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.ID == "" {
		return "", hermes.InvalidParam("conversation", "'conversation' must be a name, a conv_ id or {\"id\": …}")
	}
	return obj.ID, nil
}

// inputScope says where a list of input items stands.
type inputScope struct {
	param string // the body field holding the list: "input" or "items"
	// whole says history is all the items continue; an output whose call
	// is neither there nor earlier in the list is refused. Otherwise (a
	// chain the runtime resolves) only a second output for one call is.
	whole   bool
	history []hermes.Message
	// approvals, when set, receives the list's mcp_approval_response
	// items; elsewhere they are refused.
	approvals *[]approvalAnswer
	// lists, when set, receives the list's mcp_list_tools items.
	lists *[]hermes.MCPList
}

// approvalAnswer is an mcp_approval_response item of an input list.
type approvalAnswer struct {
	param, id, reason string
	approve           bool
}

// decodeInput turns input (a string or a list of items) into messages, and
// returns system/developer messages separately to layer on the prompt.
func (s *Server) decodeInput(raw json.RawMessage, scope inputScope) ([]hermes.Message, []string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil, nil
	}
	if raw[0] == '"' {
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return nil, nil, hermes.InvalidParam(scope.param, "'%s' is not a valid string", scope.param)
		}
		return []hermes.Message{{Role: hermes.RoleUser, Content: text}}, nil, nil
	}
	var items []inputItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, nil, hermes.InvalidParam(scope.param, "'%s' must be a string or a list of items: %s", scope.param, cleanJSONError(err))
	}
	if len(items) > maxMessages {
		return nil, nil, hermes.InvalidParam(scope.param, "'%s' has %d items; at most %d are accepted", scope.param, len(items), maxMessages)
	}
	// About a message an item: one allocation, not one per doubling.
	d := inputDecoder{out: make([]hermes.Message, 0, len(items)), called: make(map[string]bool), answered: make(map[string]bool)}
	for _, m := range scope.history {
		for _, c := range m.ToolCalls {
			d.called[c.ID] = true
		}
		if m.Role == hermes.RoleTool {
			d.answered[m.ToolCallID] = true
		}
	}
	for i, it := range items {
		param := scope.param + "[" + itoa(i) + "]"
		switch it.Type {
		case "mcp_approval_response":
			if scope.approvals == nil {
				return nil, nil, hermes.InvalidParam(param+".type", "mcp_approval_response items answer a response's approval request: send them to /v1/responses")
			}
			if it.ApprovalRequestID == "" || it.Approve == nil {
				return nil, nil, hermes.InvalidParam(param, "mcp_approval_response items need approval_request_id and approve")
			}
			*scope.approvals = append(*scope.approvals, approvalAnswer{param: param, id: it.ApprovalRequestID, approve: *it.Approve, reason: it.Reason})
			continue
		case "mcp_approval_request":
			if !scope.whole {
				continue // the response that made it holds its call
			}
			// A stateless client sends the request back with its answer:
			// the call waits in the transcript as it did when it was made.
			if it.ID == "" || it.Name == "" || !mcpLabel.MatchString(it.ServerLabel) {
				return nil, nil, hermes.InvalidParam(param, "mcp_approval_request items need id, name and server_label")
			}
			name := hermes.MCPToolName(it.ServerLabel, it.Name)
			d.addCall(hermes.ToolCall{ID: it.ID, Name: name, Tool: it.Name, Server: it.ServerLabel, Arguments: it.Arguments,
				Approval: hermes.ApprovalRequested})
			if err := d.addResult(param, hermes.Message{Role: hermes.RoleTool, ToolCallID: it.ID, Name: name, Content: actors.AwaitingApproval}, false); err != nil {
				return nil, nil, err
			}
			continue
		case "mcp_list_tools":
			// Shown to the client, never to the model; sent back, it says
			// the client holds its server's list (no new one is emitted).
			if scope.lists != nil && it.ServerLabel != "" {
				l := hermes.MCPList{Server: it.ServerLabel, Tools: make([]hermes.MCPTool, len(it.Tools))}
				for j, tl := range it.Tools {
					l.Tools[j].Name = tl.Name
				}
				*scope.lists = append(*scope.lists, l)
			}
			continue
		}
		if err := s.decodeItem(&d, param, it, scope.whole); err != nil {
			return nil, nil, err
		}
	}
	return d.out, d.system, nil
}

// inputDecoder accumulates the messages of an input list.
type inputDecoder struct {
	out    []hermes.Message
	system []string
	// called and answered track tool call ids seen in the input.
	called, answered map[string]bool
	// reasoning is a reasoning item's text waiting for the assistant
	// message it preceded.
	reasoning string
}

// assistant appends an assistant message, giving it the reasoning that
// came before it.
func (d *inputDecoder) assistant(m hermes.Message) {
	m.Reasoning, d.reasoning = d.reasoning, ""
	d.out = append(d.out, m)
}

// addCall appends a tool call, joining the assistant message before it
// when that message only calls tools (parallel calls are one message).
func (d *inputDecoder) addCall(c hermes.ToolCall) {
	d.called[c.ID] = true
	if n := len(d.out); n > 0 && d.out[n-1].Role == hermes.RoleAssistant && d.out[n-1].Content == "" && len(d.out[n-1].ToolCalls) > 0 {
		d.out[n-1].ToolCalls = append(d.out[n-1].ToolCalls, c)
		return
	}
	d.assistant(hermes.Message{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{c}})
}

// addResult appends a tool result, refusing a second result for one call
// and, when standalone, a result for a call the input does not hold.
func (d *inputDecoder) addResult(param string, m hermes.Message, standalone bool) error {
	id := m.ToolCallID
	if d.answered[id] {
		return hermes.InvalidParam(param+".call_id", "Duplicate output for call_id '%s': a call takes one output.", id)
	}
	if standalone && !d.called[id] {
		return hermes.InvalidParam(param+".call_id", "No tool call found for function call output with call_id '%s'.", id)
	}
	d.answered[id] = true
	d.out = append(d.out, m)
	return nil
}

func (s *Server) decodeItem(d *inputDecoder, param string, it inputItem, standalone bool) error {
	switch it.Type {
	case "", "message":
		switch it.Role {
		case "system", "developer":
			d.system = append(d.system, it.Content.Text)
		case "user":
			d.out = append(d.out, hermes.Message{Role: hermes.RoleUser, Content: it.Content.Text, Parts: it.Content.Parts})
		case "assistant":
			d.assistant(hermes.Message{Role: hermes.RoleAssistant, Content: stripMarkers(it.Content.Text)})
		default:
			return hermes.InvalidParam(param+".role", "unknown role '%s'", it.Role)
		}
	case "function_call":
		if it.CallID == "" || it.Name == "" {
			return hermes.InvalidParam(param, "function_call items need call_id and name")
		}
		d.addCall(hermes.ToolCall{ID: it.CallID, Name: it.Name, Arguments: it.Arguments})
	case "function_call_output":
		if it.CallID == "" {
			return hermes.InvalidParam(param+".call_id", "function_call_output items need a call_id")
		}
		return d.addResult(param, hermes.Message{Role: hermes.RoleTool, ToolCallID: it.CallID, Content: it.Output.Text}, standalone)
	case "mcp_call":
		// A tool a server ran for the caller: the model saw its call and
		// its result, so it gets both back.
		if it.ID == "" || it.Name == "" {
			return hermes.InvalidParam(param, "mcp_call items need id and name")
		}
		c := hermes.ToolCall{ID: it.ID, Name: it.Name, Arguments: it.Arguments, Server: it.ServerLabel}
		if c.Server == "" {
			c.Server = hermes.AgentServer
		}
		if c.Server != hermes.AgentServer {
			// An MCP server's tool: the item names it as the server does,
			// the model knew it as mcp_<server>_<tool>.
			c.Name, c.Tool = hermes.MCPToolName(c.Server, it.Name), it.Name
		}
		d.addCall(c)
		out := it.Output.Text
		if e := errorText(it.Error); e != "" {
			out = toolErrorResult(e)
		} else if out == "" {
			// The Agents SDK sends mcp_call back without its (possibly
			// large) output: take it from the stored response it names.
			out = s.storedOutput(it.ID)
		}
		return d.addResult(param, hermes.Message{Role: hermes.RoleTool, ToolCallID: it.ID, Name: c.Name, Content: out}, false)
	case "web_search_call":
		if it.ID == "" {
			return hermes.InvalidParam(param+".id", "web_search_call items need an id")
		}
		args, result := searchReplay(it.Action)
		d.addCall(hermes.ToolCall{ID: it.ID, Name: "web_search", Arguments: args, Server: hermes.AgentServer})
		return d.addResult(param, hermes.Message{Role: hermes.RoleTool, ToolCallID: it.ID, Name: "web_search", Content: result}, false)
	case "compaction":
		// A stateless client hands back a compaction item it was given: the
		// summary it seals stands in for the turns it replaced.
		summary, err := s.rt.OpenCompaction(it.EncryptedContent)
		if err != nil {
			e := hermes.AsError(err)
			e.Param = param + ".encrypted_content"
			return e
		}
		d.out = append(d.out, hermes.Message{Role: hermes.RoleCompaction, Content: summary, Encrypted: it.EncryptedContent})
	case "reasoning":
		// A stateless client hands back a reasoning item it was given
		// (Codex, the Vercel AI SDK with store off): the text it seals goes
		// back on the assistant message it preceded, so the transcript
		// keeps it (a model gets it only when configured to take it).
		// Another provider's sealed content means nothing here and is
		// dropped, as is an item without any.
		if text, ok := s.rt.OpenReasoning(it.EncryptedContent); ok {
			d.reasoning += text
		}
	case "item_reference":
		msgs, err := s.resolveItem(it.ID)
		if err != nil {
			return hermes.InvalidParam(param+".id", "%s", err.Error())
		}
		for _, m := range msgs {
			switch {
			case m.Role == hermes.RoleTool:
				if err := d.addResult(param, m, false); err != nil {
					return err
				}
			case len(m.ToolCalls) > 0:
				for _, c := range m.ToolCalls {
					d.addCall(c)
				}
			default:
				d.out = append(d.out, m)
			}
		}
	default:
		return hermes.InvalidParam(param+".type", "unsupported input item type '%s'", it.Type)
	}
	return nil
}

// storedOutput is the result of the agent call item id names, from its
// stored response; a note saying so when it is not stored.
func (s *Server) storedOutput(id string) string {
	if msgs, err := s.resolveItem(id); err == nil {
		for _, m := range msgs {
			if m.Role == hermes.RoleTool {
				return m.Content
			}
		}
	}
	return `{"note":"the output of this call was not sent back and is not stored"}`
}

// errorText reads an mcp_call's error: a string, or any other JSON as text.
func errorText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// toolErrorResult is the tool result a failed tool gave the model, as
// tooling.ErrorResult writes it (httpfront does not import tooling).
func toolErrorResult(msg string) string {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return string(b)
}

// searchReplay rebuilds the web_search call and result a web_search_call
// item stands for: the query, and the sources when the item lists them.
func searchReplay(raw json.RawMessage) (args, result string) {
	var a struct {
		Type    string         `json:"type"`
		Query   string         `json:"query"`
		URL     string         `json:"url"`
		Sources []searchSource `json:"sources"`
	}
	_ = json.Unmarshal(raw, &a)
	q := a.Query
	if q == "" {
		q = a.URL
	}
	argb, _ := json.Marshal(map[string]string{"query": q})
	type res struct {
		URL string `json:"url"`
	}
	out := struct {
		Query   string `json:"query"`
		Results []res  `json:"results"`
		Note    string `json:"note,omitempty"`
	}{Query: q, Results: []res{}}
	for _, s := range a.Sources {
		out.Results = append(out.Results, res{URL: s.URL})
	}
	if len(a.Sources) == 0 {
		out.Note = "the results of this search were shown earlier and are not repeated"
	}
	resb, _ := json.Marshal(out)
	return string(argb), string(resb)
}

// resolveItem finds a stored item by id and returns the messages it stands
// for. Item ids name their response (msg_<r>_<k> belongs to resp_<r>), so
// this is one store read.
func (s *Server) resolveItem(id string) ([]hermes.Message, error) {
	respID, _, ok := splitItemID(id)
	if !ok {
		return nil, hermes.Errorf(hermes.ENotFound, "item '%s' not found", id)
	}
	rec, err := s.rt.Response(respID)
	if err != nil {
		return nil, hermes.Errorf(hermes.ENotFound, "item '%s' not found", id)
	}
	return s.recordItem(rec, id)
}

// recordItem returns the messages rec's item id stands for.
func (s *Server) recordItem(rec *hermes.StoredResponse, id string) ([]hermes.Message, error) {
	var w responseWire
	_ = json.Unmarshal(rec.Wire, &w)
	form := s.recordForm(&w)
	outItems, outMsgs := outputItems(rec.ID, rec.MCPLists, recordOutput(rec), form)
	inItems, inMsgs := inputItems(rec.ID, rec.Input, form)
	items, msgs := append(outItems, inItems...), append(outMsgs, inMsgs...)
	for k, it := range items {
		if it.ID == id {
			return msgs[k], nil
		}
	}
	return nil, hermes.Errorf(hermes.ENotFound, "item '%s' not found", id)
}

// splitItemID splits msg_<r>_<k> into resp_<r> and k.
func splitItemID(id string) (respID, k string, ok bool) {
	_, rest, ok := strings.Cut(id, "_")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return "", "", false
	}
	return "resp_" + rest[:i], rest[i+1:], true
}

func itemID(prefix, respID, k string) string {
	return prefix + strings.TrimPrefix(respID, "resp_") + "_" + k
}

// approvals resolves a request's mcp_approval_response items: each must
// answer, once, an approval request of the response this one continues
// (or, stateless, one sent back in the same input), for an MCP server the
// request's tools name again (its headers are not kept between requests).
//
// local, when set, is a response kept by the request's WebSocket connection
// (store: false, never in the store): a request continuing it finds its
// approval requests there.
func (s *Server) approvals(items []approvalAnswer, req *hermes.TurnRequest, previous string, local *hermes.StoredResponse) ([]hermes.Approval, error) {
	if len(items) == 0 {
		return nil, nil
	}
	parent := previous
	if parent == "" && req.Conversation != "" {
		if c, err := s.rt.Conversation(req.Conversation); err == nil {
			parent = c.Latest
		}
	}
	out := make([]hermes.Approval, 0, len(items))
	seen := make(map[string]bool)
	for _, it := range items {
		param := it.param + ".approval_request_id"
		if seen[it.id] {
			return nil, hermes.InvalidParam(param, "approval request '%s' is answered twice", cutForMessage(it.id))
		}
		seen[it.id] = true
		var call *hermes.ToolCall
		var err error
		switch {
		case parent == "" && req.Conversation == "":
			call = requestedCall(req.Input, it.id)
			if call == nil {
				return nil, hermes.InvalidParam(param, "approval request '%s' is not in the input: send it back with its answer, or send previous_response_id",
					cutForMessage(it.id))
			}
		default:
			if call, err = s.storedRequest(param, it.id, parent, local); err != nil {
				return nil, err
			}
		}
		listed := false
		for _, r := range req.MCP {
			listed = listed || r.Label == call.Server
		}
		if !listed {
			return nil, hermes.InvalidParam("tools", "approval request '%s' is for MCP server '%s': list it in tools again to run the call", it.id, call.Server)
		}
		out = append(out, hermes.Approval{RequestID: it.id, Call: *call, Approve: it.approve, Reason: it.reason})
	}
	return out, nil
}

// requestedCall finds the call waiting for approval that id names among
// the input's messages (an mcp_approval_request item sent back).
func requestedCall(input []hermes.Message, id string) *hermes.ToolCall {
	for i := range input {
		for j, c := range input[i].ToolCalls {
			if c.ID == id && c.Approval == hermes.ApprovalRequested {
				return &input[i].ToolCalls[j]
			}
		}
	}
	return nil
}

// storedRequest reads the call an approval request of response parent
// stands for from the store (or from local, when it is parent); a request
// of any other response is refused.
func (s *Server) storedRequest(param, id, parent string, local *hermes.StoredResponse) (*hermes.ToolCall, error) {
	respID, _, ok := splitItemID(id)
	if !ok || !strings.HasPrefix(id, "mcpr_") || checkID(param, id) != nil {
		return nil, hermes.InvalidParam(param, "approval request '%s' not found", cutForMessage(id))
	}
	if respID != parent {
		return nil, hermes.InvalidParam(param, "approval request '%s' is not one of the response this request continues", cutForMessage(id))
	}
	var msgs []hermes.Message
	var err error
	if local != nil && local.ID == parent {
		msgs, err = s.recordItem(local, id)
	} else {
		msgs, err = s.resolveItem(id)
	}
	if err == nil {
		for i := range msgs {
			for j, c := range msgs[i].ToolCalls {
				if c.Approval == hermes.ApprovalRequested {
					return &msgs[i].ToolCalls[j], nil
				}
			}
		}
	}
	return nil, hermes.InvalidParam(param, "approval request '%s' not found", id)
}
