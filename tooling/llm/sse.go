package llm

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	json "github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

// maxToolCalls bounds the tool call index a chunk may name, so a broken or
// hostile upstream cannot make the decoder allocate without limit.
const maxToolCalls = 256

// streamDecoder assembles a chat completion from the lines of an
// OpenAI-compatible SSE stream. It is pure (no I/O) so it can be fuzzed.
type streamDecoder struct {
	text      strings.Builder
	reasoning strings.Builder
	think     thinkSplitter
	calls     []callBuilder
	finish    string
	usage     hermes.Usage
	// sawData is set by the first data line; it ends the first-byte wait.
	sawData bool
	// done is set by "data: [DONE]".
	done bool
	// chunk is reused from line to line, so its choices slice is not
	// allocated again for every token.
	wire wireChunk
}

type callBuilder struct {
	id, name string
	// args is a byte slice, not a strings.Builder: builders may not be
	// copied, and the calls slice grows.
	args []byte
}

// wireChunk is one chat.completion.chunk, or a whole chat.completion when a
// server ignores stream=true (then Message is set instead of Delta).
type wireChunk struct {
	Choices []wireChoice    `json:"choices"`
	Usage   *wireUsage      `json:"usage"`
	Error   json.RawMessage `json:"error"`
}

type wireChoice struct {
	Delta        wireDelta  `json:"delta"`
	Message      *wireDelta `json:"message"`
	FinishReason string     `json:"finish_reason"`
}

type wireDelta struct {
	// Content is the JSON string as sent (or null): the stream unquotes
	// it straight into the answer it builds, so a token costs no string of
	// its own (content()).
	Content json.RawMessage `json:"content"`
	// ReasoningContent is DeepSeek's, vLLM's, SGLang's and llama.cpp's
	// reasoning field; Reasoning OpenRouter's and Ollama's (a string; some
	// servers send both with the same text).
	ReasoningContent string          `json:"reasoning_content"`
	Reasoning        json.RawMessage `json:"reasoning"`
	ToolCalls        []wireCallDelta `json:"tool_calls"`
	FunctionCall     *wireFunction   `json:"function_call"` // legacy single-call shape
}

type wireCallDelta struct {
	Index    *int         `json:"index"`
	ID       string       `json:"id"`
	Function wireFunction `json:"function"`
}

type wireFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type wireUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

func (u *wireUsage) usage() hermes.Usage {
	out := hermes.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
	if u.PromptTokensDetails != nil {
		out.CachedTokens = u.PromptTokensDetails.CachedTokens
	}
	if u.CompletionTokensDetails != nil {
		out.ReasoningTokens = u.CompletionTokensDetails.ReasoningTokens
	}
	return out
}

var (
	prefixData = []byte("data:")
	valueDone  = []byte("[DONE]")
)

// Line feeds one SSE line, without its line ending (a trailing \r is
// tolerated). It returns the answer text and the reasoning text the line
// carried, if any. Comments,
// blank lines and other fields (event:, id:, retry:) are ignored; lines after
// [DONE] are ignored.
func (d *streamDecoder) Line(line []byte) (text, reasoning string, err error) {
	if d.done {
		return "", "", nil
	}
	line = bytes.TrimSuffix(line, []byte{'\r'})
	payload, ok := bytes.CutPrefix(line, prefixData)
	if !ok {
		return "", "", nil
	}
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 {
		return "", "", nil
	}
	d.sawData = true
	if bytes.Equal(payload, valueDone) {
		d.done = true
		return "", "", nil
	}
	return d.chunk(payload)
}

// chunk applies one chat.completion.chunk.
func (d *streamDecoder) chunk(data []byte) (string, string, error) {
	c := &d.wire
	for i := range c.Choices {
		// Keep the content's buffer: it is reused for the next token.
		c.Choices[i] = wireChoice{Delta: wireDelta{Content: c.Choices[i].Delta.Content[:0]}}
	}
	*c = wireChunk{Choices: c.Choices[:0]}
	if err := json.Unmarshal(data, c); err != nil {
		return "", "", &hermes.Error{Code: hermes.EUpstream, Message: "malformed upstream chunk: " + err.Error(), Cause: err}
	}
	if msg, ok := errorMessage(c.Error); ok {
		return "", "", hermes.Errorf(hermes.EUpstream, "upstream error: %s", msg)
	}
	if c.Usage != nil {
		// Some servers repeat a cumulative usage on every chunk: keep the last.
		d.usage = c.Usage.usage()
	}
	if len(c.Choices) == 0 {
		return "", "", nil
	}
	ch := &c.Choices[0]
	if ch.FinishReason != "" {
		d.finish = ch.FinishReason
	}
	delta := &ch.Delta
	if ch.Message != nil {
		delta = ch.Message
	}
	for i := range delta.ToolCalls {
		if err := d.toolDelta(&delta.ToolCalls[i]); err != nil {
			return "", "", err
		}
	}
	if f := delta.FunctionCall; f != nil {
		zero := 0
		if err := d.toolDelta(&wireCallDelta{Index: &zero, Function: *f}); err != nil {
			return "", "", err
		}
	}
	reasoning := delta.reasoning()
	var text string
	if d.think.plain() {
		// The hot path: the token goes straight into the answer, and what
		// is given out is that part of it (a builder never changes what
		// it holds, so the string stays valid).
		before := d.text.Len()
		if !appendJSONString(&d.text, delta.Content) {
			return "", "", malformedContent(delta.Content)
		}
		text = d.text.String()[before:]
	} else {
		content, ok := delta.content()
		if !ok {
			return "", "", malformedContent(delta.Content)
		}
		var thought string
		text, thought = d.think.feed(content)
		if thought != "" {
			reasoning += thought
		}
		d.text.WriteString(text)
	}
	d.reasoning.WriteString(reasoning)
	return text, reasoning, nil
}

func malformedContent(raw json.RawMessage) error {
	return hermes.Errorf(hermes.EUpstream, "malformed upstream chunk: content %s is not a string", tooling.CutBytes(string(raw), 100))
}

// content returns the delta's content as a string; ok is false when it is
// neither a string nor null.
func (w *wireDelta) content() (string, bool) {
	var b strings.Builder
	ok := appendJSONString(&b, w.Content)
	return b.String(), ok
}

// appendJSONString unquotes the JSON string lit into b (null or nothing
// appends nothing). It reports false for anything else, or a malformed
// string.
func appendJSONString(b *strings.Builder, lit []byte) bool {
	if len(lit) == 0 || string(lit) == "null" {
		return true
	}
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return false
	}
	s := lit[1 : len(lit)-1]
	for len(s) > 0 {
		i := bytes.IndexByte(s, '\\')
		if i < 0 {
			b.Write(s)
			return true
		}
		b.Write(s[:i])
		if i+1 >= len(s) {
			return false
		}
		c := s[i+1]
		s = s[i+2:]
		switch c {
		case '"', '\\', '/':
			b.WriteByte(c)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(s)
			if !ok {
				return false
			}
			s = s[4:]
			if utf16.IsSurrogate(r) {
				// A pair is two escapes; a lone half is U+FFFD, as
				// encoding/json reads it.
				r2, ok := rune(-1), false
				if len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
					r2, ok = hex4(s[2:])
				}
				if d := utf16.DecodeRune(r, r2); ok && d != utf8.RuneError {
					r = d
					s = s[6:]
				} else {
					r = utf8.RuneError
				}
			}
			b.WriteRune(r)
		default:
			return false
		}
	}
	return true
}

// hex4 reads the four hex digits of a \u escape.
func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// reasoning returns the delta's reasoning text: reasoning_content, else a
// string reasoning (an object there is some other server's shape, not
// reasoning text).
func (w *wireDelta) reasoning() string {
	if w.ReasoningContent != "" {
		return w.ReasoningContent
	}
	if len(w.Reasoning) > 0 && w.Reasoning[0] == '"' {
		var s string
		if json.Unmarshal(w.Reasoning, &s) == nil {
			return s
		}
	}
	return ""
}

// end gives out what the <think> splitter still holds, once the content is
// over, and returns it to be streamed.
func (d *streamDecoder) end() (text, reasoning string) {
	text, reasoning = d.think.flush()
	d.text.WriteString(text)
	d.reasoning.WriteString(reasoning)
	return text, reasoning
}

// toolDelta merges one tool call delta: the first delta of a call carries its
// id and name, later ones append argument text at the same index.
func (d *streamDecoder) toolDelta(t *wireCallDelta) error {
	var i int
	switch {
	case t.Index != nil:
		i = *t.Index
		if i < 0 || i >= maxToolCalls {
			return hermes.Errorf(hermes.EUpstream, "malformed upstream chunk: tool call index %d out of range", i)
		}
		// Some servers number every call 0: a new id at an index already
		// holding another call starts a new call.
		if i < len(d.calls) && t.ID != "" && d.calls[i].id != "" && d.calls[i].id != t.ID {
			i = len(d.calls)
		}
	case t.ID != "" || len(d.calls) == 0:
		i = len(d.calls) // no index: an id starts a new call
	default:
		i = len(d.calls) - 1
	}
	if i >= maxToolCalls {
		return hermes.Errorf(hermes.EUpstream, "malformed upstream chunk: more than %d tool calls", maxToolCalls)
	}
	for len(d.calls) <= i {
		d.calls = append(d.calls, callBuilder{})
	}
	c := &d.calls[i]
	if c.id == "" {
		c.id = t.ID
	}
	// Some servers repeat the name on every delta; the first one wins.
	if c.name == "" {
		c.name = t.Function.Name
	}
	c.args = append(c.args, t.Function.Arguments...)
	return nil
}

// ended reports whether the stream reached a proper end: [DONE] or a finish
// reason (some servers close right after the last chunk).
func (d *streamDecoder) ended() bool { return d.done || d.finish != "" }

// response returns what the stream produced so far.
func (d *streamDecoder) response() Response {
	d.end()
	r := Response{Text: d.text.String(), Reasoning: d.reasoning.String(), Usage: d.usage}
	for i := range d.calls {
		c := &d.calls[i]
		if c.name == "" {
			continue // an index gap or a call that never got its name
		}
		id := c.id
		if id == "" {
			id = "call_" + strconv.Itoa(i+1)
		}
		r.ToolCalls = append(r.ToolCalls, hermes.ToolCall{ID: id, Name: c.name, Arguments: string(c.args)})
	}
	r.Finish = finishReason(d.finish, len(r.ToolCalls) > 0)
	return r
}

// finishReason maps an upstream finish_reason to the domain one. Tool calls
// win whatever the server said, since the agent loop must run them.
func finishReason(raw string, hasCalls bool) hermes.FinishReason {
	if hasCalls {
		return hermes.FinishToolCalls
	}
	switch raw {
	case "length":
		return hermes.FinishLength
	case "tool_calls", "function_call":
		return hermes.FinishToolCalls
	default:
		return hermes.FinishStop
	}
}

// decodeCompletion parses a whole (non-stream) chat.completion body.
func decodeCompletion(body []byte) (Response, error) {
	var c wireChunk
	if err := json.Unmarshal(body, &c); err != nil {
		return Response{}, &hermes.Error{Code: hermes.EUpstream, Message: "malformed upstream response: " + err.Error(), Cause: err}
	}
	if msg, ok := errorMessage(c.Error); ok {
		return Response{}, hermes.Errorf(hermes.EUpstream, "upstream error: %s", msg)
	}
	var r Response
	if c.Usage != nil {
		r.Usage = c.Usage.usage()
	}
	var raw string
	if len(c.Choices) > 0 {
		ch := c.Choices[0]
		raw = ch.FinishReason
		m := ch.Message
		if m == nil {
			m = &ch.Delta
		}
		content, ok := m.content()
		if !ok {
			return Response{}, malformedContent(m.Content)
		}
		var thought string
		r.Text, thought = splitThink(content)
		r.Reasoning = m.reasoning() + thought
		for i, t := range m.ToolCalls {
			id := t.ID
			if id == "" {
				id = "call_" + strconv.Itoa(i+1)
			}
			r.ToolCalls = append(r.ToolCalls, hermes.ToolCall{ID: id, Name: t.Function.Name, Arguments: t.Function.Arguments})
		}
		if f := m.FunctionCall; f != nil && len(m.ToolCalls) == 0 {
			r.ToolCalls = append(r.ToolCalls, hermes.ToolCall{ID: "call_1", Name: f.Name, Arguments: f.Arguments})
		}
	}
	r.Finish = finishReason(raw, len(r.ToolCalls) > 0)
	return r, nil
}

// errorMessage extracts the message of an upstream "error" value: the
// OpenAI object {"message": …}, a bare string (Ollama, some proxies), or the
// raw JSON. null or absent is no error.
func errorMessage(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", false
	}
	var obj struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Message != "" {
		return obj.Message, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		return s, true
	}
	return tooling.CutBytes(string(raw), 200), true
}
