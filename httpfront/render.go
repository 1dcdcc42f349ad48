package httpfront

import (
	"bytes"
	"strings"

	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
)

// itemForm says how a response's items are rendered.
type itemForm struct {
	// agentFunctionCalls shows the agent's own tool runs as function_call +
	// function_call_output (API_SERVER_AGENT_TOOL_ITEMS=function_call)
	// instead of hosted-tool items.
	agentFunctionCalls bool
	// sources adds web search results to web_search_call actions
	// (include: web_search_call.action.sources).
	sources bool
	// summary gives reasoning items their reasoning as a summary too
	// (reasoning.summary set: what Codex and the Vercel AI SDK display).
	summary bool
	// seal, when set (include: reasoning.encrypted_content), seals a
	// reasoning item's text into its encrypted_content.
	seal func(reasoning string) string
	// namespaces maps the name of each function tool the request grouped
	// in a namespace to that namespace: Codex runs a call only when the
	// function_call names both.
	namespaces map[string]string
}

// item is one Responses API item. wire gives the value to encode: exactly
// the fields its type has, nulls included, as the Open Responses schema
// requires them. (A typed value, not a MarshalJSON method: the encoder
// compiles those, where it would re-parse what MarshalJSON returned.)
type item struct {
	ID      string
	Type    string // message, function_call, function_call_output, mcp_call, web_search_call
	Status  string
	Role    string
	Content []contentPart
	CallID  string
	Name    string
	// Namespace of a function_call to a namespaced client tool.
	Namespace string
	// Arguments of a call; Output of a function_call_output or of a
	// finished mcp_call.
	Arguments, Output string
	ServerLabel       string // mcp_call
	// Error is a failed mcp_call's error ("" for none); Done says an
	// mcp_call has finished (until then output and error are null).
	Error  string
	Done   bool
	Action *searchAction // web_search_call
	// EncryptedContent is a compaction item's sealed summary, or a
	// reasoning item's sealed reasoning.
	EncryptedContent string
	// Summary is a reasoning item's summary parts.
	Summary []contentPart
	// ApprovalRequest is the approval request an mcp_call answers.
	ApprovalRequest string
	// Tools are an mcp_list_tools item's tools.
	Tools []hermes.MCPTool
}

type searchAction struct {
	Type    string         `json:"type"`
	Query   string         `json:"query"`
	Sources []searchSource `json:"sources,omitempty"`
}

type searchSource struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

func (it item) wire() any {
	switch it.Type {
	case "function_call":
		return struct {
			ID        string `json:"id"`
			Type      string `json:"type"`
			Status    string `json:"status"`
			CallID    string `json:"call_id"`
			Name      string `json:"name"`
			Namespace string `json:"namespace,omitempty"`
			Arguments string `json:"arguments"`
		}{it.ID, it.Type, it.Status, it.CallID, it.Name, it.Namespace, it.Arguments}
	case "function_call_output":
		return struct {
			ID     string `json:"id"`
			Type   string `json:"type"`
			Status string `json:"status"`
			CallID string `json:"call_id"`
			Output string `json:"output"`
		}{it.ID, it.Type, it.Status, it.CallID, it.Output}
	case "mcp_call":
		var output, errText *string
		if it.Done {
			if it.Error != "" {
				errText = &it.Error
			} else {
				output = &it.Output
			}
		}
		return struct {
			ID              string  `json:"id"`
			Type            string  `json:"type"`
			Status          string  `json:"status"`
			ServerLabel     string  `json:"server_label"`
			Name            string  `json:"name"`
			Arguments       string  `json:"arguments"`
			Output          *string `json:"output"`
			Error           *string `json:"error"`
			ApprovalRequest string  `json:"approval_request_id,omitempty"`
		}{it.ID, it.Type, it.Status, it.ServerLabel, it.Name, it.Arguments, output, errText, it.ApprovalRequest}
	case "mcp_approval_request":
		return struct {
			ID          string `json:"id"`
			Type        string `json:"type"`
			ServerLabel string `json:"server_label"`
			Name        string `json:"name"`
			Arguments   string `json:"arguments"`
		}{it.ID, it.Type, it.ServerLabel, it.Name, it.Arguments}
	case "mcp_list_tools":
		type listed struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			InputSchema json.RawMessage `json:"input_schema"`
			Annotations *struct{}       `json:"annotations"`
		}
		tools := make([]listed, len(it.Tools))
		for i, t := range it.Tools {
			schema := json.RawMessage(t.InputSchema)
			if !json.Valid(schema) {
				schema = json.RawMessage(`{}`)
			}
			tools[i] = listed{Name: t.Name, Description: t.Description, InputSchema: schema}
		}
		return struct {
			ID          string   `json:"id"`
			Type        string   `json:"type"`
			ServerLabel string   `json:"server_label"`
			Tools       []listed `json:"tools"`
			Error       *string  `json:"error"`
		}{it.ID, it.Type, it.ServerLabel, tools, nil}
	case "compaction":
		return struct {
			ID               string `json:"id"`
			Type             string `json:"type"`
			EncryptedContent string `json:"encrypted_content"`
		}{it.ID, it.Type, it.EncryptedContent}
	case "reasoning":
		return struct {
			ID               string `json:"id"`
			Type             string `json:"type"`
			Summary          []any  `json:"summary"`
			Content          []any  `json:"content"`
			EncryptedContent string `json:"encrypted_content,omitempty"`
		}{it.ID, it.Type, wireParts(it.Summary), wireParts(it.Content), it.EncryptedContent}
	case "web_search_call":
		return struct {
			ID     string        `json:"id"`
			Type   string        `json:"type"`
			Status string        `json:"status"`
			Action *searchAction `json:"action"`
		}{it.ID, it.Type, it.Status, it.Action}
	}
	return struct {
		ID      string `json:"id"`
		Type    string `json:"type"`
		Status  string `json:"status"`
		Role    string `json:"role"`
		Content []any  `json:"content"`
	}{it.ID, "message", it.Status, it.Role, wireParts(it.Content)}
}

// wireParts is parts as values to encode; never nil, so an empty list is
// [] and not null.
func wireParts(parts []contentPart) []any {
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p.wire()
	}
	return out
}

// wireItems is items as values to encode.
func wireItems(items []item) []any {
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = it.wire()
	}
	return out
}

// contentPart is one part of a message's content: input_text, output_text
// or input_image.
type contentPart struct {
	Type     string
	Text     string
	ImageURL string
	Detail   string // input_image's; "" shows auto
}

var emptyList = []any{}

func (p contentPart) wire() any {
	switch p.Type {
	case "output_text":
		return struct {
			Type        string `json:"type"`
			Text        string `json:"text"`
			Annotations []any  `json:"annotations"`
			Logprobs    []any  `json:"logprobs"`
		}{p.Type, p.Text, emptyList, emptyList}
	case "input_image":
		detail := p.Detail
		if detail == "" {
			detail = "auto"
		}
		return struct {
			Type     string `json:"type"`
			ImageURL string `json:"image_url"`
			Detail   string `json:"detail"`
		}{p.Type, p.ImageURL, detail}
	}
	return struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}{p.Type, p.Text}
}

func outputText(text string) contentPart { return contentPart{Type: "output_text", Text: text} }

func messageItem(id, status, text string) item {
	return item{ID: id, Type: "message", Status: status, Role: "assistant", Content: []contentPart{outputText(text)}}
}

// reasoningItem renders the reasoning that led to an assistant message:
// the text as reasoning_text content, as a summary too when the request
// asked for one, sealed when it asked for encrypted content.
func reasoningItem(id, text string, form itemForm) item {
	it := item{ID: id, Type: "reasoning", Content: []contentPart{{Type: "reasoning_text", Text: text}}}
	if form.summary {
		it.Summary = []contentPart{{Type: "summary_text", Text: text}}
	}
	if form.seal != nil {
		it.EncryptedContent = form.seal(text)
	}
	return it
}

func callItem(id, status string, c hermes.ToolCall, form itemForm) item {
	return item{ID: id, Type: "function_call", Status: status, CallID: c.ID, Name: c.Name, Namespace: form.namespaces[c.Name], Arguments: c.Arguments}
}

func callOutputItem(id string, m hermes.Message) item {
	return item{ID: id, Type: "function_call_output", Status: "completed", CallID: m.ToolCallID, Output: m.Content}
}

// agentItemPrefix is the id prefix of the hosted item for an agent call.
func agentItemPrefix(c hermes.ToolCall) string {
	if c.Name == "web_search" {
		return "ws_"
	}
	return "mcp_"
}

// agentItem renders a call the agent ran itself as a hosted-tool item:
// web_search_call for web_search, mcp_call for every other tool. result is
// the tool's result, nil while it runs.
func agentItem(id string, c hermes.ToolCall, result *hermes.Message, form itemForm) item {
	status := "in_progress"
	var errText string
	if result != nil {
		status = "completed"
		if errText = toolError(result.Content); errText != "" {
			status = "failed"
		}
	}
	if c.Name == "web_search" {
		var args struct {
			Query string `json:"query"`
		}
		_ = json.Unmarshal([]byte(c.Arguments), &args)
		action := &searchAction{Type: "search", Query: args.Query}
		if form.sources && result != nil {
			action.Sources = searchSources(result.Content)
		}
		return item{ID: id, Type: "web_search_call", Status: status, Action: action}
	}
	label := c.Server
	if label == "" {
		label = hermes.AgentServer
	}
	name := c.Name
	if c.Tool != "" {
		name = c.Tool // the server's own name, as OpenAI's mcp_call names it
	}
	it := item{ID: id, Type: "mcp_call", Status: status, ServerLabel: label, Name: name, Arguments: c.Arguments,
		Error: errText, Done: result != nil, ApprovalRequest: c.ApprovalRequest}
	if result != nil {
		it.Output = result.Content
	}
	return it
}

// toolError returns the message of a failed tool's result ({"error": "…"},
// as tooling.ErrorResult writes it), "" when the tool succeeded.
func toolError(out string) string {
	if !strings.HasPrefix(out, `{"error"`) {
		return ""
	}
	var e map[string]json.RawMessage
	if json.Unmarshal([]byte(out), &e) != nil || len(e) != 1 {
		return ""
	}
	var msg string
	if json.Unmarshal(e["error"], &msg) != nil {
		return ""
	}
	return msg
}

// searchSources reads the URLs out of a web_search result.
func searchSources(out string) []searchSource {
	var res struct {
		Results []struct {
			URL string `json:"url"`
		} `json:"results"`
	}
	if json.Unmarshal([]byte(out), &res) != nil {
		return nil
	}
	sources := make([]searchSource, 0, len(res.Results))
	for _, r := range res.Results {
		if r.URL != "" {
			sources = append(sources, searchSource{Type: "url", URL: r.URL})
		}
	}
	return sources
}

// results maps each call id to the tool message answering it in msgs.
func results(msgs []hermes.Message) map[string]*hermes.Message {
	out := make(map[string]*hermes.Message)
	for i := range msgs {
		if msgs[i].Role == hermes.RoleTool {
			out[msgs[i].ToolCallID] = &msgs[i]
		}
	}
	return out
}

// itemList accumulates items and, per item, the messages it stands for (to
// resolve item_reference).
type itemList struct {
	items []item
	msgs  [][]hermes.Message
}

func (l *itemList) add(it item, msgs ...hermes.Message) {
	l.items = append(l.items, it)
	l.msgs = append(l.msgs, msgs)
}

// call adds the item of one assistant tool call: a hosted item merged with
// its result when the agent ran it (in the hosted form), else a
// function_call. id makes the item's id from its prefix.
func (l *itemList) call(c hermes.ToolCall, result *hermes.Message, agent bool, form itemForm, id func(prefix string) string) {
	callMsg := hermes.Message{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{c}}
	switch c.Approval {
	case hermes.ApprovalRequested:
		msgs := []hermes.Message{callMsg}
		if result != nil {
			msgs = append(msgs, *result)
		}
		l.add(approvalItem(id("mcpr_"), c), msgs...)
		return
	case hermes.ApprovalDeclined:
		return // nothing ran: the client knows it declined
	}
	if agent && !form.agentFunctionCalls {
		if result == nil {
			l.add(agentItem(id(agentItemPrefix(c)), c, nil, form), callMsg)
			return
		}
		l.add(agentItem(id(agentItemPrefix(c)), c, result, form), callMsg, *result)
		return
	}
	l.add(callItem(id("fc_"), "completed", c, form), callMsg)
}

// approvalItem renders a call waiting for the client's approval.
func approvalItem(id string, c hermes.ToolCall) item {
	name := c.Name
	if c.Tool != "" {
		name = c.Tool
	}
	return item{ID: id, Type: "mcp_approval_request", ServerLabel: c.Server, Name: name, Arguments: c.Arguments}
}

// listItem renders the tool list of a request's MCP server.
func listItem(id string, l hermes.MCPList) item {
	return item{ID: id, Type: "mcp_list_tools", ServerLabel: l.Server, Tools: l.Tools}
}

// outputItems renders a turn's output as items, in the order a stream
// emits them: the tool lists of the request's MCP servers, text, the
// agent's calls (with their results, or followed by function_call_output
// items in the function_call form), then calls handed back to the client
// and calls waiting for its approval. A call answered within the output is
// one the agent ran.
func outputItems(respID string, lists []hermes.MCPList, out []hermes.Message, form itemForm) ([]item, [][]hermes.Message) {
	var l itemList
	id := func(prefix string) string { return itemID(prefix, respID, itoa(len(l.items))) }
	for _, list := range lists {
		l.add(listItem(id("mcpl_"), list))
	}
	answers := results(out)
	// Results that only stand in for calls awaiting or declined approval:
	// the approval items say what became of those calls.
	placeholder := make(map[string]bool)
	for _, m := range out {
		for _, c := range m.ToolCalls {
			if c.Approval == hermes.ApprovalRequested || c.Approval == hermes.ApprovalDeclined {
				placeholder[c.ID] = true
			}
		}
	}
	var handBack, waiting []hermes.ToolCall
	flush := func() {
		for _, c := range handBack {
			l.call(c, nil, false, form, id)
		}
		for _, c := range waiting {
			l.call(c, answers[c.ID], true, form, id)
		}
		handBack, waiting = nil, nil
	}
	for _, m := range out {
		switch m.Role {
		case hermes.RoleAssistant:
			flush()
			if m.Reasoning != "" {
				l.add(reasoningItem(id("rs_"), m.Reasoning, form), hermes.Message{Role: hermes.RoleAssistant, Reasoning: m.Reasoning})
			}
			if m.Content != "" {
				l.add(messageItem(id("msg_"), "completed", m.Content), hermes.Message{Role: hermes.RoleAssistant, Content: m.Content})
			}
			for _, c := range m.ToolCalls {
				r := answers[c.ID]
				switch {
				case c.Approval == hermes.ApprovalRequested:
					waiting = append(waiting, c)
				case r == nil:
					handBack = append(handBack, c)
				default:
					l.call(c, r, true, form, id)
				}
			}
		case hermes.RoleTool:
			if form.agentFunctionCalls && !placeholder[m.ToolCallID] {
				l.add(callOutputItem(id("fco_"), m), m)
			}
		case hermes.RoleCompaction:
			flush()
			l.add(compactionItem(id("cmp_"), m), m)
		}
	}
	flush()
	return l.items, l.msgs
}

// recordOutput is what a record's output shows: the compaction item its
// turn made, if any, then its output.
func recordOutput(rec *hermes.StoredResponse) []hermes.Message {
	if rec.Compaction == nil {
		return rec.Output
	}
	return append([]hermes.Message{*rec.Compaction}, rec.Output...)
}

// compactionItem renders a compaction item: opaque to clients, its summary
// sealed.
func compactionItem(id string, m hermes.Message) item {
	return item{ID: id, Type: "compaction", EncryptedContent: m.Encrypted}
}

// inputItems renders messages as input items: a turn's input, or a whole
// conversation. Calls the agent ran (ToolCall.Server set) become hosted
// items carrying their result; a client's calls and outputs stay
// function_call and function_call_output.
func inputItems(respID string, in []hermes.Message, form itemForm) ([]item, [][]hermes.Message) {
	var l itemList
	id := func(prefix string) string { return itemID(prefix, respID, "in"+itoa(len(l.items))) }
	answers := results(in)
	merged := make(map[string]bool) // tool results shown inside their hosted item
	for _, m := range in {
		switch m.Role {
		case hermes.RoleCompaction:
			l.add(compactionItem(id("cmp_"), m), m)
		case hermes.RoleUser, hermes.RoleSystem:
			parts := []contentPart{{Type: "input_text", Text: m.Text()}}
			for _, p := range m.Parts {
				if p.Type == "image_url" {
					parts = append(parts, contentPart{Type: "input_image", ImageURL: p.ImageURL, Detail: p.Detail})
				}
			}
			l.add(item{ID: id("msg_"), Type: "message", Status: "completed", Role: string(m.Role), Content: parts}, m)
		case hermes.RoleAssistant:
			if m.Reasoning != "" {
				l.add(reasoningItem(id("rs_"), m.Reasoning, form), hermes.Message{Role: hermes.RoleAssistant, Reasoning: m.Reasoning})
			}
			if m.Content != "" {
				l.add(item{ID: id("msg_"), Type: "message", Status: "completed", Role: "assistant",
					Content: []contentPart{outputText(m.Content)}}, hermes.Message{Role: hermes.RoleAssistant, Content: m.Content})
			}
			for _, c := range m.ToolCalls {
				agent := c.Server != ""
				r := answers[c.ID]
				if agent && !form.agentFunctionCalls && r != nil {
					merged[c.ID] = true
				}
				l.call(c, r, agent, form, id)
			}
		case hermes.RoleTool:
			if !merged[m.ToolCallID] {
				l.add(callOutputItem(id("fco_"), m), m)
			}
		}
	}
	return l.items, l.msgs
}

type responseObject struct {
	ID                string         `json:"id"`
	Object            string         `json:"object"`
	CreatedAt         int64          `json:"created_at"`
	Status            hermes.Status  `json:"status"`
	Background        bool           `json:"background"`
	CompletedAt       *int64         `json:"completed_at"`
	Error             *responseError `json:"error"`
	IncompleteDetails *incomplete    `json:"incomplete_details"`
	Instructions      *string        `json:"instructions"`
	MaxOutputTokens   *int           `json:"max_output_tokens"`
	MaxToolCalls      *int           `json:"max_tool_calls"`
	Model             string         `json:"model"`
	Output            []any          `json:"output"`
	responseParams
	Usage        *responseUsage    `json:"usage"`
	Metadata     map[string]string `json:"metadata"`
	Conversation *struct {
		ID string `json:"id"`
	} `json:"conversation"`

	// What the pointers above point to when set: the object is one
	// allocation, not one for each of them.
	completedAt int64
	previous    string
	err         responseError
	incomplete  incomplete
	usage       responseUsage
	conv        struct {
		ID string `json:"id"`
	}
}

// responseParams are the fields of a response object that echo its
// request: a stream encodes them once for all its response events.
type responseParams struct {
	ParallelToolCalls  bool             `json:"parallel_tool_calls"`
	PreviousResponseID *string          `json:"previous_response_id"`
	Reasoning          *reasoningConfig `json:"reasoning"`
	Store              bool             `json:"store"`
	Temperature        float64          `json:"temperature"`
	TopP               float64          `json:"top_p"`
	PresencePenalty    float64          `json:"presence_penalty"`
	FrequencyPenalty   float64          `json:"frequency_penalty"`
	TopLogprobs        int              `json:"top_logprobs"`
	ServiceTier        string           `json:"service_tier"`
	SafetyIdentifier   *string          `json:"safety_identifier"`
	PromptCacheKey     *string          `json:"prompt_cache_key"`
	ToolChoice         json.RawMessage  `json:"tool_choice"`
	Tools              json.RawMessage  `json:"tools"`
	Truncation         string           `json:"truncation"`
	Text               json.RawMessage  `json:"text"`
	// canonical says ToolChoice and Tools are as the encoder writes
	// them (responseWire.canonical).
	canonical bool
}

// reasoningConfig is the reasoning the request asked for, echoed.
type reasoningConfig struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary"`
}

type responseError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type incomplete struct {
	Reason string `json:"reason"`
}

type responseUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

var textFormat = json.RawMessage(`{"format":{"type":"text"}}`)

// recordForm is the item form of a record: the server's setting, and the
// include list its request sent.
func (s *Server) recordForm(w *responseWire) itemForm {
	form := itemForm{agentFunctionCalls: s.opts.AgentToolItems == "function_call"}
	for _, inc := range w.Include {
		switch inc {
		case "web_search_call.action.sources":
			form.sources = true
		case "reasoning.encrypted_content":
			form.seal = s.rt.SealReasoning
		}
	}
	if r := w.Reasoning; r != nil && r.Summary != nil && *r.Summary != "" {
		form.summary = true
	}
	if bytes.Contains(w.Tools, []byte(`"namespace"`)) {
		var tools []responseTool
		_ = json.Unmarshal(w.Tools, &tools)
		for _, t := range tools {
			if t.Type != "namespace" {
				continue
			}
			for _, inner := range t.Tools {
				if form.namespaces == nil {
					form.namespaces = make(map[string]string)
				}
				form.namespaces[inner.Name] = t.Name
			}
		}
	}
	return form
}

// responseObj builds the wire response object of a record.
func (s *Server) responseObj(rec *hermes.StoredResponse) *responseObject {
	var w responseWire
	_ = json.Unmarshal(rec.Wire, &w)
	o := s.responseObjOf(rec, &w)
	o.Output = wireItems(s.responseItems(rec, s.recordForm(&w)))
	return o
}

// responseItems are the output items of a record's response object.
func (s *Server) responseItems(rec *hermes.StoredResponse, form itemForm) []item {
	output, _ := outputItems(rec.ID, rec.MCPLists, recordOutput(rec), form)
	if n := len(output); n > 0 && output[n-1].Type == "message" && rec.Status != hermes.StatusCompleted &&
		rec.Status != hermes.StatusQueued && rec.Status != hermes.StatusInProgress {
		output[n-1].Status = "incomplete" // the answer was cut short
	}
	return output
}

// responseObjOf builds the wire response object of a record whose Wire is
// already decoded as w, all but its output: a stream decodes w once for
// its opening and closing events and encodes the items itself.
func (s *Server) responseObjOf(rec *hermes.StoredResponse, w *responseWire) *responseObject {
	o := new(responseObject)
	fillResponseObj(o, rec, w)
	if o.Metadata == nil {
		o.Metadata = map[string]string{} // {}, not null
	}
	return o
}

// fillResponseObj is responseObjOf into o, its metadata left nil when
// there is none (appendMetadata writes {} for it).
func fillResponseObj(o *responseObject, rec *hermes.StoredResponse, w *responseWire) {
	*o = responseObject{
		ID: rec.ID, Object: "response", CreatedAt: rec.Created.Unix(), Status: rec.Status,
		Background: w.Background, Instructions: w.Instructions, MaxOutputTokens: w.MaxOutputTokens,
		MaxToolCalls: w.MaxToolCalls, Model: rec.Model, Metadata: w.Metadata,
		responseParams: responseParams{Reasoning: w.Reasoning, ParallelToolCalls: true, Store: w.Store, Temperature: 1, TopP: 1,
			ServiceTier: "default", SafetyIdentifier: w.SafetyIdentifier, PromptCacheKey: w.PromptCacheKey,
			ToolChoice: w.ToolChoice, Tools: w.Tools, Truncation: "disabled", Text: textFormat, canonical: w.canonical},
	}
	if o.Status == "" {
		o.Status = hermes.StatusCompleted
	}
	if w.ParallelToolCalls != nil {
		o.ParallelToolCalls = *w.ParallelToolCalls
	}
	if w.Temperature != nil {
		o.Temperature = *w.Temperature
	}
	if w.TopP != nil {
		o.TopP = *w.TopP
	}
	if w.PresencePenalty != nil {
		o.PresencePenalty = *w.PresencePenalty
	}
	if w.FrequencyPenalty != nil {
		o.FrequencyPenalty = *w.FrequencyPenalty
	}
	if w.TopLogprobs != nil {
		o.TopLogprobs = *w.TopLogprobs
	}
	if w.Truncation != "" {
		o.Truncation = w.Truncation
	}
	if len(o.ToolChoice) == 0 {
		o.ToolChoice = json.RawMessage(`"auto"`)
	}
	if len(o.Tools) == 0 {
		o.Tools = json.RawMessage(`[]`)
	}
	if rec.Previous != "" {
		o.previous = rec.Previous
		o.PreviousResponseID = &o.previous
	}
	if rec.Conversation != "" {
		o.conv.ID = rec.Conversation
		o.Conversation = &o.conv
	}
	if !rec.Completed.IsZero() && rec.Status != hermes.StatusQueued && rec.Status != hermes.StatusInProgress {
		o.completedAt = rec.Completed.Unix()
		o.CompletedAt = &o.completedAt
	}
	switch rec.Status {
	case hermes.StatusFailed:
		o.err = responseError{Code: rec.ErrCode, Message: rec.ErrMessage}
		o.Error = &o.err
	case hermes.StatusIncomplete:
		o.incomplete.Reason = "interrupted"
		if rec.Finish == hermes.FinishLength && rec.ErrCode == "" {
			o.incomplete.Reason = "max_output_tokens"
		}
		o.IncompleteDetails = &o.incomplete
	}
	if rec.Status != hermes.StatusQueued && rec.Status != hermes.StatusInProgress {
		u := &o.usage
		u.InputTokens, u.OutputTokens, u.TotalTokens = rec.Usage.PromptTokens, rec.Usage.CompletionTokens, rec.Usage.Total()
		u.InputTokensDetails.CachedTokens = rec.Usage.CachedTokens
		u.OutputTokensDetails.ReasoningTokens = rec.Usage.ReasoningTokens
		o.Usage = u
	}
}

func (s *Server) renderResponse(rec *hermes.StoredResponse) []byte {
	b, _ := json.Marshal(s.responseObj(rec))
	return b
}
