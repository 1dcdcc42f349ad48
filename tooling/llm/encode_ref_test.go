package llm

import (
	"bytes"

	gojson "github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
)

// The generic encoder hermesd used before the hand encoding, kept as the
// reference the hand encoding must agree with (and the benchmark's
// "before"). Request wire types: only what hermesd sends.
type wireRequest struct {
	Model         string            `json:"model"`
	Messages      []wireMessage     `json:"messages"`
	Tools         gojson.RawMessage `json:"tools,omitempty"`
	ToolChoice    any               `json:"tool_choice,omitempty"`
	MaxTokens     int               `json:"max_tokens,omitempty"`
	Effort        string            `json:"reasoning_effort,omitempty"`
	Stream        bool              `json:"stream"`
	StreamOptions *streamOptions    `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type wireMessage struct {
	Role string `json:"role"`
	// Content is a string, a []wirePart, or nil (null) for an assistant
	// message that only calls tools.
	Content    any            `json:"content"`
	Reasoning  string         `json:"reasoning_content,omitempty"`
	ToolCalls  []wireToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type wirePart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *imageURL `json:"image_url,omitempty"`
}

type imageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

type wireToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function wireFunction `json:"function"`
}

type namedChoice struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// referenceEncode is the generic encoding of req into buf.
func referenceEncode(u *Upstream, req Request, buf *bytes.Buffer) ([]byte, error) {
	w := wireRequest{
		Model:         req.Model,
		Messages:      make([]wireMessage, 0, len(req.Messages)+1),
		MaxTokens:     max(req.MaxTokens, 0),
		Stream:        true,
		StreamOptions: &streamOptions{IncludeUsage: true},
	}
	if u.opts.Reasoning {
		w.Effort = req.Effort
	}
	if w.Model == "" {
		w.Model = u.opts.Model
	}
	if req.System != "" {
		w.Messages = append(w.Messages, encodeMessage(hermes.Message{Role: hermes.RoleSystem, Content: req.System}))
	}
	for _, m := range req.Messages {
		wm := encodeMessage(m)
		if u.opts.SendReasoning && m.Role == hermes.RoleAssistant {
			wm.Reasoning = m.Reasoning
		}
		w.Messages = append(w.Messages, wm)
	}
	tools, err := u.encodeTools(req.Tools)
	if err != nil {
		return nil, err
	}
	w.Tools = tools
	if len(w.Tools) > 0 {
		switch req.ToolChoice {
		case "":
		case "auto", "none", "required":
			w.ToolChoice = req.ToolChoice
		default:
			var c namedChoice
			c.Type = "function"
			c.Function.Name = req.ToolChoice
			w.ToolChoice = c
		}
	}
	if err := gojson.NewEncoder(buf).Encode(w); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeMessage(m hermes.Message) wireMessage {
	w := wireMessage{Role: string(m.Role)}
	switch {
	case m.Role == hermes.RoleTool:
		w.ToolCallID = m.ToolCallID
		w.Content = m.Text()
	case m.Role == hermes.RoleAssistant && len(m.ToolCalls) > 0:
		for _, c := range m.ToolCalls {
			w.ToolCalls = append(w.ToolCalls, wireToolCall{ID: c.ID, Type: "function",
				Function: wireFunction{Name: c.Name, Arguments: c.Arguments}})
		}
		if text := m.Text(); text != "" {
			w.Content = text
		}
	case m.Role == hermes.RoleUser && hasImage(m.Parts):
		w.Content = encodeParts(m)
	case m.Role == hermes.RoleCompaction:
		// An assistant turn keeps the user/assistant alternation that some
		// chat templates insist on.
		w.Role = string(hermes.RoleAssistant)
		w.Content = CompactionText(m.Content)
	default:
		w.Content = m.Text()
	}
	return w
}

func encodeParts(m hermes.Message) []wirePart {
	parts := make([]wirePart, 0, len(m.Parts)+1)
	hasText := false
	for _, p := range m.Parts {
		switch p.Type {
		case "text":
			hasText = true
			parts = append(parts, wirePart{Type: "text", Text: p.Text})
		case "image_url":
			parts = append(parts, wirePart{Type: "image_url", ImageURL: &imageURL{URL: p.ImageURL, Detail: p.Detail}})
		}
	}
	if !hasText && m.Content != "" {
		parts = append([]wirePart{{Type: "text", Text: m.Content}}, parts...)
	}
	return parts
}
