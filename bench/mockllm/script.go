package mockllm

import (
	"encoding/json"
	"strings"
	"time"

	hermes "github.com/hermesd/hermesd"
)

// Script is what one call answers: how long to wait, how many tokens, and
// whether to ask for a tool instead of answering.
type Script struct {
	TTFT       time.Duration // before the first chunk
	TokenDelay time.Duration // between content tokens
	Tokens     int           // answer length
	ToolName   string        // tool to call while iterations remain
	ToolArgs   string        // its arguments, JSON text
	ToolCalls  int           // tool iterations before the answer
	// Think is reasoning streamed before each answer or tool call, in
	// ThinkForm: "reasoning_content" (DeepSeek, vLLM; the default),
	// "reasoning" (OpenRouter, Ollama) or "think" (<think>…</think> at
	// the start of content, a server without a reasoning parser).
	Think     string
	ThinkForm string
}

// ThinkForms are the reasoning forms the mock speaks.
var ThinkForms = []string{"reasoning_content", "reasoning", "think"}

// chatRequest is the part of an OpenAI chat request the mock reads.
type chatRequest struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           int           `json:"max_tokens"`
	MaxCompletionTokens int           `json:"max_completion_tokens"`
	Messages            []chatMessage `json:"messages"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// text returns the message's text whether content is a string or a list of
// parts; anything else reads as empty.
func (m chatMessage) text() string {
	if len(m.Content) == 0 || m.Content[0] == 'n' {
		return ""
	}
	if m.Content[0] == '"' {
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			return s
		}
		return ""
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(m.Content, &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

// lastUser returns the text of the last user message and how many tool
// results follow it, which is how many tool iterations this turn has done.
func lastUser(msgs []chatMessage) (text string, toolResults int) {
	for i := len(msgs) - 1; i >= 0; i-- {
		switch msgs[i].Role {
		case "user":
			return msgs[i].text(), toolResults
		case "tool":
			toolResults++
		}
	}
	return "", toolResults
}

// promptTokens is a rough count (4 bytes a token) so usage is plausible
// without a tokenizer.
func promptTokens(msgs []chatMessage) int {
	n := 0
	for _, m := range msgs {
		n += len(m.Content)
	}
	return n/4 + 1
}

// applyDirectives returns base overridden by the directives of text, read
// as hermesd's offline model reads them (hermes.ParseDirectives): /tokens,
// /delay, /sleep, /tool (the first: the mock asks for one call a round) and
// /repeat, which without /tool repeats the configured tool; /think TEXT
// (reasoning before the answer, in the configured form). The others
// script failures the mock does not play, and are ignored.
func applyDirectives(base Script, text string) Script {
	if !strings.Contains(text, "/") {
		return base
	}
	d := hermes.ParseDirectives(text)
	s := base
	if d.Tokens >= 0 {
		s.Tokens = d.Tokens
	}
	if d.DelaySet {
		s.TokenDelay = d.Delay
	}
	if d.Sleep > 0 {
		s.TTFT = d.Sleep
	}
	if d.Think != "" {
		s.Think = d.Think
	}
	if len(d.Calls) > 0 {
		s.ToolName, s.ToolArgs = d.Calls[0].Name, d.Calls[0].Arguments
		s.ToolCalls = max(d.Repeat, 1)
	} else if d.Repeat > 0 {
		s.ToolCalls = d.Repeat
	}
	return s
}
