package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
)

// fake is an OpenAI-compatible upstream on 127.0.0.1 recording what it got.
type fake struct {
	srv  *httptest.Server
	reqs chan *recorded
}

type recorded struct {
	path, auth, accept string
	body               []byte
}

func newFake(t *testing.T, h http.HandlerFunc) *fake {
	t.Helper()
	f := &fake{reqs: make(chan *recorded, 16)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.reqs <- &recorded{path: r.URL.Path, auth: r.Header.Get("Authorization"), accept: r.Header.Get("Accept"), body: b}
		h(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) upstream(mod func(*UpstreamOptions)) *Upstream {
	o := UpstreamOptions{BaseURL: f.srv.URL + "/v1", APIKey: "sk-test", Model: "test-model"}
	if mod != nil {
		mod(&o)
	}
	return NewUpstream(o)
}

// sse writes each payload as a "data:" event, flushing after each.
func sse(payloads ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, p := range payloads {
			fmt.Fprintf(w, "data: %s\n\n", p)
			w.(http.Flusher).Flush()
		}
	}
}

func textChunk(s string) string {
	b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": s}, "finish_reason": nil}}})
	return string(b)
}

func finishChunk(reason string) string {
	return `{"choices":[{"index":0,"delta":{},"finish_reason":"` + reason + `"}]}`
}

const usageChunk = `{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}`

func userRequest(text string) Request {
	return Request{Messages: []hermes.Message{{Role: hermes.RoleUser, Content: text}}}
}

func collect(deltas *[]string) func(string) {
	return func(s string) { *deltas = append(*deltas, s) }
}

func code(err error) string { return hermes.ErrorCode(err) }

func TestUpstreamStreamsText(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		// Comments, event lines and CRLF endings must be tolerated.
		io.WriteString(w, ": keep-alive\n\nevent: message\r\n")
		sse(textChunk("Hel"), textChunk("lo"), textChunk(" world"), finishChunk("stop"), usageChunk, "[DONE]")(w, r)
	})
	var deltas []string
	resp, err := f.upstream(nil).Stream(context.Background(), userRequest("hi"), collect(&deltas))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Hel", "lo", " world"}; !reflect.DeepEqual(deltas, want) {
		t.Errorf("deltas = %q, want %q", deltas, want)
	}
	want := Response{Text: "Hello world", Finish: hermes.FinishStop,
		Usage: hermes.Usage{PromptTokens: 12, CompletionTokens: 3, CachedTokens: 4, ReasoningTokens: 2}}
	if !reflect.DeepEqual(resp, want) {
		t.Errorf("response = %+v, want %+v", resp, want)
	}
	got := <-f.reqs
	if got.path != "/v1/chat/completions" || got.auth != "Bearer sk-test" || got.accept != "text/event-stream" {
		t.Errorf("request path %q auth %q accept %q", got.path, got.auth, got.accept)
	}
}

func TestUpstreamAssemblesParallelToolCalls(t *testing.T) {
	f := newFake(t, sse(
		`{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"terminal","arguments":""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"read_file","arguments":""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"comm"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"path\":"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"and\":\"pwd\"}"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\"a.txt\"}"}}]}}]}`,
		finishChunk("tool_calls"), "[DONE]"))
	resp, err := f.upstream(nil).Stream(context.Background(), userRequest("go"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []hermes.ToolCall{
		{ID: "call_a", Name: "terminal", Arguments: `{"command":"pwd"}`},
		{ID: "call_b", Name: "read_file", Arguments: `{"path":"a.txt"}`},
	}
	if !reflect.DeepEqual(resp.ToolCalls, want) || resp.Finish != hermes.FinishToolCalls || resp.Text != "" {
		t.Errorf("response = %+v, want calls %+v", resp, want)
	}
}

func TestUpstreamPlainJSONFallback(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"whole answer"},"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}`)
	})
	var deltas []string
	resp, err := f.upstream(nil).Stream(context.Background(), userRequest("hi"), collect(&deltas))
	if err != nil {
		t.Fatal(err)
	}
	want := Response{Text: "whole answer", Finish: hermes.FinishLength, Usage: hermes.Usage{PromptTokens: 5, CompletionTokens: 2}}
	if !reflect.DeepEqual(resp, want) || !reflect.DeepEqual(deltas, []string{"whole answer"}) {
		t.Errorf("response = %+v deltas %q, want %+v", resp, deltas, want)
	}
}

func TestUpstreamFailures(t *testing.T) {
	tests := []struct {
		name        string
		handler     http.HandlerFunc
		code        string
		contains    []string
		retryAfter  time.Duration
		partialText string
	}{
		{
			name: "500 with envelope",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(500)
				io.WriteString(w, `{"error":{"message":"model overloaded","type":"server_error","param":null,"code":null}}`)
			},
			code:     hermes.EUpstream,
			contains: []string{"HTTP 500", "model overloaded"},
		},
		{
			name: "502 plain text",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(502)
				io.WriteString(w, "<html>bad gateway from proxy</html>")
			},
			code:     hermes.EUpstream,
			contains: []string{"HTTP 502", "Bad Gateway", "bad gateway from proxy"},
		},
		{
			name: "429 with Retry-After",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(429)
				io.WriteString(w, `{"error":{"message":"slow down"}}`)
			},
			code:       hermes.ERateLimited,
			contains:   []string{"slow down"},
			retryAfter: 7 * time.Second,
		},
		{
			name: "429 without Retry-After",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(429)
				io.WriteString(w, `{"error":"quota"}`)
			},
			code:       hermes.ERateLimited,
			contains:   []string{"quota"},
			retryAfter: time.Second,
		},
		{
			name:        "early EOF without DONE",
			handler:     sse(textChunk("part"), textChunk("ial")),
			code:        hermes.EUpstream,
			contains:    []string{"upstream stream ended early"},
			partialText: "partial",
		},
		{
			name:        "malformed chunk",
			handler:     sse(textChunk("ok "), `{"choices":[{"delta":`),
			code:        hermes.EUpstream,
			contains:    []string{"malformed upstream chunk"},
			partialText: "ok ",
		},
		{
			name:        "error chunk mid-stream",
			handler:     sse(textChunk("a"), `{"error":{"message":"context length exceeded","type":"invalid_request_error"}}`),
			code:        hermes.EUpstream,
			contains:    []string{"context length exceeded"},
			partialText: "a",
		},
		{
			name:        "tool call index out of range",
			handler:     sse(`{"choices":[{"delta":{"tool_calls":[{"index":100000,"id":"x","function":{"name":"t"}}]}}]}`),
			code:        hermes.EUpstream,
			contains:    []string{"malformed upstream chunk", "out of range"},
			partialText: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.handler)
			resp, err := f.upstream(nil).Stream(context.Background(), userRequest("hi"), nil)
			if code(err) != tt.code {
				t.Fatalf("err = %v, want code %s", err, tt.code)
			}
			he := hermes.AsError(err)
			for _, s := range tt.contains {
				if !strings.Contains(he.Message, s) {
					t.Errorf("message %q lacks %q", he.Message, s)
				}
			}
			if he.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", he.RetryAfter, tt.retryAfter)
			}
			if resp.Text != tt.partialText {
				t.Errorf("partial text = %q, want %q", resp.Text, tt.partialText)
			}
		})
	}
}

func TestUpstreamStreamEndingWithFinishButNoDoneIsComplete(t *testing.T) {
	f := newFake(t, sse(textChunk("done"), finishChunk("stop")))
	resp, err := f.upstream(nil).Stream(context.Background(), userRequest("hi"), nil)
	if err != nil || resp.Text != "done" || resp.Finish != hermes.FinishStop {
		t.Fatalf("resp %+v err %v", resp, err)
	}
}

func TestUpstreamConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	u := NewUpstream(UpstreamOptions{BaseURL: "http://" + addr + "/v1"})
	_, err = u.Stream(context.Background(), userRequest("hi"), nil)
	if code(err) != hermes.EUpstream || !strings.Contains(hermes.AsError(err).Message, "upstream unreachable") {
		t.Fatalf("err = %v, want EUpstream unreachable", err)
	}
}

// blockUntilGone waits until the client abandons the request, so timeout
// tests need no sleeps and the server closes cleanly.
func blockUntilGone(r *http.Request) { <-r.Context().Done() }

func TestUpstreamTimeouts(t *testing.T) {
	const short = 50 * time.Millisecond
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
		partial string
	}{
		{
			name:    "no headers",
			handler: func(w http.ResponseWriter, r *http.Request) { blockUntilGone(r) },
			want:    "no first byte from upstream within 50ms",
		},
		{
			name: "headers and comments but no data",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, ": processing\n\n")
				w.(http.Flusher).Flush()
				blockUntilGone(r)
			},
			want: "no first byte from upstream within 50ms",
		},
		{
			name: "idle after first data",
			handler: func(w http.ResponseWriter, r *http.Request) {
				sse(textChunk("first"))(w, r)
				blockUntilGone(r)
			},
			want:    "upstream stream idle for 50ms",
			partial: "first",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.handler)
			u := f.upstream(func(o *UpstreamOptions) { o.FirstByteTimeout, o.IdleTimeout = short, short })
			resp, err := u.Stream(context.Background(), userRequest("hi"), nil)
			if code(err) != hermes.ETimeout || hermes.AsError(err).Message != tt.want {
				t.Fatalf("err = %v, want ETimeout %q", err, tt.want)
			}
			if resp.Text != tt.partial {
				t.Errorf("partial = %q, want %q", resp.Text, tt.partial)
			}
		})
	}
}

func TestUpstreamCancellationReachesServer(t *testing.T) {
	serverSawDone := make(chan struct{})
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		sse(textChunk("started"))(w, r)
		blockUntilGone(r)
		close(serverSawDone)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := f.upstream(nil).Stream(ctx, userRequest("hi"), func(string) { cancel() })
	if code(err) != hermes.ECancelled {
		t.Fatalf("err = %v, want ECancelled", err)
	}
	if resp.Text != "started" {
		t.Errorf("partial = %q", resp.Text)
	}
	select {
	case <-serverSawDone:
	case <-time.After(5 * time.Second):
		t.Fatal("server request context not cancelled")
	}
}

func TestUpstreamRequestBody(t *testing.T) {
	params := []byte(`{"type":"object","properties":{"command":{"type":"string"}}}`)
	req := Request{
		Messages: []hermes.Message{
			{Role: hermes.RoleSystem, Content: "be brief"},
			{Role: hermes.RoleUser, Content: "what is this?", Parts: []hermes.Part{
				{Type: "image_url", ImageURL: "data:image/png;base64,AAAA"},
			}},
			{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{{ID: "call_1", Name: "terminal", Arguments: `{"command":"ls"}`}}},
			{Role: hermes.RoleTool, ToolCallID: "call_1", Name: "terminal", Content: `{"output":"a.txt"}`},
			{Role: hermes.RoleAssistant, Content: "one file"},
		},
		Tools:     []hermes.ToolSpec{{Name: "terminal", Description: "run", Parameters: params}, {Name: "noargs"}},
		MaxTokens: 64,
	}
	wantMessages := `[
		{"role":"system","content":"be brief"},
		{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},
		{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"terminal","arguments":"{\"command\":\"ls\"}"}}]},
		{"role":"tool","content":"{\"output\":\"a.txt\"}","tool_call_id":"call_1"},
		{"role":"assistant","content":"one file"}]`
	wantTools := `[
		{"type":"function","function":{"name":"terminal","description":"run","parameters":{"type":"object","properties":{"command":{"type":"string"}}}}},
		{"type":"function","function":{"name":"noargs","parameters":{"type":"object","properties":{}}}}]`

	tests := []struct {
		name       string
		mod        func(*Request)
		toolChoice string // JSON, "" when absent
		maxTokens  bool
		tools      bool
	}{
		{name: "auto", mod: func(r *Request) { r.ToolChoice = "auto" }, toolChoice: `"auto"`, maxTokens: true, tools: true},
		{name: "required", mod: func(r *Request) { r.ToolChoice = "required" }, toolChoice: `"required"`, maxTokens: true, tools: true},
		{name: "named", mod: func(r *Request) { r.ToolChoice = "terminal" }, toolChoice: `{"type":"function","function":{"name":"terminal"}}`, maxTokens: true, tools: true},
		{name: "unset", mod: func(r *Request) {}, maxTokens: true, tools: true},
		{name: "no tools", mod: func(r *Request) { r.Tools, r.ToolChoice, r.MaxTokens = nil, "none", 0 }},
	}
	f := newFake(t, sse(finishChunk("stop"), "[DONE]"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req
			tt.mod(&r)
			if _, err := f.upstream(nil).Stream(context.Background(), r, nil); err != nil {
				t.Fatal(err)
			}
			var body map[string]json.RawMessage
			if err := json.Unmarshal((<-f.reqs).body, &body); err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, "model", body["model"], `"test-model"`)
			jsonEqual(t, "stream", body["stream"], `true`)
			jsonEqual(t, "stream_options", body["stream_options"], `{"include_usage":true}`)
			jsonEqual(t, "messages", body["messages"], wantMessages)
			optional(t, "tool_choice", body, tt.toolChoice)
			optional(t, "max_tokens", body, map[bool]string{true: "64"}[tt.maxTokens])
			optional(t, "tools", body, map[bool]string{true: wantTools}[tt.tools])
		})
	}
}

func TestUpstreamRequestModelOverridesDefault(t *testing.T) {
	f := newFake(t, sse(finishChunk("stop")))
	r := userRequest("hi")
	r.Model = "other"
	if _, err := f.upstream(nil).Stream(context.Background(), r, nil); err != nil {
		t.Fatal(err)
	}
	var body struct{ Model string }
	json.Unmarshal((<-f.reqs).body, &body)
	if body.Model != "other" {
		t.Errorf("model = %q", body.Model)
	}
}

func TestUpstreamRejectsInvalidToolSchema(t *testing.T) {
	u := NewUpstream(UpstreamOptions{BaseURL: "http://127.0.0.1:1"})
	r := userRequest("hi")
	r.Tools = []hermes.ToolSpec{{Name: "bad", Parameters: []byte("{not json")}}
	if _, err := u.Stream(context.Background(), r, nil); code(err) != hermes.EInvalid {
		t.Fatalf("err = %v, want EInvalid", err)
	}
}

func optional(t *testing.T, key string, body map[string]json.RawMessage, want string) {
	t.Helper()
	got, ok := body[key]
	if want == "" {
		if ok {
			t.Errorf("%s present (%s), want absent", key, got)
		}
		return
	}
	jsonEqual(t, key, got, want)
}

func jsonEqual(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s: bad JSON %q: %v", what, got, err)
		return
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad want JSON: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", time.Second},
		{"0", time.Second},
		{"30", 30 * time.Second},
		{" 5 ", 5 * time.Second},
		{"-3", time.Second},
		{"soon", time.Second},
		{"99999999999999", 86400 * time.Second},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), time.Second},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestUpstreamModels(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/models" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"gpt-x","object":"model"},{"id":"llama3","object":"model"}]}`)
	})
	ids, err := f.upstream(nil).Models(context.Background())
	if err != nil || !reflect.DeepEqual(ids, []string{"gpt-x", "llama3"}) {
		t.Fatalf("ids %q err %v", ids, err)
	}
	if got := <-f.reqs; got.auth != "Bearer sk-test" {
		t.Errorf("auth = %q", got.auth)
	}
	f404 := newFake(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	if _, err := f404.upstream(nil).Models(context.Background()); code(err) != hermes.EUpstream {
		t.Errorf("404: err = %v, want EUpstream", err)
	}
}

// TestWatchdogProgressPostpones: progress noted more often than the
// timeout keeps the watchdog from firing for longer than the timeout;
// once progress stops it fires, with its cause, a timeout later.
func TestWatchdogProgressPostpones(t *testing.T) {
	const timeout = 500 * time.Millisecond
	fired := make(chan error, 1)
	cause := hermes.Errorf(hermes.ETimeout, "idle")
	began := time.Now()
	wd := startWatchdog(timeout, cause, func(err error) { fired <- err })
	defer wd.stop()
	for time.Since(began) < 2*timeout {
		select {
		case <-fired:
			t.Fatalf("fired after %v despite progress", time.Since(began))
		case <-time.After(20 * time.Millisecond): // the stream's pace
		}
		wd.reset()
	}
	last := time.Now()
	select {
	case err := <-fired:
		if err != cause {
			t.Fatalf("cause %v", err)
		}
		if idle := time.Since(last); idle < timeout-50*time.Millisecond {
			t.Fatalf("fired %v after the last progress, want about %v", idle, timeout)
		}
	case <-time.After(10 * timeout):
		t.Fatal("never fired")
	}
}
