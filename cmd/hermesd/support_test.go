package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// hermesd is a whole server started for one test.
type hermesd struct {
	*Main
	Home, Workspace string
}

// startHermes starts a hermesd on 127.0.0.1:0 with a temp HERMES_HOME and
// workspace. env adds settings (OPENAI_BASE_URL to use a fake upstream);
// setup, when given, changes the Main before it runs (a model of the
// test's own).
func startHermes(t testing.TB, env map[string]string, setup ...func(*Main)) *hermesd {
	t.Helper()
	home, ws := t.TempDir(), t.TempDir()
	vars := map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": ws}
	for k, v := range env {
		vars[k] = v
	}
	m := NewMain()
	if err := m.ParseFlags(nil, lookupIn(vars)); err != nil {
		t.Fatal(err)
	}
	m.Logger = newLogger("text", "error", io.Discard)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.Listener = ln
	for _, f := range setup {
		f(m)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	return &hermesd{Main: m, Home: home, Workspace: ws}
}

// lookupIn is an environment holding only vars, looked up as
// os.LookupEnv does.
func lookupIn(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// client is the official OpenAI Go SDK pointed at h, without retries so a
// failure shows as it is.
func (h *hermesd) client(opts ...option.RequestOption) *openai.Client {
	c := openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(h.URL() + "/"), option.WithAPIKey("unused"), option.WithMaxRetries(0),
	}, opts...)...)
	return &c
}

// post sends a raw request and returns status, headers and body.
func (h *hermesd) do(t testing.TB, method, path, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, strings.TrimSuffix(h.URL(), "/v1")+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// upstreamCall is one request the fake upstream received.
type upstreamCall struct {
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
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
	Stream          bool   `json:"stream"`
	ReasoningEffort string `json:"reasoning_effort"`
	// Auth is the request's Authorization header.
	Auth string `json:"-"`
}

// text returns message i's content as text.
func (c *upstreamCall) text(i int) string {
	var s string
	_ = json.Unmarshal(c.Messages[i].Content, &s)
	return s
}

// last returns the last message's role and text.
func (c *upstreamCall) last() (string, string) {
	n := len(c.Messages) - 1
	return c.Messages[n].Role, c.text(n)
}

// reply is what the fake upstream answers one call with.
type reply struct {
	Text      string
	ToolCalls [][2]string // name, arguments
	Prompt    int         // usage
	// Block holds the answer until the request is cancelled; the fake
	// records that cancellation on cancelled.
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

// fakeUpstream is an OpenAI-compatible model server whose answers a test
// scripts; it streams text word by word with usage at the end.
type fakeUpstream struct {
	*httptest.Server
	script func(n int, call *upstreamCall) reply

	mu        sync.Mutex
	calls     []*upstreamCall
	cancelled chan struct{}
}

func newFakeUpstream(t testing.TB, script func(n int, call *upstreamCall) reply) *fakeUpstream {
	f := &fakeUpstream{script: script, cancelled: make(chan struct{}, 16)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeUpstream) env() map[string]string {
	return map[string]string{"OPENAI_BASE_URL": f.URL + "/v1", "OPENAI_API_KEY": "sk-test", "HERMES_MODEL": "fake-model"}
}

func (f *fakeUpstream) Calls() []*upstreamCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*upstreamCall(nil), f.calls...)
}

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	call := &upstreamCall{Auth: r.Header.Get("Authorization")}
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
		f.cancelled <- struct{}{}
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

// streamText streams a chat completion of one user message through the
// SDK and returns the accumulated answer text.
func streamText(t testing.TB, h *hermesd, prompt string) string {
	t.Helper()
	stream := h.client().Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:    "hermes-agent",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	})
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	return acc.Choices[0].Message.Content
}
