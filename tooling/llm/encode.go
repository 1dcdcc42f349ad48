package llm

import (
	"strconv"
	"sync"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/internal/jsonenc"
)

// The upstream chat request is appended by hand into a pooled buffer: it
// is on every turn's path to the first token, and the generic encoder
// spent most of its time walking the wire structs and re-validating the
// tools array (about 9 KB of schemas) it was handed as raw JSON. The two
// parts that do not change between calls, the system message and the
// tools array, are cached as their JSON and copied in as they are.

// encodedSystem is the system message of the last request, as JSON.
type encodedSystem struct {
	prompt string
	raw    []byte
}

// reqBufs recycles request buffers. Buffers that grew past maxPooledBody
// are left to the collector.
var reqBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

const maxPooledBody = 1 << 20

// encode appends the chat completions request body for req to b.
func (u *Upstream) encode(b []byte, req Request) ([]byte, error) {
	tools, err := u.encodeTools(req.Tools)
	if err != nil {
		return nil, err
	}
	model := req.Model
	if model == "" {
		model = u.opts.Model
	}
	b = append(b, `{"model":`...)
	b = jsonenc.AppendString(b, model)
	b = append(b, `,"messages":[`...)
	if req.System != "" {
		b = append(b, u.systemJSON(req.System)...)
	}
	for i := range req.Messages {
		if i > 0 || req.System != "" {
			b = append(b, ',')
		}
		b = u.appendMessage(b, &req.Messages[i])
	}
	b = append(b, ']')
	if len(tools) > 0 {
		b = append(b, `,"tools":`...)
		b = append(b, tools...)
		switch req.ToolChoice {
		case "":
		case "auto", "none", "required":
			b = append(b, `,"tool_choice":`...)
			b = jsonenc.AppendString(b, req.ToolChoice)
		default:
			b = append(b, `,"tool_choice":{"type":"function","function":{"name":`...)
			b = jsonenc.AppendString(b, req.ToolChoice)
			b = append(b, `}}`...)
		}
	}
	if req.MaxTokens > 0 {
		b = append(b, `,"max_tokens":`...)
		b = strconv.AppendInt(b, int64(req.MaxTokens), 10)
	}
	if u.opts.Reasoning && req.Effort != "" {
		b = append(b, `,"reasoning_effort":`...)
		b = jsonenc.AppendString(b, req.Effort)
	}
	return append(b, `,"stream":true,"stream_options":{"include_usage":true}}`...), nil
}

// systemJSON returns the system message for prompt as JSON, reusing the
// last one's when the prompt is the same (the agent's prompt builder hands
// out the same string until memory, skills or the caller's part change).
func (u *Upstream) systemJSON(prompt string) []byte {
	if c := u.system.Load(); c != nil && c.prompt == prompt {
		return c.raw
	}
	raw := appendTextMessage(nil, string(hermes.RoleSystem), prompt)
	u.system.Store(&encodedSystem{prompt: prompt, raw: raw})
	return raw
}

func appendTextMessage(b []byte, role, content string) []byte {
	b = append(b, `{"role":`...)
	b = jsonenc.AppendString(b, role)
	b = append(b, `,"content":`...)
	b = jsonenc.AppendString(b, content)
	return append(b, '}')
}

// appendMessage appends one transcript message in the chat completions
// shape: tool results, assistant tool calls (content null without text),
// user messages with images as content parts, compaction items as an
// assistant turn, anything else as its text.
func (u *Upstream) appendMessage(b []byte, m *hermes.Message) []byte {
	reasoning := ""
	if u.opts.SendReasoning && m.Role == hermes.RoleAssistant {
		reasoning = m.Reasoning
	}
	switch {
	case m.Role == hermes.RoleTool:
		b = append(b, `{"role":"tool","content":`...)
		b = jsonenc.AppendString(b, m.Text())
		if m.ToolCallID != "" {
			b = append(b, `,"tool_call_id":`...)
			b = jsonenc.AppendString(b, m.ToolCallID)
		}
		return append(b, '}')
	case m.Role == hermes.RoleAssistant && len(m.ToolCalls) > 0:
		b = append(b, `{"role":"assistant","content":`...)
		if text := m.Text(); text != "" {
			b = jsonenc.AppendString(b, text)
		} else {
			b = append(b, "null"...)
		}
		b = appendReasoning(b, reasoning)
		b = append(b, `,"tool_calls":[`...)
		for i, c := range m.ToolCalls {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = jsonenc.AppendString(b, c.ID)
			b = append(b, `,"type":"function","function":{"name":`...)
			b = jsonenc.AppendString(b, c.Name)
			b = append(b, `,"arguments":`...)
			b = jsonenc.AppendString(b, c.Arguments)
			b = append(b, `}}`...)
		}
		return append(b, `]}`...)
	case m.Role == hermes.RoleUser && hasImage(m.Parts):
		b = append(b, `{"role":"user","content":`...)
		return append(appendParts(b, m), '}')
	case m.Role == hermes.RoleCompaction:
		// An assistant turn keeps the user/assistant alternation that some
		// chat templates insist on.
		return appendTextMessage(b, string(hermes.RoleAssistant), CompactionText(m.Content))
	}
	b = append(b, `{"role":`...)
	b = jsonenc.AppendString(b, string(m.Role))
	b = append(b, `,"content":`...)
	b = jsonenc.AppendString(b, m.Text())
	return append(appendReasoning(b, reasoning), '}')
}

func appendReasoning(b []byte, reasoning string) []byte {
	if reasoning == "" {
		return b
	}
	b = append(b, `,"reasoning_content":`...)
	return jsonenc.AppendString(b, reasoning)
}

// appendParts appends a user message's content parts: its text and image
// parts in order, its Content first when no part carries text.
func appendParts(b []byte, m *hermes.Message) []byte {
	b = append(b, '[')
	hasText := false
	for _, p := range m.Parts {
		if p.Type == "text" {
			hasText = true
			break
		}
	}
	n := 0 // parts appended
	if !hasText && m.Content != "" {
		b = appendTextPart(b, m.Content)
		n++
	}
	for _, p := range m.Parts {
		if p.Type != "text" && p.Type != "image_url" {
			continue
		}
		if n++; n > 1 {
			b = append(b, ',')
		}
		if p.Type == "text" {
			b = appendTextPart(b, p.Text)
			continue
		}
		b = append(b, `{"type":"image_url","image_url":{"url":`...)
		b = jsonenc.AppendString(b, p.ImageURL)
		if p.Detail != "" {
			b = append(b, `,"detail":`...)
			b = jsonenc.AppendString(b, p.Detail)
		}
		b = append(b, `}}`...)
	}
	return append(b, ']')
}

// appendTextPart appends a text part; an empty one has no text field, as
// the generic encoder's omitempty wrote it.
func appendTextPart(b []byte, text string) []byte {
	if text == "" {
		return append(b, `{"type":"text"}`...)
	}
	b = append(b, `{"type":"text","text":`...)
	b = jsonenc.AppendString(b, text)
	return append(b, '}')
}
