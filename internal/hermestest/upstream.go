package hermestest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Call is one request the fake upstream received.
type Call struct {
	Model    string `json:"model"`
	Messages []struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		ToolCallID string          `json:"tool_call_id"`
		// ReasoningContent is reasoning sent back with an assistant message.
		ReasoningContent *string `json:"reasoning_content"`
		ToolCalls        []struct {
			ID       string `json:"id"`
			Function struct {
				Name      string `json:"name"`
				Arguments string `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"messages"`
	Tools []struct {
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	Stream          bool   `json:"stream"`
	ReasoningEffort string `json:"reasoning_effort"`
	// Auth is the request's Authorization header.
	Auth string `json:"-"`
}

// Text returns message i's content as text.
func (c *Call) Text(i int) string {
	var s string
	_ = json.Unmarshal(c.Messages[i].Content, &s)
	return s
}

// Last returns the last message's role and text.
func (c *Call) Last() (string, string) {
	n := len(c.Messages) - 1
	return c.Messages[n].Role, c.Text(n)
}

// Reply is what the fake upstream answers one call with.
type Reply struct {
	Text      string
	ToolCalls [][2]string // name, arguments
	Prompt    int         // usage
	// Block holds the answer until the request is cancelled; the fake
	// records that cancellation on Cancelled.
	Block bool
	// Hold, when set, pauses the answer after its first word until Hold is
	// closed or the request is cancelled (a turn caught mid-stream).
	Hold <-chan struct{}
	// Status, when set, answers with that HTTP status and an error envelope.
	Status int
	// Reasoning is streamed before the answer, word by word, in the form
	// ReasoningForm names: "reasoning_content" (DeepSeek, vLLM, llama.cpp;
	// the default), "reasoning" (OpenRouter, Ollama) or "think" (<think>
	// tags in the content, sent in 3-byte pieces so the tags split).
	Reasoning     string
	ReasoningForm string
}

// Upstream is an OpenAI-compatible model server whose answers a test
// scripts; it streams text word by word with usage at the end.
type Upstream struct {
	*httptest.Server
	// Cancelled receives once for each Block reply whose request was
	// cancelled.
	Cancelled chan struct{}
	script    func(n int, call *Call) Reply

	mu    sync.Mutex // guards calls
	calls []*Call
}

// NewUpstream starts a fake upstream on 127.0.0.1 that answers call n (from
// 0) with script's reply; it stops when the test ends.
func NewUpstream(t testing.TB, script func(n int, call *Call) Reply) *Upstream {
	f := &Upstream{script: script, Cancelled: make(chan struct{}, 16)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// Env is the settings that point hermesd at f.
func (f *Upstream) Env() map[string]string {
	return map[string]string{"OPENAI_BASE_URL": f.URL + "/v1", "OPENAI_API_KEY": "sk-test", "HERMES_MODEL": "fake-model"}
}

// Calls returns the requests received so far, in order.
func (f *Upstream) Calls() []*Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Call(nil), f.calls...)
}

func (f *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	call := &Call{Auth: r.Header.Get("Authorization")}
	if err := json.NewDecoder(r.Body).Decode(call); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, call)
	f.mu.Unlock()
	rep := f.script(n, call)
	if rep.Status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.Status)
		fmt.Fprintf(w, `{"error":{"message":"fake upstream says %d","type":"server_error"}}`, rep.Status)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		fl.Flush()
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": "up-1", "object": "chat.completion.chunk", "model": "fake-model",
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	send(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	if rep.Block {
		<-r.Context().Done()
		f.Cancelled <- struct{}{}
		return
	}
	completion, reasoning := 0, 0
	if rep.Reasoning != "" {
		switch rep.ReasoningForm {
		case "think":
			tagged := "<think>" + rep.Reasoning + "</think>\n\n"
			for i := 0; i < len(tagged); i += 3 {
				send(chunk(map[string]any{"content": tagged[i:min(i+3, len(tagged))]}, nil))
			}
			reasoning = len(strings.Fields(rep.Reasoning))
		default:
			for _, wd := range strings.SplitAfter(rep.Reasoning, " ") {
				if rep.ReasoningForm == "reasoning" {
					send(chunk(map[string]any{"content": "", "reasoning": wd}, nil))
				} else {
					send(chunk(map[string]any{"content": nil, "reasoning_content": wd}, nil))
				}
				reasoning++
			}
		}
		completion = reasoning
	}
	words := strings.SplitAfter(rep.Text, " ")
	for _, wd := range words {
		if wd == "" {
			continue
		}
		completion++
		send(chunk(map[string]any{"content": wd}, nil))
		if rep.Hold != nil && completion == 1 {
			select {
			case <-rep.Hold:
			case <-r.Context().Done():
				return
			}
		}
	}
	for i, tc := range rep.ToolCalls {
		completion++
		send(chunk(map[string]any{"tool_calls": []any{map[string]any{"index": i, "id": fmt.Sprintf("call_%d_%d", n, i),
			"type": "function", "function": map[string]any{"name": tc[0], "arguments": ""}}}}, nil))
		send(chunk(map[string]any{"tool_calls": []any{map[string]any{"index": i, "function": map[string]any{"arguments": tc[1]}}}}, nil))
	}
	finish := "stop"
	if len(rep.ToolCalls) > 0 {
		finish = "tool_calls"
	}
	send(chunk(map[string]any{}, finish))
	prompt := rep.Prompt
	if prompt == 0 {
		prompt = 10 * len(call.Messages)
	}
	send(map[string]any{"id": "up-1", "object": "chat.completion.chunk", "choices": []any{},
		"usage": map[string]any{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
			"completion_tokens_details": map[string]any{"reasoning_tokens": reasoning}}})
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}
