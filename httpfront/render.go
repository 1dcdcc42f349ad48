package httpfront

import (
	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
)

// item is one Responses API item: a message, a function call or its output.
type item struct {
	ID        string        `json:"id"`
	Type      string        `json:"type"`
	Status    string        `json:"status,omitempty"`
	Role      string        `json:"role,omitempty"`
	Content   []contentPart `json:"content,omitempty"`
	CallID    string        `json:"call_id,omitempty"`
	Name      string        `json:"name,omitempty"`
	Arguments *string       `json:"arguments,omitempty"`
	Output    *string       `json:"output,omitempty"`
}

type contentPart struct {
	Type        string  `json:"type"`
	Text        string  `json:"text"`
	Annotations *[]any  `json:"annotations,omitempty"`
	Logprobs    *[]any  `json:"logprobs,omitempty"`
	ImageURL    *string `json:"image_url,omitempty"`
}

var emptyList = []any{}

func outputText(text string) contentPart {
	return contentPart{Type: "output_text", Text: text, Annotations: &emptyList, Logprobs: &emptyList}
}

func messageItem(id, status, text string) item {
	return item{ID: id, Type: "message", Status: status, Role: "assistant", Content: []contentPart{outputText(text)}}
}

func callItem(id, status string, c hermes.ToolCall) item {
	args := c.Arguments
	return item{ID: id, Type: "function_call", Status: status, CallID: c.ID, Name: c.Name, Arguments: &args}
}

func callOutputItem(id string, m hermes.Message) item {
	out := m.Content
	return item{ID: id, Type: "function_call_output", Status: "completed", CallID: m.ToolCallID, Output: &out}
}

// outputItems renders a turn's output messages as items, in the order a
// stream emits them: text, the agent's calls, their outputs, then calls
// handed back to the client. It also returns, per item, the message it
// stands for (to resolve item_reference).
func outputItems(respID string, out []hermes.Message) ([]item, []hermes.Message) {
	var items []item
	var msgs []hermes.Message
	add := func(prefix string, make func(id string) item, m hermes.Message) {
		id := itemID(prefix, respID, itoa(len(items)))
		items = append(items, make(id))
		msgs = append(msgs, m)
	}
	answered := make(map[string]bool)
	for _, m := range out {
		if m.Role == hermes.RoleTool {
			answered[m.ToolCallID] = true
		}
	}
	var handBack []hermes.ToolCall
	flush := func() {
		for _, c := range handBack {
			add("fc_", func(id string) item { return callItem(id, "completed", c) },
				hermes.Message{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{c}})
		}
		handBack = nil
	}
	for _, m := range out {
		switch m.Role {
		case hermes.RoleAssistant:
			flush()
			if m.Content != "" {
				add("msg_", func(id string) item { return messageItem(id, "completed", m.Content) },
					hermes.Message{Role: hermes.RoleAssistant, Content: m.Content})
			}
			for _, c := range m.ToolCalls {
				if !answered[c.ID] {
					handBack = append(handBack, c)
					continue
				}
				add("fc_", func(id string) item { return callItem(id, "completed", c) },
					hermes.Message{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{c}})
			}
		case hermes.RoleTool:
			add("fco_", func(id string) item { return callOutputItem(id, m) }, m)
		}
	}
	flush()
	return items, msgs
}

// inputItems renders a turn's input messages as items.
func inputItems(respID string, in []hermes.Message) ([]item, []hermes.Message) {
	var items []item
	var msgs []hermes.Message
	for _, m := range in {
		k := "in" + itoa(len(items))
		switch m.Role {
		case hermes.RoleUser, hermes.RoleSystem:
			parts := []contentPart{{Type: "input_text", Text: m.Text()}}
			for _, p := range m.Parts {
				if p.Type == "image_url" {
					u := p.ImageURL
					parts = append(parts, contentPart{Type: "input_image", ImageURL: &u})
				}
			}
			items = append(items, item{ID: itemID("msg_", respID, k), Type: "message", Status: "completed", Role: string(m.Role), Content: parts})
			msgs = append(msgs, m)
		case hermes.RoleAssistant:
			if m.Content != "" {
				items = append(items, item{ID: itemID("msg_", respID, k), Type: "message", Status: "completed", Role: "assistant",
					Content: []contentPart{outputText(m.Content)}})
				msgs = append(msgs, hermes.Message{Role: hermes.RoleAssistant, Content: m.Content})
			}
			for _, c := range m.ToolCalls {
				items = append(items, callItem(itemID("fc_", respID, "in"+itoa(len(items))), "completed", c))
				msgs = append(msgs, hermes.Message{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{c}})
			}
		case hermes.RoleTool:
			items = append(items, callOutputItem(itemID("fco_", respID, k), m))
			msgs = append(msgs, m)
		}
	}
	return items, msgs
}

type responseObject struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             hermes.Status     `json:"status"`
	Background         bool              `json:"background"`
	CompletedAt        *int64            `json:"completed_at"`
	Error              *responseError    `json:"error"`
	IncompleteDetails  *incomplete       `json:"incomplete_details"`
	Instructions       *string           `json:"instructions"`
	MaxOutputTokens    *int              `json:"max_output_tokens"`
	Model              string            `json:"model"`
	Output             []item            `json:"output"`
	ParallelToolCalls  bool              `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Store              bool              `json:"store"`
	Temperature        float64           `json:"temperature"`
	TopP               float64           `json:"top_p"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	Tools              json.RawMessage   `json:"tools"`
	Truncation         string            `json:"truncation"`
	Text               json.RawMessage   `json:"text"`
	Usage              *responseUsage    `json:"usage"`
	Metadata           map[string]string `json:"metadata"`
	Conversation       *struct {
		ID string `json:"id"`
	} `json:"conversation"`
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

// responseObj builds the wire response object of a record.
func responseObj(rec *hermes.StoredResponse) *responseObject {
	var w responseWire
	_ = json.Unmarshal(rec.Wire, &w)
	o := &responseObject{
		ID: rec.ID, Object: "response", CreatedAt: rec.Created.Unix(), Status: rec.Status,
		Background: w.Background, Instructions: w.Instructions, MaxOutputTokens: w.MaxOutputTokens,
		Model: rec.Model, ParallelToolCalls: true, Store: w.Store, Temperature: 1, TopP: 1,
		ToolChoice: w.ToolChoice, Tools: w.Tools, Truncation: "disabled", Text: textFormat, Metadata: w.Metadata,
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
	if len(o.ToolChoice) == 0 {
		o.ToolChoice = json.RawMessage(`"auto"`)
	}
	if len(o.Tools) == 0 {
		o.Tools = json.RawMessage(`[]`)
	}
	if o.Metadata == nil {
		o.Metadata = map[string]string{}
	}
	if rec.Previous != "" {
		p := rec.Previous
		o.PreviousResponseID = &p
	}
	if rec.Conversation != "" {
		o.Conversation = &struct {
			ID string `json:"id"`
		}{rec.Conversation}
	}
	if !rec.Completed.IsZero() && rec.Status != hermes.StatusQueued && rec.Status != hermes.StatusInProgress {
		t := rec.Completed.Unix()
		o.CompletedAt = &t
	}
	switch rec.Status {
	case hermes.StatusFailed:
		o.Error = &responseError{Code: rec.ErrCode, Message: rec.ErrMessage}
	case hermes.StatusIncomplete:
		reason := "interrupted"
		if rec.Finish == hermes.FinishLength && rec.ErrCode == "" {
			reason = "max_output_tokens"
		}
		o.IncompleteDetails = &incomplete{Reason: reason}
	}
	o.Output, _ = outputItems(rec.ID, rec.Output)
	if o.Output == nil {
		o.Output = []item{}
	}
	if n := len(o.Output); n > 0 && o.Output[n-1].Type == "message" && rec.Status != hermes.StatusCompleted &&
		rec.Status != hermes.StatusQueued && rec.Status != hermes.StatusInProgress {
		o.Output[n-1].Status = "incomplete" // the answer was cut short
	}
	if rec.Status != hermes.StatusQueued && rec.Status != hermes.StatusInProgress {
		u := &responseUsage{InputTokens: rec.Usage.PromptTokens, OutputTokens: rec.Usage.CompletionTokens, TotalTokens: rec.Usage.Total()}
		u.InputTokensDetails.CachedTokens = rec.Usage.CachedTokens
		u.OutputTokensDetails.ReasoningTokens = rec.Usage.ReasoningTokens
		o.Usage = u
	}
	return o
}

func renderResponse(rec *hermes.StoredResponse) []byte {
	b, _ := json.Marshal(responseObj(rec))
	return b
}
