package mockllm

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
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
}

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

// applyDirectives returns base overridden by the directives found in text:
// "/tokens N", "/delay D", "/sleep D", "/tool NAME {json}", "/repeat K".
// Unknown or malformed directives are ignored, as a model would.
func applyDirectives(base Script, text string) Script {
	if !strings.Contains(text, "/") {
		return base
	}
	s := base
	fields := strings.Fields(text)
	repeat := -1
	tool := false
	for i := 0; i < len(fields); i++ {
		arg := ""
		if i+1 < len(fields) {
			arg = fields[i+1]
		}
		switch fields[i] {
		case "/tokens":
			if n, err := strconv.Atoi(arg); err == nil && n >= 0 {
				s.Tokens = n
				i++
			}
		case "/delay":
			if d, err := time.ParseDuration(arg); err == nil && d >= 0 {
				s.TokenDelay = d
				i++
			}
		case "/sleep":
			if d, err := time.ParseDuration(arg); err == nil && d >= 0 {
				s.TTFT = d
				i++
			}
		case "/repeat":
			if n, err := strconv.Atoi(arg); err == nil && n >= 0 {
				repeat = n
				i++
			}
		case "/tool":
			if arg == "" || strings.HasPrefix(arg, "/") {
				continue
			}
			tool = true
			s.ToolName = arg
			s.ToolArgs = "{}"
			i++
			// The arguments may contain spaces: take fields until they
			// form valid JSON.
			if i+1 < len(fields) && strings.HasPrefix(fields[i+1], "{") {
				for j := i + 1; j < len(fields); j++ {
					cand := strings.Join(fields[i+1:j+1], " ")
					if json.Valid([]byte(cand)) {
						s.ToolArgs = cand
						i = j
						break
					}
				}
			}
		}
	}
	switch {
	case tool && repeat >= 0:
		s.ToolCalls = repeat
	case tool:
		s.ToolCalls = 1
	case repeat >= 0 && s.ToolName != "":
		s.ToolCalls = repeat
	}
	return s
}
